"""A breach is loud (DESIGN.md, "Clinical safety rules"): when a case passes its SLA, the
production tick sends ``sla.breached`` to the supervisors (dashboard), the specialty's on-call
specialist and the clinic, each over a real Socket.IO connection, and the dashboard lists the
case under the breaches."""

from __future__ import annotations

from typing import Any

from hub.realtime.jobs import workflow_tick
from tests.integration.hub.conftest import NEW_PASSWORD, HubHarness
from tests.integration.hub.test_pages import sign_in


def _token(hub: HubHarness, username: str) -> str:
    return hub.login(username)["Authorization"].split(" ", 1)[1]


def _breaches(socket: Any) -> list[dict[str, Any]]:
    return [e["args"][0] for e in socket.get_received() if e["name"] == "sla.breached"]


def test_a_breach_reaches_supervisor_on_call_and_clinic_and_the_dashboard_lists_it(
    hub: HubHarness,
) -> None:
    admin = hub.login("admin")
    r = hub.client.post(
        "/api/v1/users",
        json={
            "username": "ortho2",
            "password": NEW_PASSWORD,
            "role": "specialist",
            "specialties": ["ortho"],
            "on_call": True,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.json
    ortho2_id = r.json["id"]
    case = hub.raise_case(priority="emergency", raised_by="clinic1")
    assert case["assigned_to"]["username"] == "ortho1"
    supervisor = hub.socket(_token(hub, "sup1"))
    on_call = hub.socket(_token(hub, "ortho2"))
    clinic = hub.socket(hub.spoke_tokens["PHC-1"])
    for s in (supervisor, on_call, clinic):
        s.get_received()
    hub.clock.advance(minutes=15)
    with hub.app.app_context():
        workflow_tick(hub.app)
    for who, socket in (("supervisor", supervisor), ("on-call", on_call), ("clinic", clinic)):
        got = _breaches(socket)
        assert [b["case_id"] for b in got] == [case["id"]], who
        assert got[0]["case"]["sla_breached"] is True
    assert ortho2_id in _breaches_payload_on_call(hub)
    sign_in(hub, "sup1")
    html = hub.client.get("/dashboard/live").get_data(as_text=True)
    listed = html.split('id="sla-breaches"', 1)
    assert len(listed) == 2 and case["token"] in listed[1].split("</section>", 1)[0]


def _breaches_payload_on_call(hub: HubHarness) -> list[int]:
    from sqlalchemy import select

    from hub.persistence.models import Event

    with hub.app.extensions["teleconsult"].db.session() as s:
        event = s.scalars(select(Event).where(Event.type == "sla.breached")).one()
        return list(event.payload["on_call"])
