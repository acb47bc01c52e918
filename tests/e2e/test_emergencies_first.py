"""Emergencies first, as the specialist sees it in Chromium (DESIGN.md, "Clinical safety rules"):
two emergencies raised for ortho1 while ortho1's browser is closed go to the pool once ortho1 has
been away for `offline_reroute_s`; when ortho1 signs in again, the worklist's "Assigned to me"
gives them the two emergencies first, above the routine case raised as they came back, and the
pool is empty. The hub runs as in production (eventlet, its own periodic tick)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import DESKTOP, watch_console
from tests.integration.hub.conftest import case_body
from tests.support.hub import RunningHub, hub_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
LIVE = 20_000  # ms


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    env = {"TELECONSULT_HUB_OFFLINE_REROUTE_S": "2", "TELECONSULT_HUB_SOCKET_CHECK_S": "1"}
    with hub_process(tmp_path, async_mode="eventlet", extra_env=env) as running:
        yield running


def _worklist(browser: Any, hub: RunningHub, problems: list[str]) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(viewport=DESKTOP).new_page()
    watch_console(page, problems)
    page.goto(f"{hub.url}/login")
    page.fill("input[name=username]", "ortho1")
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    expect(page.locator("#live")).to_be_visible()  # Socket.IO connected: ortho1 is online
    return page


def _raise(hub: RunningHub, priority: str, complaint: str) -> dict[str, Any]:
    answer = requests.post(
        f"{hub.url}/api/v1/cases",
        json=case_body(priority=priority, complaint=complaint),
        headers={"Authorization": f"Bearer {hub.spoke_tokens['PHC-1']}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _status(hub: RunningHub, case_id: int) -> str:
    answer = requests.get(
        f"{hub.url}/api/v1/cases/{case_id}",
        headers={"Authorization": f"Bearer {hub.spoke_tokens['PHC-1']}"},
        timeout=10,
    )
    return str(answer.json()["status"])


def test_back_from_away_the_specialist_gets_the_pooled_emergencies_first(
    browser: Any, hub: RunningHub, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    problems: list[str] = []
    away = _worklist(browser, hub, problems)
    away.context.close()  # ortho1 walks away: no live connection any more
    emergencies = [
        _raise(hub, "emergency", "Open fracture of the tibia"),
        _raise(hub, "emergency", "Crushed hand, pulse absent"),
    ]
    wait_for(
        lambda: all(_status(hub, c["id"]) == "queued" for c in emergencies),
        timeout=30,
        interval=0.2,
        what="the emergencies of an absent specialist go to the pool",
    )

    page = _worklist(browser, hub, problems)
    routine = _raise(hub, "routine", "Old ankle sprain, still sore")
    try:
        rows = page.locator("#mine tbody tr")
        expected = [str(c["id"]) for c in (*emergencies, routine)]

        def in_order() -> bool:
            if [r.get_attribute("data-case-id") for r in rows.all()] == expected:
                return True
            page.reload()  # what ortho1 sees on opening the worklist, whenever they look
            return False

        wait_for(
            in_order,
            timeout=30,
            interval=0.5,
            what="ortho1's own list: the two emergencies, then the routine case",
        )
        expect(page.locator("#pool tbody tr")).to_have_count(0)
        expect(rows.nth(0)).to_have_class("priority-emergency")
        expect(rows.nth(1)).to_have_class("priority-emergency")
        page.screenshot(path=str(shots / "hub-worklist-emergencies-first.png"))
    except AssertionError as exc:
        page.screenshot(path=str(shots / "worklist-emergencies-failure.png"))
        raise AssertionError(f"{exc}\nbrowser problems: {problems}") from None
    finally:
        page.context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], problems
