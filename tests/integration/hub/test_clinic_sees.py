"""Whatever the hub does to a case, what the clinic then sees: the spoke's database, its case JSON
and its case page. An in-process hub (frozen clock, SQLite and PostgreSQL) and a spoke app whose
hub calls go to that hub's test client; the hub's events reach the spoke as its Socket.IO client
would hand them over (every event of the spoke's room, in ``seq`` order unless a test says not).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hub.app import create_app as create_hub
from hub.persistence.models import Event, Spoke
from hub.realtime.jobs import workflow_tick
from hub.services.events import as_message
from shared.clock import FrozenClock
from shared.protocol import ACTING_DOCTOR_HEADER
from shared.schemas import CaseCreateSchema
from spoke.hub_api import HubApi, HubRefused, HubUnavailable
from spoke.persistence.models import LocalCase
from spoke.store import hub_body
from tests.integration.hub.conftest import ADVICE, HubHarness, case_body
from tests.support.hub import prepare_hub_db
from tests.support.spoke import csrf_of, make_app, services, spoke_settings

ON_CALL = "Call the hub's on-call orthopaedic surgeon on +91 11 2345 6789 now."


class InProcessHubApi(HubApi):
    """The spoke's hub client speaking to an in-process hub; ``down`` plays a broken link."""

    def __init__(self, client: FlaskClient, spoke_token: str) -> None:
        super().__init__("http://hub.invalid", spoke_token, 5.0)
        self.client = client
        self.down = False
        self.calls: list[tuple[str, str]] = []

    def _request(
        self, method: str, path: str, auth: bool = True, doctor: str | None = None, **kwargs: Any
    ) -> Any:
        if self.down:
            raise HubUnavailable(f"{method} {path}: the link is down")
        self.calls.append((method, path))
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = f"Bearer {self.spoke_token}"
        if doctor:
            headers[ACTING_DOCTOR_HEADER] = doctor
        answer = self.client.open(
            path,
            method=method,
            json=kwargs.get("json"),
            query_string=kwargs.get("params"),
            headers=headers,
        )
        if answer.status_code >= 500:
            raise HubUnavailable(f"{method} {path}: hub answered {answer.status_code}")
        if answer.status_code >= 400:
            error = (answer.get_json(silent=True) or {}).get("error") or {}
            raise HubRefused(
                answer.status_code,
                str(error.get("code") or "error"),
                str(error.get("message") or ""),
                error.get("fields") if isinstance(error.get("fields"), dict) else None,
            )
        return answer.get_json()


class Clinic:
    """Spoke PHC-1 beside the hub: its app, a signed-in page client, and event delivery."""

    def __init__(self, app: Flask, hub: HubHarness, api: InProcessHubApi) -> None:
        self.app, self.hub, self.api = app, hub, api
        self.store = services(app).store
        self.page = app.test_client()
        self.delivered = 0

    def events(self) -> list[dict[str, Any]]:
        """Every event the hub addressed to this spoke after the last delivered one."""
        with self.hub.app.extensions["teleconsult"].db.session() as session:
            spoke_id = session.scalar(select(Spoke.id).where(Spoke.code == "PHC-1"))
            rows = session.scalars(
                select(Event).where(Event.seq > self.delivered).order_by(Event.seq)
            ).all()
            return [as_message(r) for r in rows if f"spoke:{spoke_id}" in r.rooms]

    def deliver(self, events: list[dict[str, Any]] | None = None) -> None:
        for event in self.events() if events is None else events:
            self.store.handle_event(event)
            self.delivered = max(self.delivered, int(event["seq"]))

    def sign_in(self) -> None:
        form = self.page.get("/signin").get_data(as_text=True)
        answer = self.page.post(
            "/signin",
            data={"username": "clinic1", "password": "demo", "csrf_token": csrf_of(form)},
        )
        assert answer.status_code == 302, answer.get_data(as_text=True)

    def case(self, uid: str) -> dict[str, Any]:
        return self.store.get_case(uid)

    def live(self, uid: str) -> str:
        """The part of the case page the page script swaps in while it is open."""
        answer = self.page.get(f"/cases/{uid}/live")
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    def sync(self) -> bool:
        return services(self.app).outbox.sync_once()


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[HubHarness]:
    tokens = prepare_hub_db(database_url)
    clock = FrozenClock()
    app = create_hub(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp_path / "hub"),
            "database_url": database_url,
            "sla_breach_clinic_text": ON_CALL,
        },
        clock=clock,
    )
    app.config["TESTING"] = True
    # A client that keeps no request context after a call: the spoke's calls come in between.
    yield HubHarness(app, app.test_client(), clock, tokens)
    app.extensions["teleconsult"].db.dispose()


