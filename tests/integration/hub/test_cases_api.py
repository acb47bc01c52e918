"""The hub's case REST API and its real-time events, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.persistence.models import Advice, AuditEntry, Case, Event
from tests.integration.hub.conftest import ADVICE, HubHarness, case_body


def _count(hub: HubHarness, model: type) -> int:
    with hub.app.extensions["teleconsult"].db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_spoke_raises_a_case_and_it_is_tokened_and_assigned(hub: HubHarness) -> None:
    case = hub.raise_case()
    assert case["token"] == "ORTHO-0001"
    assert case["status"] == "assigned"
    assert case["assigned_to"]["username"] == "ortho1"
    assert case["raised_by"]["username"] == "clinic1"
    assert case["queue_position"] == 1
    assert len(case["accession_number"]) <= 16
    second = hub.raise_case()
    assert second["token"] == "ORTHO-0002" and second["queue_position"] == 2


def test_the_same_idempotency_key_gives_the_same_case_and_a_different_body_is_refused(
    hub: HubHarness,
) -> None:
    headers = {**hub.spoke(), "Idempotency-Key": "clinic-key-1"}
    first = hub.client.post("/api/v1/cases", json=case_body(), headers=headers)
    again = hub.client.post("/api/v1/cases", json=case_body(), headers=headers)
    other = hub.client.post(
        "/api/v1/cases", json=case_body(question="Something else?"), headers=headers
    )
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json["id"] == first.json["id"]
    assert other.json["error"]["code"] == "conflict"
    assert _count(hub, Case) == 1


def test_a_case_without_required_fields_is_refused_with_the_fields_named(hub: HubHarness) -> None:
    body = case_body()
    del body["question"]
    body["patient"] = {"pseudonym": "X", "age": 300, "sex": "female"}
    r = hub.client.post("/api/v1/cases", json=body, headers=hub.spoke())
    assert r.status_code == 400
    fields = r.json["error"]["fields"]
    assert "question" in fields and "age" in fields["patient"]
    assert _count(hub, Case) == 0


def test_unknown_or_missing_tokens_get_401_and_nothing_is_stored(hub: HubHarness) -> None:
    r = hub.client.post(
        "/api/v1/cases", json=case_body(), headers={"Authorization": "Bearer not-a-token"}
    )
    assert r.status_code == 401 and r.json["error"]["code"] == "not_authenticated"
    assert hub.client.post("/api/v1/cases", json=case_body()).status_code == 401
    assert hub.client.get("/api/v1/cases").status_code == 401
    assert _count(hub, Case) == 0


def test_an_expired_login_token_is_refused(hub: HubHarness) -> None:
    headers = hub.login("ortho1")
    assert hub.client.get("/api/v1/me", headers=headers).status_code == 200
    hub.clock.advance(hours=13)
    r = hub.client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and "expired" in r.json["error"]["message"]


def test_wrong_password_and_unknown_user_get_the_same_answer(hub: HubHarness) -> None:
    a = hub.client.post("/api/v1/auth/token", json={"username": "ortho1", "password": "nope"})
    b = hub.client.post("/api/v1/auth/token", json={"username": "nobody", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json == b.json


def test_a_raised_by_from_another_spoke_is_refused(hub: HubHarness) -> None:
    r = hub.client.post(
        "/api/v1/cases", json=case_body(raised_by="clinic4"), headers=hub.spoke("PHC-1")
    )
    assert r.status_code == 400 and "raised_by" in r.json["error"]["fields"]


def test_cases_are_scoped_to_the_callers_spoke_and_role(hub: HubHarness) -> None:
    case = hub.raise_case()
    other_spoke = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke("PHC-2"))
    assert other_spoke.status_code == 404
    assert hub.client.get("/api/v1/cases", headers=hub.spoke("PHC-2")).json["total"] == 0
    assert hub.client.get("/api/v1/cases", headers=hub.login("clinic4")).json["total"] == 0
    assert hub.client.get("/api/v1/cases", headers=hub.login("clinic2")).json["total"] == 1
    assert (
        hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("radio1")).status_code
        == 404
    )
    assert (
        hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("sup1")).status_code == 200
    )
    assert hub.client.get("/api/v1/cases", headers=hub.login("admin")).status_code == 403


def test_reading_a_case_is_audited(hub: HubHarness) -> None:
    case = hub.raise_case()
    hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("ortho1"))
    with hub.app.extensions["teleconsult"].db.session() as s:
        reads = s.scalars(select(AuditEntry).where(AuditEntry.action == "read")).all()
        assert [(r.object_type, r.object_id) for r in reads] == [("case", case["uid"])]


def test_free_text_is_stored_as_given(hub: HubHarness) -> None:
    case = hub.raise_case(complaint="<script>alert(1)</script> pain")
    got = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("ortho1")).json
    assert got["complaint"] == "<script>alert(1)</script> pain"


def test_advice_reaches_the_spoke_over_socketio_with_its_seq(hub: HubHarness) -> None:
    spoke_socket = hub.socket(hub.spoke_tokens["PHC-1"])
    other_socket = hub.socket(hub.spoke_tokens["PHC-2"])
    assert spoke_socket.is_connected() and other_socket.is_connected()
    case = hub.raise_case()
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("ortho1")
    )
    assert r.status_code == 201, r.json
    assert r.json["specialist"]["registration_number"] == "REG-ORTHO1"
    events = [(e["name"], e["args"][0]) for e in spoke_socket.get_received()]
    names = [n for n, _ in events]
    assert names == ["case.assigned", "advice.issued"]
    advice_event = events[1][1]
    assert advice_event["advice"]["prescriptions"][0]["drug"] == "Paracetamol"
    assert advice_event["case_id"] == case["id"] and advice_event["seq"] > events[0][1]["seq"]
    assert other_socket.get_received() == []
    assert (
        hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).json["status"]
        == "advised"
    )


def test_the_spoke_acknowledges_advice_and_resume_replays_missed_events(hub: HubHarness) -> None:
    case = hub.raise_case()
    hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("ortho1"))
    late = hub.socket(hub.spoke_tokens["PHC-1"])
    answer = late.emit("resume", {"after_seq": 0}, callback=True)
    assert answer == {"ok": True, "replayed": 2, "resent": 0, "last_seq": 2}
    replayed = [e["args"][0] for e in late.get_received()]
    assert [e["type"] for e in replayed] == ["case.assigned", "advice.issued"]
    # Told about the advice (seq 2) but never acknowledged it: sent again on the next resume.
    assert late.emit("resume", {"after_seq": 2}, callback=True)["resent"] == 1
    assert [e["args"][0]["seq"] for e in late.get_received()] == [2]
    advice_id = replayed[1]["advice"]["id"]
    assert late.emit("advice.ack", {"advice_id": advice_id}, callback=True) == {"ok": True}
    assert late.emit("advice.ack", {"advice_id": advice_id}, callback=True) == {"ok": True}
    from hub.persistence.models import AdviceDelivery

    assert _count(hub, AdviceDelivery) == 1


def test_a_socket_without_a_valid_token_is_refused(hub: HubHarness) -> None:
    assert not hub.socket("wrong").is_connected()


def test_only_the_assigned_specialist_may_advise(hub: HubHarness) -> None:
    hub.client.post("/api/v1/auth/token", json={"username": "ortho1", "password": "demo"})
    case = hub.raise_case(specialty="radio")
    assert (
        hub.client.post(
            f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("ortho1")
        ).status_code
        == 404
    )
    assert (
        hub.client.post(
            f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("clinic1")
        ).status_code
        == 403
    )
    assert _count(hub, Advice) == 0


def test_a_second_advice_is_a_new_version_pointing_to_the_first(hub: HubHarness) -> None:
    case = hub.raise_case()
    headers = hub.login("ortho1")
    first = hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=headers).json
    second = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice",
        json={**ADVICE, "assessment": "Corrected."},
        headers=headers,
    ).json
    assert (second["version"], second["supersedes_id"]) == (2, first["id"])
    listed = hub.client.get(f"/api/v1/cases/{case['id']}/advice", headers=hub.spoke()).json
    assert [a["assessment"] for a in listed] == [ADVICE["assessment"], "Corrected."]


def test_an_event_is_logged_with_each_change_and_none_for_a_refused_one(hub: HubHarness) -> None:
    hub.raise_case()
    hub.client.post("/api/v1/cases", json=case_body(specialty="nope"), headers=hub.spoke())
    with hub.app.extensions["teleconsult"].db.session() as s:
        assert [e.type for e in s.scalars(select(Event))] == ["case.assigned"]


def test_a_case_waits_in_the_queue_when_no_specialist_is_on_duty(hub: HubHarness) -> None:
    from hub.persistence.models import User

    with hub.app.extensions["teleconsult"].db.session() as s:
        s.scalars(select(User).where(User.username == "eye1")).one().on_duty = False
    first = hub.raise_case(specialty="eye", priority="routine")
    second = hub.raise_case(specialty="eye", priority="emergency")
    assert first["status"] == second["status"] == "queued" and first["assigned_to"] is None
    again = hub.client.get(f"/api/v1/cases/{first['id']}", headers=hub.spoke()).json
    assert (second["queue_position"], again["queue_position"]) == (1, 2)


def test_messages_go_both_ways(hub: HubHarness) -> None:
    case = hub.raise_case()
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/messages",
        json={"text": "Any X-ray?"},
        headers=hub.login("ortho1"),
    )
    assert r.status_code == 201
    hub.client.post(
        f"/api/v1/cases/{case['id']}/messages",
        json={"text": "Sending now."},
        headers=hub.login("clinic1"),
    )
    texts = [
        m["text"]
        for m in hub.client.get(f"/api/v1/cases/{case['id']}/messages", headers=hub.spoke()).json
    ]
    assert texts == ["Any X-ray?", "Sending now."]
