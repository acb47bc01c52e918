"""A breach is loud (DESIGN.md, "Clinical safety rules"), in Chromium against a real hub
(eventlet): when an emergency passes its SLA (set to 0 minutes here, so the hub's next periodic
tick breaches it), the supervisor's dashboard and the case's specialist's worklist each alert
(title count, tone, browser notification) and the dashboard lists the case under the breaches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import DESKTOP, watch_console
from tests.e2e.test_consult_loop import NOTIFICATIONS
from tests.integration.hub.conftest import case_body
from tests.support.hub import RunningHub, hub_process

pytestmark = pytest.mark.slow
LIVE = 20_000  # ms: the hub ticks every second here


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningHub]:
    env = {"TELECONSULT_HUB_SLA_EMERGENCY_MIN": "0", "TELECONSULT_HUB_SOCKET_CHECK_S": "1"}
    with hub_process(tmp_path, async_mode="eventlet", extra_env=env) as running:
        yield running


def _signed_in(browser: Any, hub: RunningHub, username: str, problems: list[str]) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(NOTIFICATIONS)
    page = context.new_page()
    watch_console(page, problems)
    page.goto(f"{hub.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    expect(page.locator("#live")).to_be_visible()  # Socket.IO connected
    return page


def test_a_breach_alerts_the_supervisor_and_the_specialist(
    browser: Any, hub: RunningHub, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    problems: list[str] = []
    dashboard = _signed_in(browser, hub, "sup1", problems)
    worklist = _signed_in(browser, hub, "ortho1", problems)
    try:
        answer = requests.post(
            f"{hub.url}/api/v1/cases",
            json=case_body(priority="emergency", complaint="Open fracture, bleeding"),
            headers={"Authorization": f"Bearer {hub.spoke_tokens['PHC-1']}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        case = answer.json()
        for page in (dashboard, worklist):
            expect(page).to_have_title(re.compile(r"^\(\d\) "))
        expect(dashboard.locator("#sla-breaches")).to_contain_text(case["token"])
        for page in (dashboard, worklist):
            notes = page.evaluate("window.__notified")
            breach = [n for n in notes if case["token"] in n["title"] and "SLA" in n["title"]]
            assert breach and "Open fracture" in breach[0]["body"], notes
        dashboard.screenshot(path=str(shots / "hub-dashboard-sla-breach.png"))
    except AssertionError as exc:
        dashboard.screenshot(path=str(shots / "dashboard-breach-failure.png"))
        raise AssertionError(f"{exc}\nbrowser problems: {problems}") from None
    finally:
        dashboard.context.close()
        worklist.context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], problems