@pytest.fixture
def clinic(tmp_path: Path, hub: HubHarness) -> Iterator[Clinic]:
    app = make_app(
        spoke_settings(tmp_path / "clinic", "http://hub.invalid", hub.spoke_tokens["PHC-1"])
    )
    s = services(app)
    api = InProcessHubApi(hub.client, hub.spoke_tokens["PHC-1"])
    s.hub_api = s.outbox.hub_api = s.accounts.hub_api = s.hub_client.hub_api = api
    yield Clinic(app, hub, api)
    s.db.dispose()


def _post(hub: HubHarness, path: str, who: dict[str, str], body: Any = None) -> Any:
    answer = hub.client.post(f"/api/v1{path}", json=body if body is not None else {}, headers=who)
    assert answer.status_code < 300, answer.get_json()
    return answer.get_json()


def _raised(hub: HubHarness, clinic: Clinic, **fields: Any) -> dict[str, Any]:
    case = hub.raise_case(**fields)
    clinic.deliver()
    return case


def test_the_specialists_question_reaches_the_clinic_and_is_answered_from_its_page(
    hub: HubHarness, clinic: Clinic
) -> None:
    ortho = hub.login("ortho1")
    case = _raised(hub, clinic)
    _post(hub, f"/cases/{case['id']}/claim", ortho)
    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Send a lateral <view>."})
    clinic.deliver()

    local = clinic.case(case["uid"])
    assert local["status"] == "needs_info" and "provide_info" in local["clinic_actions"]
    question = [t for t in local["thread"] if t["kind"] == "info_request"]
    assert [(q["text"], q["author"]) for q in question] == [
        ("Send a lateral <view>.", "Dr. Ortho Specialist")
    ]
    assert local["messages"][-1]["text"] == "Send a lateral <view>."
    clinic.sign_in()
    live = clinic.live(case["uid"])  # what the open page swaps in: the question and the form
    assert "Send a lateral &lt;view&gt;." in live and "<view>" not in live
    assert 'id="answer"' in live and 'href="#answer"' in live and "Send the answer" in live

    # A plain send from the case page is the answer: the case goes back to the specialist.
    page = clinic.page.get(f"/cases/{case['uid']}").get_data(as_text=True)
    sent = clinic.page.post(
        f"/cases/{case['uid']}/messages",
        data={"text": "Lateral view attached.", "csrf_token": csrf_of(page)},
    )
    assert sent.status_code == 302
    at_hub = hub.client.get(f"/api/v1/cases/{case['id']}", headers=ortho).get_json()
    assert at_hub["status"] == "assigned" and at_hub["assigned_to"]["username"] == "ortho1"
    clinic.deliver()
    local = clinic.case(case["uid"])
    assert local["status"] == "assigned" and "provide_info" not in local["clinic_actions"]
    assert [t["kind"] for t in local["thread"]][-2:] == ["info_request", "info_answer"]
    assert local["thread"][-1]["text"] == "Dr. Clinic 1: Lateral view attached."
    live = clinic.live(case["uid"])
    assert "Send the answer" not in live and 'id="message"' in live

    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/advice", ortho, ADVICE)
    clinic.deliver()
    local = clinic.case(case["uid"])
    assert local["thread"][-1]["kind"] == "advice" and local["advice"][0]["version"] == 1
    assert "Close the case" in clinic.live(case["uid"])


