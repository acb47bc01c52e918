"""The clinical workflow over REST: lifecycle actions, routing and rerouting, queue events,
hours, SLA, supervision and the dashboard, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.persistence.models import AuditEntry, CaseHistory, Event, User
from hub.realtime.jobs import workflow_tick
from tests.integration.hub.conftest import ADVICE, HubHarness


def _post(hub: HubHarness, path: str, who: dict[str, str], body: Any = None) -> Any:
    return hub.client.post(f"/api/v1{path}", json=body if body is not None else {}, headers=who)


def _user_id(hub: HubHarness, username: str) -> int:
    with hub.app.extensions["teleconsult"].db.session() as s:
        return int(s.scalars(select(User.id).where(User.username == username)).one())


def _events(hub: HubHarness, kind: str) -> list[dict[str, Any]]:
    with hub.app.extensions["teleconsult"].db.session() as s:
        return [
            dict(e.payload, seq=e.seq)
            for e in s.scalars(select(Event).where(Event.type == kind).order_by(Event.seq))
        ]


def test_claim_request_info_answer_and_advise_round_trip(hub: HubHarness) -> None:
    ortho, clinic = hub.login("ortho1"), hub.login("clinic1")
    case = hub.raise_case()
    claimed = _post(hub, f"/cases/{case['id']}/claim", ortho)
    assert claimed.status_code == 200 and claimed.json["status"] == "in_review"
    assert claimed.json["queue_position"] is None and claimed.json["first_response_at"]
    asked = _post(
        hub, f"/cases/{case['id']}/request-info", ortho, {"text": "Send a lateral view, please."}
    )
    assert asked.json["status"] == "needs_info"
    again = _post(hub, f"/cases/{case['id']}/request-info", ortho, {"text": "And?"})
    assert again.status_code == 409 and again.json["error"]["fields"] == {"status": "needs_info"}
    answered = _post(
        hub, f"/cases/{case['id']}/provide-info", clinic, {"text": "Lateral view sent."}
    )
    assert (
        answered.json["status"] == "assigned"
        and answered.json["assigned_to"]["username"] == "ortho1"
    )
    texts = [
        m["text"]
        for m in hub.client.get(f"/api/v1/cases/{case['id']}/messages", headers=clinic).json
    ]
    assert texts == ["Send a lateral view, please.", "Lateral view sent."]
    assert (
        hub.client.post(
            f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=ortho
        ).status_code
        == 201
    )
    closed = _post(hub, f"/cases/{case['id']}/close", clinic)
    assert closed.json["status"] == "closed"
    history = hub.client.get(f"/api/v1/cases/{case['id']}/history", headers=hub.login("sup1")).json
    assert [h["action"] for h in history] == [
        "submit",
        "route",
        "claim",
        "request_info",
        "provide_info",
        "advise",
        "close",
    ]
    assert history[1]["reason"].startswith("to ortho1: raising doctor's supervisor")
    assert history[-1]["actor"] == "clinic1"


def test_illegal_transitions_are_409_with_the_current_state_and_wrong_callers_403(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    clinic, ortho = hub.login("clinic1"), hub.login("ortho1")
    assert (
        _post(hub, f"/cases/{case['id']}/close", clinic).json["error"]["fields"]["status"]
        == "assigned"
    )
    assert _post(hub, f"/cases/{case['id']}/claim", clinic).status_code == 403
    assert (
        _post(hub, f"/cases/{case['id']}/reassign", ortho, {"specialist": "ortho1"}).status_code
        == 403
    )
    assert _post(hub, f"/cases/{case['id']}/claim", hub.login("radio1")).status_code == 404
    assert _post(hub, f"/cases/{case['id']}/refer", ortho, {}).status_code == 400
    _post(hub, f"/cases/{case['id']}/claim", ortho)
    cancel = _post(hub, f"/cases/{case['id']}/cancel", clinic)
    assert cancel.status_code == 409 and cancel.json["error"]["fields"] == {"status": "in_review"}
    referred = _post(
        hub, f"/cases/{case['id']}/refer", ortho, {"reason": "Open fracture: transfer."}
    )
    assert referred.json["status"] == "referred"
    with hub.app.extensions["teleconsult"].db.session() as s:
        actions = [h.action for h in s.scalars(select(CaseHistory).order_by(CaseHistory.id))]
        audited = {a.action for a in s.scalars(select(AuditEntry))}
    assert actions[-1] == "refer" and {"claim", "refer", "route"} <= audited


def test_release_goes_to_the_pool_and_another_specialist_claims_it(hub: HubHarness) -> None:
    admin = hub.login("admin")
    r = _post(
        hub,
        "/users",
        admin,
        {
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "specialties": ["ortho"],
            "max_active_cases": 1,
        },
    )
    assert r.status_code == 201, r.json
    first = hub.raise_case()
    second = hub.raise_case(hub.spoke("PHC-2"), raised_by="clinic5")  # supervised by ortho2 now
    assert (first["assigned_to"]["username"], second["assigned_to"]["username"]) == (
        "ortho1",
        "ortho2",
    )
    released = _post(
        hub, f"/cases/{second['id']}/release", hub.login("ortho2"), {"reason": "theatre"}
    )
    assert (
        released.json["assigned_to"]["username"] == "ortho1"
        and released.json["queue_position"] == 2
    )
    ortho2 = f"/api/v1/specialists/{_user_id(hub, 'ortho2')}"
    hub.client.patch(
        f"/api/v1/specialists/{_user_id(hub, 'ortho1')}",
        json={"max_active_cases": 1},
        headers=admin,
    )
    hub.client.patch(ortho2, json={"on_duty": False}, headers=admin)
    third = hub.raise_case(priority="emergency")
    fourth = hub.raise_case(priority="routine")
    assert third["status"] == "queued" and third["assigned_to"] is None
    pool = hub.client.get(
        "/api/v1/cases?assigned_to=none&order=queue", headers=hub.login("ortho2")
    ).json
    assert [c["id"] for c in pool["items"]] == [third["id"], fourth["id"]]
    # Emergencies first: the routine case cannot be started while the emergency waits.
    refused = _post(hub, f"/cases/{fourth['id']}/claim", hub.login("ortho2"))
    assert (
        refused.status_code == 409 and refused.json["error"]["fields"]["waiting"] == third["token"]
    )
    claimed = _post(hub, f"/cases/{third['id']}/claim", hub.login("ortho2"))
    assert (
        claimed.json["assigned_to"]["username"] == "ortho2"
        and claimed.json["status"] == "in_review"
    )
    assert (
        hub.client.patch(
            ortho2, json={"on_duty": True, "max_active_cases": 2}, headers=admin
        ).status_code
        == 200
    )
    served = hub.client.get(f"/api/v1/cases/{fourth['id']}", headers=hub.spoke()).json
    assert served["assigned_to"]["username"] == "ortho2" and served["routing_reason"].startswith(
        "to ortho2: from the pool"
    )


def test_going_off_duty_reroutes_unstarted_cases_and_tells_the_queue(hub: HubHarness) -> None:
    admin = hub.login("admin")
    _post(
        hub,
        "/users",
        admin,
        {
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "specialties": ["ortho"],
        },
    )
    cases = [hub.raise_case(raised_by="clinic1") for _ in range(3)]
    assert {c["assigned_to"]["username"] for c in cases} == {"ortho1"}
    ortho1 = hub.login("ortho1")
    _post(hub, f"/cases/{cases[0]['id']}/claim", ortho1)
    r = hub.client.patch(
        f"/api/v1/specialists/{_user_id(hub, 'ortho1')}", json={"on_duty": False}, headers=ortho1
    )
    assert r.status_code == 200 and r.json["on_duty"] is False
    after = [hub.client.get(f"/api/v1/cases/{c['id']}", headers=hub.spoke()).json for c in cases]
    assert after[0]["assigned_to"]["username"] == "ortho1"  # started: stays
    assert [a["assigned_to"]["username"] for a in after[1:]] == ["ortho2", "ortho2"]
    assert "ortho1 went off duty" in after[1]["routing_reason"]
    assert (
        hub.client.patch(
            f"/api/v1/specialists/{_user_id(hub, 'ortho2')}",
            json={"on_duty": False},
            headers=ortho1,
        ).status_code
        == 403
    )


def test_a_specialist_offline_too_long_has_cases_rerouted(hub: HubHarness) -> None:
    _post(
        hub,
        "/users",
        hub.login("admin"),
        {
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "specialties": ["ortho"],
        },
    )
    case = hub.raise_case(raised_by="clinic1")
    ortho1, ortho2 = _user_id(hub, "ortho1"), _user_id(hub, "ortho2")
    hub.app.extensions["teleconsult.realtime"].presence.connected(f"user:{ortho2}")
    with hub.app.app_context():  # the production tick, presence from the hub's own registry
        workflow_tick(hub.app)
        hub.clock.advance(seconds=299)
        assert (workflow_tick(hub.app) or {})["rerouted"] == []
        hub.clock.advance(seconds=1)
        assert (workflow_tick(hub.app) or {})["rerouted"] == [case["id"]]
    got = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).json
    assert got["assigned_to"]["username"] == "ortho2" and "offline" in got["routing_reason"]
    summary = hub.client.get("/api/v1/dashboard/summary", headers=hub.login("sup1")).json
    online = {s["username"]: (s["online"], s["on_duty"]) for s in summary["specialists"]}
    assert online["ortho1"] == (False, False) and online["ortho2"] == (True, True)
    assert ortho1 != ortho2


def test_queue_positions_are_pushed_when_they_move(hub: HubHarness) -> None:
    hub.client.patch(
        f"/api/v1/specialists/{_user_id(hub, 'eye1')}",
        json={"on_duty": False},
        headers=hub.login("admin"),
    )
    socket = hub.socket(hub.spoke_tokens["PHC-1"])
    routine = hub.raise_case(specialty="eye", priority="routine")
    assert routine["status"] == "queued" and routine["queue_position"] == 1
    assert routine["eta"] is None  # nobody of the specialty on duty: no estimate
    emergency = hub.raise_case(specialty="eye", priority="emergency")
    assert emergency["queue_position"] == 1
    moved = [e["args"][0] for e in socket.get_received() if e["name"] == "queue.position"]
    assert [(m["case_id"], m["queue_position"]) for m in moved] == [(routine["id"], 2)]
    assert moved[0]["case"]["queue_position"] == 2
    _post(hub, f"/cases/{emergency['id']}/cancel", hub.spoke())
    moved = [e["args"][0] for e in socket.get_received() if e["name"] == "queue.position"]
    assert [(m["case_id"], m["queue_position"]) for m in moved] == [(routine["id"], 1)]


def test_outside_hours_cases_wait_with_a_time_and_emergencies_go_on_call(hub: HubHarness) -> None:
    admin = hub.login("admin")
    r = hub.client.put(
        "/api/v1/specialties/ortho/hours", json={"hours": "mon-fri 10:00-12:00"}, headers=admin
    )
    assert r.status_code == 200 and r.json["open_now"] is False  # the clock says Monday 09:00 UTC
    assert (
        hub.client.put(
            "/api/v1/specialties/ortho/hours", json={"hours": "often"}, headers=admin
        ).status_code
        == 400
    )
    routine = hub.raise_case(priority="routine")
    assert (
        routine["status"] == "queued" and "will be seen from Mon 10:00" in routine["routing_reason"]
    )
    assert routine["eta"].startswith("2026-01-05T10:")
    assert routine["sla_due_at"].startswith("2026-01-06T10:00")  # the SLA clock starts at opening
    nobody = hub.raise_case(priority="emergency")
    assert nobody["status"] == "queued"
    hub.client.patch(
        f"/api/v1/specialists/{_user_id(hub, 'ortho1')}", json={"on_call": True}, headers=admin
    )
    on_call = hub.raise_case(priority="emergency")
    assert on_call["assigned_to"]["username"] == "ortho1" and "on-call" in on_call["routing_reason"]
    hub.app.extensions["teleconsult.realtime"].presence.connected(f"user:{_user_id(hub, 'ortho1')}")
    hub.clock.advance(hours=1)
    with hub.app.app_context():
        workflow_tick(hub.app)
    served = hub.client.get(f"/api/v1/cases/{routine['id']}", headers=hub.spoke()).json
    assert served["status"] == "assigned"


def test_an_sla_breach_is_escalated_and_counted(hub: HubHarness) -> None:
    case = hub.raise_case(priority="emergency")
    hub.clock.advance(minutes=14)
    assert (
        hub.client.get("/api/v1/dashboard/summary", headers=hub.login("sup1")).json["sla_breaches"]
        == 0
    )
    hub.clock.advance(minutes=1)
    summary = hub.client.get("/api/v1/dashboard/summary", headers=hub.login("sup1")).json
    assert summary["sla_breaches"] == 1
    breach = _events(hub, "sla.breached")
    assert len(breach) == 1 and breach[0]["escalated_to"] == _user_id(hub, "ortho1")
    got = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.login("sup1")).json
    assert got["sla_breached"] is True
    listed = hub.client.get("/api/v1/cases?sla_breached=true", headers=hub.login("sup1")).json
    assert [c["id"] for c in listed["items"]] == [case["id"]]


def test_supervision_groups_shortfall_and_reassignment(hub: HubHarness) -> None:
    sup = hub.login("sup1")
    groups = hub.client.get("/api/v1/supervision?specialty=ortho", headers=sup).json
    assert (
        groups[0]["shortfall"] == 1
        and groups[0]["shortfall_text"] == "1 specialist missing in orthopaedics"
    )
    assert len(groups[0]["groups"][0]["supervisees"]) == 4
    assert [u["username"] for u in groups[0]["unsupervised"]] == ["clinic5"]
    r = _post(
        hub,
        "/supervision/reassign",
        sup,
        {"specialty": "ortho", "doctor": "clinic5", "specialist": "ortho1"},
    )
    assert r.status_code == 409
    _post(
        hub,
        "/users",
        hub.login("admin"),
        {
            "username": "ortho2",
            "password": "a long passphrase",
            "role": "specialist",
            "specialties": ["ortho"],
        },
    )
    r = _post(
        hub,
        "/supervision/reassign",
        sup,
        {"specialty": "ortho", "doctor": "clinic1", "specialist": "ortho2"},
    )
    assert r.status_code == 200
    teams = {
        g["specialist"]["username"]: [u["username"] for u in g["supervisees"]]
        for g in r.json[0]["groups"]
    }
    assert sorted(teams["ortho2"]) == ["clinic1", "clinic5"] and len(teams["ortho1"]) == 3
    summary = hub.client.get("/api/v1/dashboard/summary", headers=sup).json
    assert summary["shortfall"]["ortho"] == 0 and summary["shortfall"]["eye"] == 1
    assert (
        hub.client.get("/api/v1/dashboard/summary", headers=hub.login("clinic1")).status_code == 403
    )
    deactivated = hub.client.patch(
        f"/api/v1/specialists/{_user_id(hub, 'ortho2')}",
        json={"active": False},
        headers=hub.login("admin"),
    )
    assert deactivated.status_code == 200
    after = hub.client.get("/api/v1/supervision?specialty=ortho", headers=sup).json[0]
    assert after["shortfall"] == 1 and len(after["groups"]) == 1


def test_the_openapi_document_covers_the_workflow(hub: HubHarness) -> None:
    doc = hub.client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/v1/cases",
        "/api/v1/cases/{case_id}/claim",
        "/api/v1/cases/{case_id}/release",
        "/api/v1/cases/{case_id}/request-info",
        "/api/v1/cases/{case_id}/refer",
        "/api/v1/cases/{case_id}/close",
        "/api/v1/cases/{case_id}/cancel",
        "/api/v1/dashboard/summary",
        "/api/v1/supervision",
    ):
        assert path in doc["paths"], path
    claim = doc["paths"]["/api/v1/cases/{case_id}/claim"]["post"]
    assert "409" in claim["responses"]
    assert (
        "Case" in doc["components"]["schemas"]
        and "DashboardSummary" in doc["components"]["schemas"]
    )
    assert "queue_position" in doc["components"]["schemas"]["Case"]["properties"]
