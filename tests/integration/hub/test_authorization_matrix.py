"""The hub's authorization matrix (DESIGN.md, "Security rules"): every route of ``app.url_map``
and every Socket.IO event, against every kind of caller, with the expected outcome declared in
ONE table below. A route or event missing from the table fails the test, as does a stale row.

Outcomes: a caller in a row's ``allowed`` set must get past authorization (anything but 401,
403, 404 or a redirect to the sign-in page: a 400 or 409 from bad input or the case's state still
proves the caller was let in); every other caller must be refused (401, 403, 404, or the sign-in
page). ``PUBLIC`` rows are open to all (no 5xx). Every id in a URL names a real object, so a 404
can only mean "not for you". Each state-changing cell gets a fresh case, assigned to ``assignee``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom import dcmwrite
from pydicom.uid import generate_uid
from sqlalchemy import select

from hub.app import create_app
from hub.persistence.models import User
from hub.realtime.namespace import HubNamespace
from hub.services.accounts import add_user
from shared.clock import FrozenClock
from shared.multipart import build_related
from teleconsult.db import Database
from tests.dicomgen import make_ct_series
from tests.integration.hub.conftest import ADVICE, case_body
from tests.support.hub import prepare_hub_db

# -- the callers --------------------------------------------------------------------------------

ROLES: dict[str, str | None] = {
    "anon": None,  # no login at all
    "clinic": "clinic1",  # spoke_doctor of PHC-1, the case's clinic
    "other_clinic": "clinic4",  # spoke_doctor of PHC-2
    "assignee": "ortho1",  # specialist the case is assigned to
    "colleague": "ortho2",  # specialist of the case's specialty, not holding it
    "other_specialty": "radio1",  # specialist of another specialty
    "supervisor": "sup1",
    "admin": "admin",
    "spoke": "PHC-1",  # the service token of the case's spoke
    "other_spoke": "PHC-2",  # another spoke's service token
}
SPOKES = frozenset({"spoke", "other_spoke"})
PUBLIC = frozenset(ROLES)
SIGNED_IN = PUBLIC - {"anon"}
PEOPLE = SIGNED_IN - SPOKES
SPECIALISTS = frozenset({"assignee", "colleague", "other_specialty"})
CLINICS = frozenset({"clinic", "other_clinic", "spoke", "other_spoke"})
THIS_CLINIC = frozenset({"clinic", "spoke"})
# The roles table: the case's clinic, its specialist, the specialty's colleagues (to cover,
# every read audited) and supervisors read a case; admins read no clinical content.
CASE_READERS = THIS_CLINIC | {"assignee", "colleague", "supervisor"}
CASE_PAGES = frozenset({"assignee", "colleague", "supervisor"})


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    body: Any = None  # JSON, or a callable (world, role) -> request kwargs
    fresh_case: bool = False  # the cell changes a case: it gets its own
    fresh_login: bool = False  # the cell ends the caller's login
    form: dict[str, Any] | None = None
    public: bool = False
    why: str = ""


def rule(allowed: frozenset[str] | set[str], **kw: Any) -> Rule:
    return Rule(frozenset(allowed), **kw)


def public(**kw: Any) -> Rule:
    return Rule(PUBLIC, public=True, **kw)


def _stow_body(world: World, role: str) -> dict[str, Any]:
    """A study nobody has sent before, with no accession number: it waits in the inbox."""
    ds = make_ct_series(1, accession_number="")[0]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    body, content_type = build_related([out.getvalue()])
    return {"data": body, "content_type": content_type}


_ADMIN_USER_FORM = {
    "username": "mx-new",
    "password": "a long passphrase",
    "role": "spoke_doctor",
    "spoke": "PHC-1",
}

# (method, rule) -> expected outcome. THE table.
MATRIX: dict[tuple[str, str], Rule] = {
    # sign-in and public pages
    ("GET", "/"): public(),
    ("GET", "/login"): public(),
    ("POST", "/login"): public(form={"username": "nobody", "password": "x"}),
    ("POST", "/logout"): public(fresh_login=True, form={}),
    ("POST", "/language"): public(form={"language": "hi"}),
    ("GET", "/clinic"): public(),
    ("GET", "/healthz"): public(),
    ("GET", "/favicon.ico"): public(),
    ("GET", "/static/<path:filename>"): public(),
    ("GET", "/assets/<name>"): public(),
    ("GET", "/api/v1/openapi.json"): public(),
    ("POST", "/api/v1/auth/token"): public(body={"username": "nobody", "password": "x"}),
    ("POST", "/api/v1/auth/verify"): rule(
        {"spoke"},
        body={"username": "clinic1", "password": "demo"},
        why="a spoke checks its own doctors only",
    ),
    ("POST", "/api/v1/auth/logout"): rule(SIGNED_IN, fresh_login=True),
    ("GET", "/api/v1/me"): rule(SIGNED_IN),
    ("POST", "/api/v1/me/password"): rule(
        PEOPLE, body={"current_password": "wrong", "new_password": "a long passphrase"}
    ),
    # cases
    ("POST", "/api/v1/cases"): rule(CLINICS, body=lambda w, r: {"json": case_body()}),
    ("GET", "/api/v1/cases"): rule(SIGNED_IN - {"admin"}, why="scoped by role; admin: none"),
    ("GET", "/api/v1/cases/<int:case_id>"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/history"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/messages"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/advice"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/studies"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/advice/<int:version>.pdf"): rule(CASE_READERS),
    ("GET", "/api/v1/cases/<int:case_id>/fhir"): rule(CASE_READERS),
    ("GET", "/verify/<code>"): public(why="valid or superseded, no clinical content"),
    ("POST", "/api/v1/cases/<int:case_id>/messages"): rule(
        THIS_CLINIC | {"assignee"}, body={"text": "hello"}, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/claim"): rule(
        {"assignee", "colleague"},
        fresh_case=True,
        why="a colleague may claim from the pool; a held case answers 409",
    ),
    ("POST", "/api/v1/cases/<int:case_id>/release"): rule({"assignee"}, fresh_case=True),
    ("POST", "/api/v1/cases/<int:case_id>/request-info"): rule(
        {"assignee"}, body={"text": "X-ray please"}, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/provide-info"): rule(
        THIS_CLINIC, body={"text": "here"}, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/advice"): rule(
        {"assignee"}, body=ADVICE, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/refer"): rule(
        {"assignee"}, body={"reason": "needs surgery"}, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/close"): rule(
        THIS_CLINIC | {"assignee"}, body={}, fresh_case=True
    ),
    ("POST", "/api/v1/cases/<int:case_id>/cancel"): rule(THIS_CLINIC, body={}, fresh_case=True),
    ("POST", "/api/v1/cases/<int:case_id>/reassign"): rule(
        {"supervisor"}, body={"specialist": "ortho2"}, fresh_case=True
    ),
    # staff, supervision, dashboard, audit
    ("POST", "/api/v1/users"): rule(
        {"admin"},
        body=lambda w, r: {"json": {**_ADMIN_USER_FORM, "username": f"mx-{r}-{w.next_n()}"}},
    ),
    ("PATCH", "/api/v1/users/<int:user_id>"): rule({"admin"}, body={"active": True}),
    ("POST", "/api/v1/users/<int:user_id>/password"): rule(
        {"admin"}, body={"new_password": "reset by the admin"}
    ),
    ("GET", "/api/v1/specialists"): rule(SPECIALISTS | {"supervisor", "admin"}),
    ("PATCH", "/api/v1/specialists/<int:user_id>"): rule(
        {"assignee", "supervisor", "admin"}, body={"on_duty": True}, why="own duty, or staff"
    ),
    ("GET", "/api/v1/specialties"): rule(SIGNED_IN),
    ("GET", "/api/v1/specialties/<code>/hours"): rule(SIGNED_IN),
    ("PUT", "/api/v1/specialties/<code>/hours"): rule({"admin"}, body={"hours": "24h"}),
    ("GET", "/api/v1/supervision"): rule({"supervisor", "admin"}),
    ("POST", "/api/v1/supervision/reassign"): rule(
        {"supervisor"}, body={"specialty": "ortho", "doctor": "clinic1", "specialist": "ortho1"}
    ),
    ("GET", "/api/v1/dashboard/summary"): rule({"supervisor", "admin"}),
    ("GET", "/api/v1/presence"): rule({"supervisor", "admin"}),
    ("GET", "/api/v1/advice/undelivered"): rule(SPECIALISTS | {"supervisor"}),
    ("GET", "/api/v1/audit"): rule({"supervisor"}),
    # DICOMweb
    ("POST", "/dicomweb/studies"): rule(CLINICS, body=_stow_body, why="a new study of its own"),
    ("GET", "/dicomweb/studies"): rule(SIGNED_IN - {"admin"}, why="scoped; admin refused"),
    ("GET", "/dicomweb/studies/<study>"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/metadata"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/instances"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series/<series>"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series/<series>/metadata"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series/<series>/instances"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series/<series>/instances/<instance>"): rule(CASE_READERS),
    ("GET", "/dicomweb/studies/<study>/series/<series>/instances/<instance>/metadata"): rule(
        CASE_READERS
    ),
    ("GET", "/dicomweb/studies/<study>/series/<series>/instances/<instance>/rendered"): rule(
        CASE_READERS
    ),
    ("GET", "/dicomweb/studies/<study>/series/<series>/instances/<instance>/frames/<frames>"): (
        rule(CASE_READERS)
    ),
    (
        "GET",
        "/dicomweb/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/rendered",
    ): rule(CASE_READERS),
    ("PUT", "/dicomweb/studies/<study>/case"): rule(
        THIS_CLINIC, body=lambda w, r: {"json": {"case_uid": w.case_uid}}
    ),
    # pages
    ("GET", "/worklist"): rule(SPECIALISTS),
    ("GET", "/worklist/rows"): rule(SPECIALISTS),
    ("GET", "/cases/<int:case_id>"): rule(CASE_PAGES),
    ("GET", "/cases/<int:case_id>/live"): rule(CASE_PAGES),
    ("GET", "/cases/<int:case_id>/images"): rule(CASE_PAGES),
    ("GET", "/dashboard"): rule({"supervisor"}),
    ("GET", "/dashboard/live"): rule({"supervisor"}),
    ("GET", "/audit"): rule({"supervisor"}),
    ("GET", "/admin/users"): rule({"admin"}),
    ("POST", "/admin/users"): rule(
        {"admin"}, form={**_ADMIN_USER_FORM, "username": "mx-page-user"}
    ),
    ("GET", "/admin/spokes"): rule({"admin"}),
    ("POST", "/admin/spokes"): rule({"admin"}, form={"code": "PHC-9", "name": "New clinic"}),
    ("GET", "/admin/specialties"): rule({"admin"}),
    ("POST", "/admin/specialties"): rule({"admin"}, form={"code": "ortho", "hours": "24h"}),
    ("GET", "/admin/supervision"): rule({"admin"}),
    ("GET", "/admin/duty"): rule({"admin"}),
    ("POST", "/admin/duty"): rule({"admin"}, form=None, body=lambda w, r: {"data": w.duty_form()}),
}

# Socket.IO events -> who may use them (connect: who is let in at all).
EVENTS: dict[str, frozenset[str]] = {
    "connect": SIGNED_IN,
    "disconnect": SIGNED_IN,
    "resume": SIGNED_IN,
    "advice.ack": frozenset({"spoke"}),  # only the case's spoke acknowledges its advice
}

PAGE_BLUEPRINTS = frozenset({"auth", "specialist", "supervisor", "admin"})


# -- the world the matrix runs in ------------------------------------------------------------


@dataclass
class World:
    app: Flask
    database_url: str
    spoke_tokens: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    pages: dict[str, FlaskClient] = field(default_factory=dict)
    case_id: int = 0
    case_uid: str = ""
    case_accession: str = ""
    advice_id: int = 0
    uids: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    n: int = 0

    def next_n(self) -> int:
        self.n += 1
        return self.n

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def bearer(self, role: str, fresh: bool = False) -> dict[str, str]:
        who = ROLES[role]
        if who is None:
            return {}
        if role in SPOKES:
            return {"Authorization": f"Bearer {self.spoke_tokens[who]}"}
        if fresh or role not in self.tokens:
            answer = self.client().post(
                "/api/v1/auth/token", json={"username": who, "password": "demo"}
            )
            assert answer.status_code == 200, (who, answer.json)
            if fresh:
                return {"Authorization": f"Bearer {answer.json['access_token']}"}
            self.tokens[role] = answer.json["access_token"]
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def page_client(self, role: str, fresh: bool = False) -> FlaskClient:
        who = ROLES[role]
        if who is None or role in SPOKES:
            return self.client()
        if fresh or role not in self.pages:
            client = self.client()
            answer = client.post(
                "/login", data={"username": who, "password": "demo", "csrf_token": csrf(client)}
            )
            assert answer.status_code == 302, (who, answer.status_code)
            if fresh:
                return client
            self.pages[role] = client
        return self.pages[role]

    def raise_case(self) -> dict[str, Any]:
        answer = self.client().post("/api/v1/cases", json=case_body(), headers=self.bearer("spoke"))
        case: dict[str, Any] = answer.get_json()
        assert answer.status_code == 201, case
        assert (case["assigned_to"] or {}).get("username") == "ortho1", case["routing_reason"]
        return case

    def duty_form(self) -> dict[str, str]:
        return {
            "user_id": str(self.user_ids["ortho1"]),
            "on_duty": "on",
            "active": "on",
            "max_active_cases": "10000",
        }

    def url_args(self, case_id: int) -> dict[str, Any]:
        return {
            "case_id": case_id,
            "user_id": {
                "/api/v1/users/<int:user_id>": self.user_ids["clinic2"],
                "/api/v1/users/<int:user_id>/password": self.user_ids["clinic3"],
                "/api/v1/specialists/<int:user_id>": self.user_ids["ortho1"],
            },
            "code": {
                "/api/v1/specialties/<code>/hours": "ortho",
                "/verify/<code>": "no-such-code",
            },
            "version": 1,
            "name": "socket.io.min.js",
            "filename": "hub.css",
            **self.uids,
            "frames": "1",
        }


def _build(tmp: Path) -> World:
    url = f"sqlite:///{tmp / 'matrix.sqlite'}"
    tokens = prepare_hub_db(url)
    db = Database(url)
    with db.session() as s:
        shared_hash = s.scalar(select(User.password_hash).where(User.username == "ortho1"))
        colleague = add_user(
            s, "ortho2", "", "specialist", specialties=["ortho"], password_hash=shared_hash
        )
        colleague.on_duty = False  # every fresh case goes to ortho1, the "assignee"
        s.scalars(select(User).where(User.username == "ortho1")).one().max_active_cases = 10_000
    with db.session() as s:
        ids = {u.username: u.id for u in s.scalars(select(User))}
    db.dispose()
    app = create_app(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp / "hub"),
            "database_url": url,
            "sign_in_limit_address": "10000 per minute",
        },
        clock=FrozenClock(),
    )
    app.config.update(TESTING=True)
    world = World(app, url, tokens, user_ids=ids)
    case = world.raise_case()
    world.case_id, world.case_uid = case["id"], case["uid"]
    world.case_accession = case["accession_number"]
    ds = make_ct_series(1, accession_number=world.case_accession)[0]
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    body, content_type = build_related([out.getvalue()])
    stowed = world.client().post(
        "/dicomweb/studies",
        headers={**world.bearer("spoke"), "X-Case-UID": world.case_uid},
        data=body,
        content_type=content_type,
    )
    assert stowed.status_code == 200, stowed.json
    world.uids = {
        "study": ds.StudyInstanceUID,
        "series": ds.SeriesInstanceUID,
        "instance": ds.SOPInstanceUID,
    }
    advised = world.client().post(
        f"/api/v1/cases/{world.case_id}/advice", json=ADVICE, headers=world.bearer("assignee")
    )
    assert advised.status_code == 201
    world.advice_id = advised.json["id"]
    return world


def csrf(client: FlaskClient) -> str:
    """The CSRF token of the client's session, as the sign-in page's meta tag has it."""
    html = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


def _request_body(body: Any, world: World, role: str) -> dict[str, Any]:
    if body is None:
        return {}
    if callable(body):
        result: dict[str, Any] = body(world, role)
        return result
    return {"json": body}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = _build(tmp_path_factory.mktemp("matrix"))
    yield w
    w.app.extensions["teleconsult"].db.dispose()


# -- the tests -------------------------------------------------------------------------------------


def _routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, r.rule)
        for r in app.url_map.iter_rules()
        for method in r.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def test_every_route_and_event_has_a_row(world: World) -> None:
    routes = _routes(world.app)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without an authorization rule in MATRIX: {missing}"
    assert not stale, f"MATRIX rows for routes that no longer exist: {stale}"
    handlers = {
        name[3:].replace("_", ".") if name != "on_advice_ack" else "advice.ack"
        for name in dir(HubNamespace)
        if name.startswith("on_") and callable(getattr(HubNamespace, name))
    }
    handlers = {h.replace(".", "_") for h in handlers}
    assert handlers == {e.replace(".", "_") for e in EVENTS}, "Socket.IO events without a rule"


def _is_sign_in_redirect(answer: Any) -> bool:
    return answer.status_code == 302 and "/login" in answer.headers.get("Location", "")


def _cell(world: World, method: str, path_rule: str, row: Rule, role: str) -> str | None:
    """None when the outcome is as declared; else what went wrong."""
    endpoint = next(
        r.endpoint
        for r in world.app.url_map.iter_rules()
        if r.rule == path_rule and method in (r.methods or ())
    )
    case_id = world.raise_case()["id"] if row.fresh_case else world.case_id
    args = world.url_args(case_id)
    rule_obj = next(r for r in world.app.url_map.iter_rules() if r.rule == path_rule)
    values = {}
    for arg in rule_obj.arguments:
        value = args[arg]
        values[arg] = value[path_rule] if isinstance(value, dict) else value
    with world.app.test_request_context():
        from flask import url_for

        url = url_for(endpoint, **values)
    is_page = endpoint.split(".")[0] in PAGE_BLUEPRINTS
    kwargs = _request_body(row.body, world, role)
    if row.form is not None:
        kwargs["data"] = dict(row.form)
    if is_page:
        client = world.page_client(role, fresh=row.fresh_login)
        headers = world.bearer(role) if role in SPOKES else {}
        if method == "POST":
            kwargs.setdefault("data", {})["csrf_token"] = csrf(client)
    else:
        client = world.client()
        headers = world.bearer(role, fresh=row.fresh_login)
    answer = client.open(url, method=method, headers=headers, **kwargs)
    status = answer.status_code
    if status >= 500:
        return f"{status} (server error)"
    if row.public:
        return None
    refused = status in (401, 403, 404) or _is_sign_in_redirect(answer)
    allowed = role in row.allowed
    if allowed and refused:
        return f"refused with {status} but the table allows it"
    if not allowed and not refused:
        return f"let in with {status} but the table refuses it"
    return None


def test_every_route_against_every_caller(world: World) -> None:
    wrong = []
    cells = 0
    for (method, path_rule), row in sorted(MATRIX.items()):
        for role in ROLES:
            cells += 1
            try:
                problem = _cell(world, method, path_rule, row, role)
            except Exception as exc:  # a broken set-up names its cell
                raise AssertionError(f"{method} {path_rule} as {role}") from exc
            if problem:
                wrong.append(f"{method} {path_rule} as {role}: {problem}")
    assert cells == len(MATRIX) * len(ROLES)
    assert not wrong, "\n".join(wrong)


def test_every_socket_event_against_every_caller(world: World) -> None:
    sio = world.app.extensions["teleconsult.socketio"]
    wrong = []
    for role, who in ROLES.items():
        token = None
        if who is not None:
            token = world.bearer(role)["Authorization"].split()[1]
        client = sio.test_client(world.app, auth={"token": token} if token else None)
        connected = client.is_connected()
        if connected != (role in EVENTS["connect"]):
            wrong.append(f"connect as {role}: connected={connected}")
        if not connected:
            continue
        resumed = client.emit("resume", {"after_seq": 0}, callback=True)
        if (resumed.get("ok") is True) != (role in EVENTS["resume"]):
            wrong.append(f"resume as {role}: {resumed}")
        acked = client.emit("advice.ack", {"advice_id": world.advice_id}, callback=True)
        if (acked.get("ok") is True) != (role in EVENTS["advice.ack"]):
            wrong.append(f"advice.ack as {role}: {acked}")
        client.disconnect()
    assert not wrong, "\n".join(wrong)