def test_words_the_hub_could_not_take_stay_in_the_box_with_the_reason(
    hub: HubHarness, clinic: Clinic
) -> None:
    """A message sent while the link is down is not silently lost: the case page puts it back in
    the box, says why beside it, and it reaches the specialist when sent again."""
    case = _raised(hub, clinic)
    clinic.sign_in()
    page = clinic.page.get(f"/cases/{case['uid']}").get_data(as_text=True)
    words = "BP 90/60, ECG shows ST elevation <V2-V4>."
    clinic.api.down = True
    sent = clinic.page.post(
        f"/cases/{case['uid']}/messages", data={"text": words, "csrf_token": csrf_of(page)}
    )
    assert sent.status_code == 302 and sent.headers["Location"].endswith("#message-form")
    again = clinic.page.get(f"/cases/{case['uid']}").get_data(as_text=True)
    box = again[again.index('id="message-form"') :]
    assert "BP 90/60, ECG shows ST elevation &lt;V2-V4&gt;.</textarea>" in box
    assert box.index('id="message-error"') < box.index("<textarea")
    assert "your message was not sent" in box
    assert not [t for t in clinic.case(case["uid"])["thread"] if t["kind"] == "message"]
    # Shown once: the next visit has an empty box again.
    assert "ST elevation" not in clinic.page.get(f"/cases/{case['uid']}").get_data(as_text=True)

    clinic.api.down = False
    clinic.page.post(
        f"/cases/{case['uid']}/messages", data={"text": words, "csrf_token": csrf_of(again)}
    )
    clinic.deliver()
    texts = [t["text"] for t in clinic.case(case["uid"])["thread"] if t["kind"] == "message"]
    assert texts == [f"Dr. Clinic 1: {words}"]


def test_an_answer_routed_back_to_the_pool_still_reaches_the_thread(
    hub: HubHarness, clinic: Clinic
) -> None:
    ortho = hub.login("ortho1")
    case = _raised(hub, clinic)
    _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Any allergies?"})
    off = hub.client.patch(
        f"/api/v1/specialists/{_id(hub, 'ortho1')}", json={"on_duty": False}, headers=ortho
    )
    assert off.status_code == 200, off.get_json()
    _post(hub, f"/cases/{case['id']}/provide-info", hub.spoke(), {"text": "None known."})
    clinic.deliver()
    kinds = [(t["kind"], t["text"]) for t in clinic.case(case["uid"])["thread"]]
    assert ("info_answer", "None known.") in kinds


def _id(hub: HubHarness, username: str) -> int:
    from hub.persistence.models import User

    with hub.app.extensions["teleconsult"].db.session() as s:
        return int(s.scalars(select(User.id).where(User.username == username)).one())


def test_the_referral_reason_and_instructions_reach_the_clinic(
    hub: HubHarness, clinic: Clinic
) -> None:
    ortho = hub.login("ortho1")
    case = _raised(hub, clinic, priority="emergency")
    referral = {
        "reason": "Open fracture: needs theatre today at the district hospital.",
        "instructions": "Splint, saline gauze on the wound, IV ceftriaxone 1 g, nil by mouth.",
    }
    _post(hub, f"/cases/{case['id']}/refer", ortho, referral)
    clinic.deliver()
    local = clinic.case(case["uid"])
    assert local["status"] == "referred"
    item = local["thread"][-1]
    assert item["kind"] == "referral" and item["author"] == "Dr. Ortho Specialist"
    assert (item["text"], item["instructions"]) == (referral["reason"], referral["instructions"])
    clinic.sign_in()
    live = clinic.live(case["uid"])
    assert referral["reason"] in live and "saline gauze on the wound, IV ceftriaxone" in live
    assert 'id="referral"' in live and "Close the case" in live
    history = hub.client.get(f"/api/v1/cases/{case['id']}/history", headers=ortho).get_json()
    assert "saline gauze" in history[-1]["reason"]


