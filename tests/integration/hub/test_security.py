"""The holes found when the hub was attacked (issue 11), each closed at its owner, proved here."""

from __future__ import annotations

import csv
import io
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import select

from hub.app import create_app
from hub.persistence.models import AuditEntry, Message, User
from hub.services import auth
from tests.conftest import need
from tests.integration.hub.conftest import HubHarness
from tests.support.databases import REDIS_URL, redis_available


def _audit(hub: HubHarness) -> list[AuditEntry]:
    with hub.app.extensions["teleconsult"].db.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        s.expunge_all()
        return rows


def _page_login(
    hub: HubHarness,
    username: str,
    password: str = "demo",
    next_: str | None = None,
    base_url: str = "http://localhost",
) -> Any:
    """Sign in on the hub's page, CSRF token and all, as a browser does."""
    html = hub.client.get("/login", base_url=base_url).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert token
    query: Any = None
    if next_ is not None:  # "raw:" sends the query string exactly as an attacker's link has it
        query = next_[4:] if next_.startswith("raw:") else {"next": next_}
    return hub.client.post(
        "/login",
        base_url=base_url,
        query_string=query,
        headers={"Referer": f"{base_url}/login"},
        data={"username": username, "password": password, "csrf_token": token.group(1)},
    )


def _user_id(hub: HubHarness, username: str) -> int:
    with hub.app.extensions["teleconsult"].db.session() as s:
        return int(s.scalar(select(User.id).where(User.username == username)) or 0)


# -- finding 3: sign-in is rate-limited, hashing leaves the event loop -----------------------


def test_wrong_passwords_for_one_account_are_stopped_with_429_and_retry_after(
    hub: HubHarness,
) -> None:
    answers = [
        hub.client.post("/api/v1/auth/token", json={"username": "ortho1", "password": "x"})
        for _ in range(11)
    ]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert answers[10].status_code == 429
    assert int(answers[10].headers["Retry-After"]) > 0
    assert answers[10].json["error"]["code"] == "too_many_requests"
    # the account is locked for now, even with the right password; another account is not
    right = hub.client.post("/api/v1/auth/token", json={"username": "ortho1", "password": "demo"})
    assert right.status_code == 429
    hub.login("radio1")


def test_the_public_prescription_check_is_rate_limited_per_address(hub: HubHarness) -> None:
    """/verify needs no sign-in: one address gets verify_limit (60 a minute) answers, then 429."""
    answers = [hub.client.get(f"/verify/no-such-code-{n}") for n in range(61)]
    assert [a.status_code for a in answers[:60]] == [404] * 60
    assert answers[60].status_code == 429 and int(answers[60].headers["Retry-After"]) > 0


def test_one_address_trying_many_accounts_is_stopped(hub: HubHarness) -> None:
    statuses = [_page_login(hub, f"nobody{n}", "x").status_code for n in range(31)]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429


