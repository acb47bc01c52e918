"""Emergencies first (DESIGN.md, "Clinical safety rules"): a specialist who was away and comes
back is given the pool in queue order before any new case, through the production tick, with a
clock that moves between reads as the real one does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.app import create_app
from hub.realtime.jobs import workflow_tick
from shared.clock import TickingClock
from tests.integration.hub.conftest import HubHarness
from tests.support.hub import prepare_hub_db


@pytest.fixture
def live_hub(tmp_path: Path, database_url: str) -> Iterator[HubHarness]:
    """The hub harness, but with a clock that never reads the same twice."""
    tokens = prepare_hub_db(database_url)
    clock = TickingClock()
    app = create_app(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp_path / "hub"),
            "database_url": database_url,
        },
        clock=clock,
    )
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield HubHarness(app, client, clock, tokens)
    app.extensions["teleconsult"].db.dispose()


def _user_id(hub: HubHarness, username: str) -> int:
    users = hub.client.get("/api/v1/specialists", headers=hub.login("sup1")).json
    return int(next(u["id"] for u in users if u["username"] == username))


def _tick(hub: HubHarness) -> dict[str, Any] | None:
    with hub.app.app_context():
        return workflow_tick(hub.app)


def _case(hub: HubHarness, case_id: int) -> dict[str, Any]:
    return dict(hub.client.get(f"/api/v1/cases/{case_id}", headers=hub.spoke()).json or {})


def test_a_specialist_back_from_offline_gets_the_pooled_emergencies_before_new_cases(
    live_hub: HubHarness,
) -> None:
    hub = live_hub
    presence = hub.app.extensions["teleconsult.realtime"].presence
    ortho1 = _user_id(hub, "ortho1")
    presence.connected(f"user:{ortho1}")
    _tick(hub)
    first = hub.raise_case(priority="emergency")
    second = hub.raise_case(priority="emergency")
    assert {first["assigned_to"]["username"], second["assigned_to"]["username"]} == {"ortho1"}

    presence.disconnected(f"user:{ortho1}")
    _tick(hub)  # notes when ortho1 went away
    hub.clock.advance(seconds=300)
    assert sorted((_tick(hub) or {})["rerouted"]) == sorted([first["id"], second["id"]])
    pooled = [_case(hub, c["id"]) for c in (first, second)]
    assert [(c["status"], c["queue_position"]) for c in pooled] == [("queued", 1), ("queued", 2)]

    presence.connected(f"user:{ortho1}")
    routine = hub.raise_case(priority="routine")  # raised before the next tick sees ortho1 back
    _tick(hub)
    back = [_case(hub, c["id"]) for c in (first, second, routine)]
    assert [c["assigned_to"]["username"] if c["assigned_to"] else None for c in back] == [
        "ortho1",
        "ortho1",
        "ortho1",
    ]
    assert [c["queue_position"] for c in back] == [1, 2, 3]


def test_an_eta_is_never_in_the_past_nor_given_when_nobody_is_on_duty(
    live_hub: HubHarness,
) -> None:
    hub = live_hub
    admin = hub.login("admin")
    eye1 = _user_id(hub, "eye1")
    case = hub.raise_case(specialty="eye", priority="routine")
    ortho = hub.raise_case(specialty="ortho", priority="routine")
    assert case["status"] == "assigned" and case["eta"] is not None
    hub.clock.advance(hours=3)  # nobody started it: the estimate has passed
    _tick(hub)
    late = _case(hub, case["id"])
    now = hub.clock.now()
    assert late["eta"] is not None and datetime.fromisoformat(late["eta"]) >= now - timedelta(
        seconds=1
    )
    # Nobody of the specialty on duty (by schedule): no ETA, "not before" the next duty.
    hub.client.patch(
        f"/api/v1/specialists/{eye1}", json={"duty_schedule": "mon-fri 09:00-10:00"}, headers=admin
    )
    waiting = hub.raise_case(specialty="eye", priority="routine")
    assert waiting["status"] == "queued"
    assert waiting["eta"] is None and waiting["eta_not_before"].startswith("2026-01-06T09:00")
    assert _case(hub, ortho["id"])["eta"] is not None