def test_a_breached_case_tells_the_clinic_what_to_do_and_shows_no_eta(
    hub: HubHarness, clinic: Clinic
) -> None:
    case = _raised(hub, clinic, priority="emergency")
    local = clinic.case(case["uid"])
    assert local["eta"] and not local["sla_breached"]
    clinic.sign_in()
    assert "expected about" in clinic.live(case["uid"])
    hub.clock.advance(minutes=16)
    with hub.app.app_context():
        assert (workflow_tick(hub.app) or {})["sla_breached"] == [case["id"]]
    clinic.deliver()
    local = clinic.case(case["uid"])
    assert local["sla_breached"] and local["eta"] is None
    warning = local["thread"][-1]
    assert warning["kind"] == "sla_warning" and warning["text"] == ON_CALL
    live = clinic.live(case["uid"])
    assert 'id="sla-alert"' in live and "+91 11 2345 6789" in live
    assert "expected about" not in live
    alert = clinic.page.get("/live").get_json()["alert"]
    assert alert["kind"] == "sla_warning" and case["token"] in alert["title"]


def test_a_reassignment_reaches_the_thread(hub: HubHarness, clinic: Clinic) -> None:
    added = hub.client.post(
        "/api/v1/users",
        json={
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "name": "Dr. Ortho 2",
            "specialties": ["ortho"],
        },
        headers=hub.login("admin"),
    )
    assert added.status_code == 201, added.get_json()
    case = _raised(hub, clinic)
    _post(
        hub,
        f"/cases/{case['id']}/reassign",
        hub.login("sup1"),
        {"specialist": "ortho2", "reason": "ortho1 in theatre"},
    )
    clinic.deliver()
    local = clinic.case(case["uid"])
    item = local["thread"][-1]
    assert item["kind"] == "reassigned" and item["to"] == local["assigned_to_name"]
    clinic.sign_in()
    assert f"Now with {item['to']}." in clinic.live(case["uid"])


def test_new_questions_and_advice_are_offered_as_alerts(hub: HubHarness, clinic: Clinic) -> None:
    ortho = hub.login("ortho1")
    case = _raised(hub, clinic)
    clinic.sign_in()
    assert clinic.page.get("/live").get_json()["alert"] is None
    _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Which hand?"})
    clinic.deliver()
    first = clinic.page.get("/live").get_json()["alert"]
    assert first["kind"] == "info_request" and first["body"] == "Which hand?"
    assert case["token"] in first["title"] and first["url"].endswith(case["uid"])
    _post(hub, f"/cases/{case['id']}/provide-info", hub.spoke(), {"text": "Left."})
    _post(hub, f"/cases/{case['id']}/advice", ortho, ADVICE)
    clinic.deliver()
    second = clinic.page.get("/live").get_json()["alert"]
    assert second["kind"] == "advice" and second["id"] > first["id"]


def _doctor(clinic: Clinic) -> tuple[FlaskClient, dict[str, str]]:
    """The spoke's REST API with clinic1's bearer token."""
    client = clinic.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "clinic1", "password": "demo"})
    return client, {"Authorization": f"Bearer {token.get_json()['access_token']}"}


def test_a_case_cancelled_before_it_left_the_clinic_is_never_sent(
    hub: HubHarness, clinic: Clinic
) -> None:
    client, headers = _doctor(clinic)
    clinic.api.down = True
    uid = client.post("/api/v1/cases", json=case_body(), headers=headers).get_json()["uid"]
    answer = client.post(f"/api/v1/cases/{uid}/cancel", json={}, headers=headers)
    assert answer.status_code == 202
    local = answer.get_json()
    assert (local["status"], local["sync_state"], local["cancel"]["state"]) == (
        "cancelled",
        "withdrawn",
        "done",
    )
    assert clinic.store.count_pending() == 0
    clinic.api.down = False
    assert clinic.sync()
    assert ("POST", "/api/v1/cases") not in clinic.api.calls  # the hub never heard of it
    # Had a send been under way, the hub's answer brings the case back: it is cancelled there.
    hub_case = clinic.api.raise_case(hub_body_of(clinic, uid))
    clinic.store.mark_synced(uid, hub_case)
    assert clinic.case(uid)["cancel"]["state"] == "pending"
    assert clinic.sync()
    at_hub = hub.client.get(f"/api/v1/cases/{hub_case['id']}", headers=hub.spoke()).get_json()
    assert at_hub["status"] == "cancelled" and clinic.case(uid)["cancel"]["state"] == "done"