def test_password_hashing_runs_in_eventlets_thread_pool_under_eventlet() -> None:
    """Under a monkey-patched eventlet hub, argon2 goes to tpool: the event loop keeps serving."""
    import eventlet.patcher
    import eventlet.tpool

    calls: list[Any] = []

    def execute(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return fn(*args)

    assert "eventlet.patcher" in sys.modules
    with (
        mock.patch.object(eventlet.patcher, "is_monkey_patched", lambda what: what == "thread"),
        mock.patch.object(eventlet.tpool, "execute", execute),
    ):
        stored = auth.hash_password("correct horse battery")
        assert auth.verify_password(stored, "correct horse battery")
    assert len(calls) == 2
    auth.verify_password(stored, "x")  # not patched: runs here, no pool
    assert len(calls) == 2


# -- finding 4: small bodies, refused before they are read ----------------------------------


class _Body(io.RawIOBase):
    """A request body that counts what the server reads of it."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0  # the test client rewinds before sending; nothing has been read then

    def tell(self) -> int:
        return 0

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"{" * n
        self.read_bytes += n
        return n


def test_a_huge_body_to_the_token_endpoint_is_refused_unread(hub: HubHarness) -> None:
    body = _Body(400 * 1024 * 1024)
    answer = hub.client.post(
        "/api/v1/auth/token",
        input_stream=body,
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(body.size)},
    )
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "request_entity_too_large"
    assert body.read_bytes == 0


def test_only_stow_takes_large_bodies(hub: HubHarness) -> None:
    assert hub.app.config["MAX_CONTENT_LENGTH"] == 256 * 1024
    assert hub.app.config["LARGE_BODIES"] == {"dicomweb.stow": 2147483648}
    big_json = b'{"text": "' + b"a" * (300 * 1024) + b'"}'
    answer = hub.client.post(
        "/api/v1/cases/1/messages",
        data=big_json,
        headers={**hub.login("clinic1"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413


# -- finding 7: no open redirect after sign-in -----------------------------------------------

REDIRECT_PAYLOADS = [
    "//evil.example",
    "/\t/evil.example",
    "raw:next=/%09/evil.example",
    "raw:next=/%5C/evil.example",
    "raw:next=%2F%2Fevil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "/\n/evil.example",
    "http:/evil.example",
    " //evil.example",
]


@pytest.mark.parametrize("target", REDIRECT_PAYLOADS)
def test_sign_in_never_redirects_to_another_host(hub: HubHarness, target: str) -> None:
    answer = _page_login(hub, "ortho1", next_=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/worklist"


def test_sign_in_keeps_a_local_next(hub: HubHarness) -> None:
    answer = _page_login(hub, "ortho1", next_="/cases/1?x=1")
    assert answer.headers["Location"] == "/cases/1?x=1"


# -- finding 11 and the roles table -------------------------------------------------------------


def test_a_colleague_of_the_specialty_reads_but_cannot_write_into_the_case(
    hub: HubHarness,
) -> None:
    admin = hub.login("admin")
    added = hub.client.post(
        "/api/v1/users",
        json={
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "specialties": ["ortho"],
        },
        headers=admin,
    )
    assert added.status_code == 201
    case = hub.raise_case()
    assert case["assigned_to"]["username"] == "ortho1"
    colleague = hub.login("ortho2")
    assert hub.client.get(f"/api/v1/cases/{case['id']}", headers=colleague).status_code == 200
    wrote = hub.client.post(
        f"/api/v1/cases/{case['id']}/messages", json={"text": "hello"}, headers=colleague
    )
    assert wrote.status_code == 403
    with hub.app.extensions["teleconsult"].db.session() as s:
        assert s.scalars(select(Message)).all() == []
    mine = hub.client.post(
        f"/api/v1/cases/{case['id']}/messages", json={"text": "seen"}, headers=hub.login("ortho1")
    )
    assert mine.status_code == 201


def test_an_admin_reads_no_clinical_content(hub: HubHarness) -> None:
    case = hub.raise_case()
    admin = hub.login("admin")
    for path in ("", "/history", "/messages", "/advice", "/studies"):
        assert hub.client.get(f"/api/v1/cases/{case['id']}{path}", headers=admin).status_code in (
            403,
            404,
        )
    assert hub.client.get("/api/v1/cases", headers=admin).status_code == 403
    assert hub.client.get(f"/cases/{case['id']}", headers=admin).status_code in (302, 403)


# -- finding 8: the audit log, read and exported by supervisors --------------------------------


def test_reads_lists_sign_ins_and_spoke_doctors_are_audited(hub: HubHarness) -> None:
    case = hub.raise_case()
    cid = case["id"]
    hub.client.post("/api/v1/auth/token", json={"username": "ortho1", "password": "wrong"})
    ortho = hub.login("ortho1")
    for path in ("", "/history", "/messages", "/studies", "/advice"):
        assert hub.client.get(f"/api/v1/cases/{cid}{path}", headers=ortho).status_code == 200
    hub.client.get("/api/v1/cases", headers=ortho)
    hub.client.post("/api/v1/auth/logout", headers=ortho)
    # the spoke writes for its doctor: the hub records the doctor, not only "spoke PHC-1"
    spoke_for_clinic2 = {**hub.spoke(), "X-Acting-Doctor": "clinic2"}
    assert (
        hub.client.post(
            f"/api/v1/cases/{cid}/messages",
            json={"text": "BP now 150/90"},
            headers=spoke_for_clinic2,
        ).status_code
        == 201
    )
    rows = _audit(hub)
    ortho_id, clinic2 = _user_id(hub, "ortho1"), _user_id(hub, "clinic2")
    seen = {(r.action, r.object_type) for r in rows if r.user_id == ortho_id}
    assert {
        ("sign_in", "account"),
        ("read", "case"),
        ("read", "history"),
        ("read", "messages"),
        ("list", "studies"),
        ("read", "advice"),
        ("list", "cases"),
        ("sign_out", "account"),
    } <= seen
    failed = [r for r in rows if r.action == "sign_in_failed"]
    assert failed and failed[0].user_id == ortho_id and failed[0].remote_addr == "127.0.0.1"
    message = [r for r in rows if (r.action, r.object_type) == ("create", "message")][0]
    assert (message.user_id, message.spoke_id is not None, message.case_id) == (clinic2, True, cid)
    with hub.app.extensions["teleconsult"].db.session() as s:
        assert s.scalars(select(Message)).one().author_id == clinic2


def test_a_spoke_cannot_act_for_a_doctor_of_another_spoke_nor_a_deactivated_one(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    refused = hub.client.post(
        f"/api/v1/cases/{case['id']}/messages",
        json={"text": "x"},
        headers={**hub.spoke(), "X-Acting-Doctor": "clinic4"},
    )
    assert (refused.status_code, refused.json["error"]["code"]) == (403, "doctor_inactive")
    # a person's own token cannot claim to be someone else
    me = hub.client.get("/api/v1/me", headers={**hub.login("clinic1"), "X-Acting-Doctor": "x"})
    assert me.json["username"] == "clinic1"


def test_supervisors_read_and_export_the_audit_log(hub: HubHarness) -> None:
    case = hub.raise_case()
    hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("ortho1"))
    sup = hub.login("sup1")
    for who in ("ortho1", "admin", "clinic1"):
        assert hub.client.get("/api/v1/audit", headers=hub.login(who)).status_code == 403
    rows = hub.client.get(
        "/api/v1/audit", query_string={"user": "ortho1", "case": case["id"]}, headers=sup
    ).json
    assert rows and all(r["user"] == "ortho1" and r["case_id"] == case["id"] for r in rows)
    assert {"read"} <= {r["action"] for r in rows}
    later = hub.client.get(
        "/api/v1/audit", query_string={"from": "2999-01-01T00:00:00+00:00"}, headers=sup
    ).json
    assert later == []
    exported = hub.client.get("/api/v1/audit", query_string={"format": "csv"}, headers=sup)
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert exported.mimetype == "text/csv" and any(r["user"] == "ortho1" for r in table)
    bundle = hub.client.get("/api/v1/audit", query_string={"format": "fhir"}, headers=sup).json
    assert bundle["resourceType"] == "Bundle"
    events = [e["resource"] for e in bundle["entry"]]
    assert all(e["resourceType"] == "AuditEvent" and e["recorded"] for e in events)


def test_the_audit_page_shows_the_log_to_a_supervisor_only(hub: HubHarness) -> None:
    _page_login(hub, "sup1")
    page = hub.client.get("/audit?user=sup1")
    assert page.status_code == 200 and "sign_in" in page.get_data(as_text=True)
    hub.client.delete_cookie("session")
    _page_login(hub, "admin")
    assert hub.client.get("/audit").status_code == 403


def test_socket_connections_and_resume_are_audited(hub: HubHarness) -> None:
    token = hub.login("ortho1")["Authorization"].split()[1]
    client = hub.socket(token)
    assert client.is_connected()
    client.emit("resume", {"after_seq": 0}, callback=True)
    client.disconnect()
    actions = [r.action for r in _audit(hub) if r.object_type == "socket"]
    assert actions == ["connect", "resume", "disconnect"]


# -- finding 12: accounts ---------------------------------------------------------------------


def _add(hub: HubHarness, username: str, role: str, password: str, **more: Any) -> Any:
    return hub.client.post(
        "/api/v1/users",
        json={"username": username, "password": password, "role": role, **more},
        headers=hub.login("admin"),
    )


def test_short_passwords_are_refused_and_stricter_for_supervisors_and_admins(
    hub: HubHarness,
) -> None:
    assert _add(hub, "sup2", "supervisor", "demo").status_code == 400
    weak = _add(hub, "sup2", "supervisor", "twelve chars")
    assert weak.status_code == 400 and "16 characters" in str(weak.json["error"]["fields"])
    assert _add(hub, "sup2", "supervisor", "sixteen chars ok").status_code == 201
    assert _add(hub, "doc9", "spoke_doctor", "twelve chars", spoke="PHC-1").status_code == 201


def test_a_user_changes_their_password_and_an_admin_resets_it(hub: HubHarness) -> None:
    other = hub.login("clinic1")
    me = hub.login("clinic1")
    bad = hub.client.post(
        "/api/v1/me/password",
        json={"current_password": "demo", "new_password": "short"},
        headers=me,
    )
    assert bad.status_code == 400
    changed = hub.client.post(
        "/api/v1/me/password",
        json={"current_password": "demo", "new_password": "a new long passphrase"},
        headers=me,
    )
    assert changed.status_code == 204
    assert hub.client.get("/api/v1/me", headers=me).status_code == 200  # this login goes on
    assert hub.client.get("/api/v1/me", headers=other).status_code == 401  # others end
    hub.login("clinic1", "a new long passphrase")
    uid = _user_id(hub, "clinic1")
    reset = hub.client.post(
        f"/api/v1/users/{uid}/password",
        json={"new_password": "reset by the admin"},
        headers=hub.login("admin"),
    )
    assert reset.status_code == 204
    assert hub.client.get("/api/v1/me", headers=me).status_code == 401
    hub.login("clinic1", "reset by the admin")


@pytest.mark.parametrize("username", ["clinic1", "sup1", "ortho1"])
def test_an_admin_deactivates_any_role(hub: HubHarness, username: str) -> None:
    theirs = hub.login(username)
    admin = hub.login("admin")
    uid = _user_id(hub, username)
    off = hub.client.patch(f"/api/v1/users/{uid}", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.json["active"] is False
    assert hub.client.get("/api/v1/me", headers=theirs).status_code == 401
    again = hub.client.post("/api/v1/auth/token", json={"username": username, "password": "demo"})
    assert again.status_code == 401
    assert (
        hub.client.patch(
            f"/api/v1/users/{_user_id(hub, 'admin')}", json={"active": False}, headers=admin
        ).status_code
        == 403
    )


def test_a_second_admin_can_be_deactivated(hub: HubHarness) -> None:
    assert _add(hub, "admin2", "admin", "sixteen chars ok").status_code == 201
    uid = _user_id(hub, "admin2")
    off = hub.client.patch(
        f"/api/v1/users/{uid}", json={"active": False}, headers=hub.login("admin")
    )
    assert off.status_code == 200


# -- finding 14: bad input, caching, cookies, CSRF lifetime -------------------------------------


def test_deep_json_and_huge_ids_are_clear_4xx(hub: HubHarness) -> None:
    clinic = hub.login("clinic1")
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = hub.client.post(
        "/api/v1/cases", data=deep, headers={**hub.spoke(), "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    for huge in ("99999999999999999999", "2147483648", "9" * 5000):
        assert hub.client.get(f"/api/v1/cases/{huge}", headers=clinic).status_code == 404


def test_patient_data_is_never_cached_and_https_gets_hsts_and_secure_cookies(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    answer = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("ortho1"))
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in answer.headers
    secure = _page_login(hub, "ortho1", base_url="https://hub.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in secure.headers["Set-Cookie"]
    plain = _page_login(hub, "ortho1")
    assert "Secure" not in plain.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in plain.headers


def test_csrf_tokens_expire(hub: HubHarness) -> None:
    ttl = hub.app.extensions["teleconsult"].settings.token_ttl_s
    assert hub.app.config["WTF_CSRF_TIME_LIMIT"] == ttl
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - ttl - 60):
        html = hub.client.get("/login").get_data(as_text=True)  # a page left open too long
    token = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert token
    stale = hub.client.post(
        "/login", data={"username": "ortho1", "password": "demo", "csrf_token": token.group(1)}
    )
    assert stale.status_code == 400


def _second_app(hub: HubHarness, tmp_path: Path, **config: Any) -> Any:
    """Another hub process on the same database, with other settings."""
    settings = hub.app.extensions["teleconsult"].settings
    app = create_app(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp_path / "hub2"),
            "database_url": settings.database_url,
            **config,
        },
        clock=hub.clock,
    )
    app.config["TESTING"] = True
    return app


def test_https_behind_a_trusted_proxy_gets_hsts_and_secure_cookies(
    hub: HubHarness, tmp_path: Path
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    untrusted = hub.client.get("/login", headers=forwarded)
    assert "Strict-Transport-Security" not in untrusted.headers  # nobody said to believe it
    app = _second_app(hub, tmp_path, trusted_proxies=1)
    try:
        answer = app.test_client().get("/login", headers=forwarded)
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Secure" in answer.headers["Set-Cookie"]
    finally:
        app.extensions["teleconsult"].db.dispose()


def test_sign_in_limits_are_shared_by_hub_processes_through_redis(
    hub: HubHarness, tmp_path: Path
) -> None:
    need(redis_available(), "Redis is not reachable on 127.0.0.1:6379")
    queue = REDIS_URL  # the account's name is new: its counter is this test's alone
    first = _second_app(hub, tmp_path / "a", message_queue=REDIS_URL, rate_limit_storage=queue)
    second = _second_app(hub, tmp_path / "b", message_queue=REDIS_URL, rate_limit_storage=queue)
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    try:
        for n in range(10):
            app = first if n % 2 else second
            wrong = app.test_client().post(
                "/api/v1/auth/token", json={"username": name, "password": "x"}
            )
            assert wrong.status_code == 401
        stopped = first.test_client().post(
            "/api/v1/auth/token", json={"username": name, "password": "x"}
        )
        assert stopped.status_code == 429
    finally:
        for app in (first, second):
            app.extensions["teleconsult"].db.dispose()


def test_a_case_raised_through_the_outbox_is_audited_as_its_doctor(hub: HubHarness) -> None:
    hub.raise_case()  # by the spoke's service, raised_by clinic1
    created = [r for r in _audit(hub) if (r.action, r.object_type) == ("create", "case")]
    assert [(r.user_id, r.spoke_id is not None) for r in created] == [
        (_user_id(hub, "clinic1"), True)
    ]


def test_dead_login_tokens_are_forgotten_by_the_periodic_round(hub: HubHarness) -> None:
    from hub.domain.policy import WorkflowPolicy
    from hub.persistence.models import ApiToken
    from hub.services.jobs import HubJobs

    hub.login("ortho1")
    hub.client.post("/api/v1/auth/logout", headers=hub.login("radio1"))
    hub.clock.advance(days=2)  # past every token's life (the test hub's: one hour)
    live = hub.login("med1")
    ext = hub.app.extensions["teleconsult"]
    with ext.db.sessions() as session:
        HubJobs(session, hub.clock, WorkflowPolicy.from_settings(ext.settings)).tick()
    with hub.app.extensions["teleconsult"].db.session() as s:
        left = s.scalars(select(ApiToken)).all()
        assert len(left) == 1
    assert hub.client.get("/api/v1/me", headers=live).status_code == 200
