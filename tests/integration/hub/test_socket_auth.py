"""Socket.IO connections end when their token stops holding; delivery is visible to specialists."""

from __future__ import annotations

from hub.services.accounts import register_spoke
from tests.integration.hub.conftest import ADVICE, HubHarness


def _sweep(hub: HubHarness) -> int:
    with hub.app.app_context():
        return int(hub.app.extensions["teleconsult.realtime"].sweep())


def test_an_expired_login_ends_its_connection(hub: HubHarness) -> None:
    token = hub.login("ortho1")["Authorization"].split()[1]
    socket = hub.socket(token)
    assert socket.is_connected()
    assert _sweep(hub) == 0 and socket.is_connected()
    hub.clock.advance(hours=13)
    assert _sweep(hub) == 1
    assert not socket.is_connected()


def test_a_logout_ends_its_connection(hub: HubHarness) -> None:
    headers = hub.login("clinic1")
    socket = hub.socket(headers["Authorization"].split()[1])
    assert hub.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    _sweep(hub)
    assert not socket.is_connected()
    assert not hub.socket(headers["Authorization"].split()[1]).is_connected()


def test_a_re_keyed_spoke_loses_its_old_connection(hub: HubHarness) -> None:
    socket = hub.socket(hub.spoke_tokens["PHC-1"])
    with hub.app.extensions["teleconsult"].db.session() as s:
        register_spoke(s, "PHC-1", "")
    _sweep(hub)
    assert not socket.is_connected()


def test_undelivered_advice_is_listed_until_the_spoke_acknowledges_it(hub: HubHarness) -> None:
    case = hub.raise_case()
    specialist = hub.login("ortho1")
    advice = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=specialist
    ).json
    listed = hub.client.get("/api/v1/advice/undelivered", headers=specialist).json
    assert [(a["advice_id"], a["case_token"], a["spoke"]) for a in listed] == [
        (advice["id"], case["token"], "PHC-1")
    ]
    assert hub.client.get("/api/v1/advice/undelivered", headers=hub.login("radio1")).json == []
    spoke = hub.socket(hub.spoke_tokens["PHC-1"])
    assert spoke.emit("advice.ack", {"advice_id": advice["id"]}, callback=True) == {"ok": True}
    assert hub.client.get("/api/v1/advice/undelivered", headers=specialist).json == []
    assert hub.client.get("/api/v1/advice/undelivered", headers=hub.spoke()).status_code == 403


def test_another_spoke_cannot_acknowledge_advice_it_was_not_sent(hub: HubHarness) -> None:
    case = hub.raise_case()
    advice = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("ortho1")
    ).json
    intruder = hub.socket(hub.spoke_tokens["PHC-2"])
    assert intruder.emit("advice.ack", {"advice_id": advice["id"]}, callback=True) == {"ok": False}


def test_presence_counts_live_connections(hub: HubHarness) -> None:
    supervisor = hub.login("sup1")
    assert hub.client.get("/api/v1/presence", headers=supervisor).json == {
        "specialists": [],
        "spokes": [],
    }
    a = hub.socket(hub.login("ortho1")["Authorization"].split()[1])
    hub.socket(hub.spoke_tokens["PHC-1"])
    online = hub.client.get("/api/v1/presence", headers=supervisor).json
    assert [u["username"] for u in online["specialists"]] == ["ortho1"] and online["spokes"] == [
        "PHC-1"
    ]
    a.disconnect()
    assert hub.client.get("/api/v1/presence", headers=supervisor).json["specialists"] == []
    assert hub.client.get("/api/v1/presence", headers=hub.login("ortho1")).status_code == 403


def test_a_specialist_offline_too_long_has_unstarted_cases_routed_again(hub: HubHarness) -> None:
    from hub.realtime.jobs import workflow_tick

    case = hub.raise_case()
    socket = hub.socket(hub.login("ortho1")["Authorization"].split()[1])
    workflow_tick(hub.app)
    hub.clock.advance(minutes=10)
    workflow_tick(hub.app)
    assert (
        hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).json["assigned_to"][
            "username"
        ]
        == "ortho1"
    )

    socket.disconnect()
    workflow_tick(hub.app)  # notes when ortho1 went offline
    hub.clock.advance(minutes=6)  # longer than offline_reroute_s (300 s)
    workflow_tick(hub.app)
    after = hub.client.get(f"/api/v1/cases/{case['id']}", headers=hub.spoke()).json
    assert (after["status"], after["assigned_to"]) == ("queued", None)