def hub_body_of(clinic: Clinic, uid: str) -> dict[str, Any]:
    with clinic.store.db.session() as session:
        row = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
        assert row is not None
        return hub_body(row)


def test_the_clinic_cancels_offline_first_and_a_resend_is_the_same_cancellation(
    hub: HubHarness, clinic: Clinic
) -> None:
    case = _raised(hub, clinic)
    uid = case["uid"]
    client, headers = _doctor(clinic)
    clinic.api.down = True
    answer = client.post(
        f"/api/v1/cases/{uid}/cancel", json={"reason": "Patient left."}, headers=headers
    )
    assert answer.status_code == 202 and answer.get_json()["cancel"]["state"] == "pending"
    assert not clinic.sync()  # the link is down: the cancellation waits in the outbox
    clinic.sign_in()
    live = clinic.live(uid)
    assert 'id="cancel-note"' in live and 'id="cancel-form"' not in live
    assert not [o for o in clinic.store.open_cases() if o["uid"] == uid]  # off the worklist

    clinic.api.down = False
    assert clinic.sync()
    local = clinic.case(uid)
    assert local["status"] == "cancelled" and local["cancel"]["state"] == "done"
    at_hub = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).get_json()
    assert at_hub["status"] == "cancelled"
    history = hub.client.get(
        f"/api/v1/cases/{case['id']}/history", headers=hub.login("sup1")
    ).get_json()
    assert history[-1]["action"] == "cancel"
    assert history[-1]["reason"] == "Dr. Clinic 1: Patient left."
    # The hub's answer was lost and the spoke sends again: the same cancellation, no error.
    with clinic.store.db.session() as session:
        row = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
        assert row is not None
        row.cancel_state = "pending"
    assert clinic.sync()
    assert clinic.case(uid)["cancel"] == local["cancel"]
    assert clinic.api.calls.count(("POST", f"/api/v1/cases/{case['id']}/cancel")) == 2


def test_a_cancellation_the_hub_overtook_is_refused_with_its_reason(
    hub: HubHarness, clinic: Clinic
) -> None:
    case = _raised(hub, clinic)
    client = clinic.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "clinic1", "password": "demo"})
    headers = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    assert "cancel" in clinic.case(case["uid"])["clinic_actions"]
    clinic.api.down = True
    assert client.post(f"/api/v1/cases/{case['uid']}/cancel", headers=headers).status_code == 202
    clinic.api.down = False
    _post(hub, f"/cases/{case['id']}/advice", hub.login("ortho1"), ADVICE)  # meanwhile at the hub
    assert clinic.sync()
    local = clinic.case(case["uid"])
    assert local["cancel"]["state"] == "refused" and "advised" in local["cancel"]["error"]
    clinic.deliver()
    local = clinic.case(case["uid"])
    assert local["status"] == "advised" and "cancel" not in local["clinic_actions"]
    again = client.post(f"/api/v1/cases/{case['uid']}/cancel", headers=headers)
    assert again.status_code == 409 and again.get_json()["error"]["fields"] == {"status": "advised"}


def test_hub_state_is_applied_by_version_whatever_the_order_of_delivery(
    hub: HubHarness, clinic: Clinic
) -> None:
    ortho = hub.login("ortho1")
    case = hub.raise_case()
    hub.raise_case(priority="routine")  # waits behind it: its place moves as the first moves
    snapshot_raised = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).get_json()
    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/claim", ortho)
    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Weight?"})
    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/provide-info", hub.spoke(), {"text": "61 kg"})
    hub.clock.advance(minutes=1)
    _post(hub, f"/cases/{case['id']}/advice", ortho, ADVICE)
    events = clinic.events()
    versions = [e["case"]["version"] for e in events if e["case_id"] == case["id"]]
    assert versions == sorted(versions) and len(set(versions)) > 3
    # One version names one state of the case: two snapshots alike in version are alike.
    by_version: dict[tuple[int, int], dict[str, Any]] = {}
    for e in events:
        seen = by_version.setdefault((e["case_id"], e["case"]["version"]), e["case"])
        assert seen == e["case"], (e["type"], e.get("action"))

    clinic.deliver(list(reversed(events)))  # newest first, as a resume racing live events might
    local = clinic.case(case["uid"])
    assert local["status"] == "advised" and local["hub_version"] == max(versions)
    assert [t["kind"] for t in local["thread"]] == ["info_request", "info_answer", "advice"]
    # An older REST snapshot (a mirror fetched before the events) arrives last: not applied.
    clinic.store.mirror_cases([snapshot_raised])
    assert clinic.case(case["uid"])["status"] == "advised"
    # Equal or newer is applied; a hub without versions is always applied.
    newest = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).get_json()
    clinic.store.mirror_cases([{**newest, "queue_position": None}])
    clinic.store.mirror_cases([{k: v for k, v in snapshot_raised.items() if k != "version"}])
    assert clinic.case(case["uid"])["status"] == snapshot_raised["status"]


def test_the_heading_and_the_actions_are_in_the_part_the_page_swaps(
    hub: HubHarness, clinic: Clinic
) -> None:
    clinic.sign_in()
    clinic.api.down = True
    case = clinic.store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
    live = clinic.live(case["uid"])
    assert 'id="case-heading"' in live and "(no token yet)" in live
    assert 'id="cancel-form"' in live and 'id="close-form"' not in live
    clinic.api.down = False
    assert clinic.sync()
    clinic.deliver()
    token = clinic.case(case["uid"])["token"]
    live = clinic.live(case["uid"])
    assert token and f"Case {token}" in live and "(no token yet)" not in live
    page = clinic.page.get(f"/cases/{case['uid']}").get_data(as_text=True)
    assert page.count('id="case-heading"') == 1  # only inside the live part


def test_clinic_software_answers_through_the_spoke_api(hub: HubHarness, clinic: Clinic) -> None:
    ortho = hub.login("ortho1")
    case = _raised(hub, clinic)
    client, headers = _doctor(clinic)
    url = f"/api/v1/cases/{case['uid']}/messages"
    _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Which hand?"})
    clinic.deliver()
    clinic.api.down = True
    down = client.post(url, json={"text": "Left."}, headers=headers)
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "hub_unreachable"
    clinic.api.down = False
    assert client.post(url, json={"text": "  "}, headers=headers).status_code == 400
    answered = client.post(url, json={"text": "Left."}, headers=headers)
    assert answered.status_code == 201 and answered.get_json() == {"sent_as": "answer"}
    at_hub = hub.client.get(f"/api/v1/cases/{case['id']}", headers=ortho).get_json()
    assert at_hub["status"] == "assigned"
    clinic.deliver()
    plain = client.post(url, json={"text": "Also swollen."}, headers=headers)
    assert plain.get_json() == {"sent_as": "message"}
    clinic.deliver()
    thread = clinic.case(case["uid"])["thread"]
    assert [(t["kind"], t["text"]) for t in thread][-2:] == [
        ("info_answer", "Dr. Clinic 1: Left."),
        ("message", "Dr. Clinic 1: Also swollen."),
    ]


def test_the_clinics_words_around_the_question_are_in_its_language(
    hub: HubHarness, clinic: Clinic
) -> None:
    case = _raised(hub, clinic)
    clinic.sign_in()
    page = clinic.page.get("/").get_data(as_text=True)
    chosen = clinic.page.post(
        "/language", data={"language": "ru", "next": "/", "csrf_token": csrf_of(page)}
    )
    assert chosen.status_code == 302
    _post(hub, f"/cases/{case['id']}/request-info", hub.login("ortho1"), {"text": "Which hand?"})
    clinic.deliver()
    live = clinic.live(case["uid"])
    assert "Специалист спрашивает:" in live and "Отправить ответ" in live
    assert "Вопрос специалиста" in live and "Which hand?" in live  # the specialist's own words
