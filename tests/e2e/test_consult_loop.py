"""The consult loop as the clinic doctor lives it, in Chromium, against real hub (eventlet) and
spoke processes: the specialist's question appears on the open case page with an alert (title,
sound, notification), the doctor answers from that page, advice and then the close button
arrive without a reload; a referral shows its reason and instructions; a case is cancelled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import DESKTOP, watch_console
from tests.support.hub import RunningHub, hub_process, prepare_hub_db, start_hub
from tests.support.processes import running
from tests.support.slice import start_spoke
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
LIVE = 30_000  # ms: an event crosses hub → spoke → page well within this, even on a busy machine
# Records what the page asks of the browser's notifications, so the test can read it.
NOTIFICATIONS = """
window.__notified = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notified.push({ title, body: options && options.body }); }
};
"""


@dataclass
class Loop:
    hub: RunningHub
    spoke_url: str

    def hub_token(self, username: str) -> dict[str, str]:
        answer = requests.post(
            f"{self.hub.url}/api/v1/auth/token",
            json={"username": username, "password": "demo"},
            timeout=10,
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def at_hub(self, path: str, who: dict[str, str], body: Any = None) -> dict[str, Any]:
        answer = requests.post(
            f"{self.hub.url}/api/v1{path}", json=body or {}, headers=who, timeout=10
        )
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    def raise_case(self, **fields: Any) -> dict[str, Any]:
        """A case raised at the clinic (spoke API), once the hub has it."""
        token = requests.post(
            f"{self.spoke_url}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=10,
        ).json()["access_token"]
        who = {"Authorization": f"Bearer {token}"}
        body = {
            "patient": {"pseudonym": "RAMPUR-0042", "age": 34, "sex": "male"},
            "complaint": "Fall on outstretched hand, swollen wrist",
            "question": "Fracture? Manage here or refer?",
            "specialty": "ortho",
            "priority": "urgent",
            **fields,
        }
        url = f"{self.spoke_url}/api/v1/cases"
        uid = requests.post(url, json=body, headers=who, timeout=10).json()["uid"]

        def synced() -> dict[str, Any] | None:
            case = requests.get(f"{url}/{uid}", headers=who, timeout=10).json()
            return dict(case) if case["hub_id"] else None

        return wait_for(synced, 30, interval=0.2, what="the case at the hub")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    with ExitStack() as stack:
        hub = stack.enter_context(hub_process(tmp_path, async_mode="eventlet"))
        spoke, spoke_url = start_spoke(tmp_path, hub)
        stack.enter_context(running(spoke))
        yield Loop(hub, spoke_url)


def _until(page: Any, script: str) -> None:
    """Wait until ``script`` is true in the page (the page's CSP forbids wait_for_function)."""
    wait_for(lambda: page.evaluate(script), LIVE / 1000, interval=0.1, what=script)


def _sign_in(page: Any, url: str, expect: Any) -> None:
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", "clinic1")
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Cases of PHC-1")


def test_question_answer_advice_referral_and_cancel_on_the_clinic_page(
    browser: Any, loop: Loop, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    problems: list[str] = []
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(NOTIFICATIONS)
    page = context.new_page()
    watch_console(page, problems)
    try:
        _sign_in(page, loop.spoke_url, expect)
        _question_and_answer(page, loop, expect, shots)
        _referral(page, loop, expect, shots)
        _cancel(page, loop, expect)
    except AssertionError as exc:
        page.screenshot(path=str(shots / "consult-loop-failure.png"))
        flashes = page.locator(".flash").all_inner_texts()
        raise AssertionError(f"{exc}\nflash: {flashes}\nbrowser problems: {problems}") from None
    finally:
        context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], problems


def _question_and_answer(page: Any, loop: Loop, expect: Any, shots: Path) -> None:
    ortho = loop.hub_token("ortho1")
    case = loop.raise_case()
    page.goto(f"{loop.spoke_url}/cases/{case['uid']}")
    expect(page.locator("#case-heading")).to_contain_text(case["token"])
    expect(page.locator("#send")).to_have_text("Send")
    _until(page, "document.body.dataset.version !== undefined")
    page.evaluate("window.__same_page = true")
    _until(page, "localStorage.getItem('teleconsult.alert.seen') !== null")

    loop.at_hub(f"/cases/{case['hub_id']}/claim", ortho)
    loop.at_hub(
        f"/cases/{case['hub_id']}/request-info", ortho, {"text": "Send a lateral view <please>."}
    )
    request = page.locator("#info-request")
    expect(request).to_contain_text("Send a lateral view <please>.")  # live, escaped
    expect(page.locator("#send")).to_have_text("Send the answer")
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    _until(page, "window.__notified.length === 1")
    assert "asks a question" in page.evaluate("window.__notified[0].title")
    assert page.evaluate("document.body.dataset.alerts") == "1"  # the sound was played
    page.screenshot(path=str(shots / "spoke-case-question.png"))

    request.locator("a", has_text="answer it").click()
    assert page.evaluate("document.activeElement.id") == "answer"
    page.keyboard.type("Lateral view attached; the weight is 61 kg.")
    loop.at_hub(f"/cases/{case['hub_id']}/messages", ortho, {"text": "Thanks, looking now."})
    expect(page.locator("#thread")).to_contain_text("Thanks, looking now.")  # swapped meanwhile
    expect(page.locator("#answer")).to_have_value("Lateral view attached; the weight is 61 kg.")
    assert page.evaluate("window.__same_page === true")  # never reloaded
    with page.expect_navigation():  # the form's POST and its redirect back to the case
        page.locator("#send").click()
    expect(page.locator("#thread li[data-kind=info_answer]")).to_contain_text("61 kg")
    expect(page.locator("#send")).to_have_text("Send")
    at_hub = requests.get(
        f"{loop.hub.url}/api/v1/cases/{case['hub_id']}", headers=ortho, timeout=10
    ).json()
    assert at_hub["status"] == "assigned" and at_hub["assigned_to"]["username"] == "ortho1"

    page.evaluate("window.__same_page = true")
    expect(page.locator("#close-form")).to_have_count(0)
    advice = {
        "assessment": "Undisplaced distal radius fracture.",
        "recommendations": "Below-elbow cast, 4 weeks.",
        "disposition": "manage_locally",
        "prescriptions": [
            {
                "drug": "Ibuprofen",
                "strength": "400 mg",
                "dose": "1 tablet",
                "route": "oral",
                "frequency": "three times a day",
                "duration": "5 days",
            }
        ],
    }
    loop.at_hub(f"/cases/{case['hub_id']}/advice", ortho, advice)
    expect(page.locator("#advice")).to_contain_text("Ibuprofen")
    expect(page.locator("#close-form")).to_be_visible()
    _until(page, "window.__notified.length === 1")  # counted since the answer's page load
    assert "New advice" in page.evaluate("window.__notified[0].title")
    assert page.evaluate("window.__same_page === true")
    page.screenshot(path=str(shots / "spoke-case-advised-live.png"))


def _referral(page: Any, loop: Loop, expect: Any, shots: Path) -> None:
    case = loop.raise_case(priority="emergency", complaint="Open fracture of the left tibia")
    page.goto(f"{loop.spoke_url}/cases/{case['uid']}")
    expect(page.locator("#case-heading")).to_contain_text(case["token"])
    page.evaluate("window.__same_page = true")
    # The specialist refers from the hub's case page, with instructions for the clinic.
    hub_context = page.context.browser.new_context(viewport=DESKTOP)
    specialist = hub_context.new_page()
    try:
        specialist.goto(f"{loop.hub.url}/login")
        specialist.fill("input[name=username]", "ortho1")
        specialist.fill("input[name=password]", "demo")
        specialist.click("main form button[type=submit]")
        expect(specialist.locator("#live")).to_be_visible()
        specialist.goto(f"{loop.hub.url}/cases/{case['hub_id']}")
        specialist.locator("summary", has_text="Refer the patient").click()
        form = specialist.locator("#refer-form")
        form.locator("textarea[name=reason]").fill(
            "Open fracture: theatre today at the district hospital."
        )
        form.locator("textarea[name=instructions]").fill(
            "Splint, saline gauze on the wound, IV ceftriaxone 1 g, nil by mouth."
        )
        form.locator("button[type=submit]").click()
        expect(specialist.locator("#case-status")).to_contain_text("referred")
    finally:
        hub_context.close()
    referral = page.locator("#referral")
    expect(referral).to_contain_text("Open fracture: theatre today at the district hospital.")
    expect(referral).to_contain_text("IV ceftriaxone 1 g, nil by mouth.")
    expect(page.locator("#case-status")).to_contain_text("referred")
    expect(page.locator("#close-form")).to_be_visible()
    assert page.evaluate("window.__same_page === true")
    page.screenshot(path=str(shots / "spoke-case-referred.png"))


def _cancel(page: Any, loop: Loop, expect: Any) -> None:
    case = loop.raise_case(priority="routine")
    page.goto(f"{loop.spoke_url}/cases/{case['uid']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.fill("#cancel-reason", "The patient went home.")
    page.locator("#cancel-form button").click()
    expect(page.locator("#cancel-note")).to_be_visible()
    expect(page.locator("#case-status")).to_contain_text("cancelled")
    expect(page.locator("#cancel-form")).to_have_count(0)
    at_hub = requests.get(
        f"{loop.hub.url}/api/v1/cases/{case['hub_id']}",
        headers=loop.hub_token("sup1"),
        timeout=10,
    ).json()
    assert at_hub["status"] == "cancelled"


def test_a_new_emergency_alerts_the_specialists_worklist(
    browser: Any, loop: Loop, shots: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    problems: list[str] = []
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(NOTIFICATIONS)
    page = context.new_page()
    watch_console(page, problems)
    try:
        page.goto(f"{loop.hub.url}/login")
        page.fill("input[name=username]", "ortho1")
        page.fill("input[name=password]", "demo")
        page.click("main form button[type=submit]")
        expect(page.locator("#live")).to_be_visible()  # Socket.IO connected
        routine = loop.raise_case(priority="routine", complaint="Old knee pain")
        expect(page.locator("#worklist")).to_contain_text(routine["token"])
        assert page.evaluate("window.__notified.length") == 0  # a routine case: no alarm
        emergency = loop.raise_case(priority="emergency", complaint="Crushed hand, bleeding")
        expect(page.locator("#worklist")).to_contain_text(emergency["token"])
        expect(page).to_have_title(re.compile(r"^\(1\) "))
        _until(page, "window.__notified.length === 1")
        note = page.evaluate("window.__notified[0]")
        assert emergency["token"] in note["title"] and "Crushed hand" in note["body"]
        assert page.evaluate("document.body.dataset.alerts") == "1"
        page.screenshot(path=str(shots / "hub-worklist-emergency-alert.png"))
    except AssertionError as exc:
        page.screenshot(path=str(shots / "worklist-alert-failure.png"))
        raise AssertionError(f"{exc}\nbrowser problems: {problems}") from None
    finally:
        context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], problems


def test_the_heading_gets_its_token_live_when_the_hub_comes_back(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    """A case raised while the hub is down: its page shows no token, then the token (and the
    hub's actions) without a reload once the hub is back."""
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    url = f"sqlite:///{tmp_path / 'hub' / 'hub.sqlite'}"
    (tmp_path / "hub").mkdir(parents=True)
    tokens = prepare_hub_db(url)
    hub, port = start_hub(tmp_path, url, async_mode="eventlet")
    with ExitStack() as stack:
        stack.callback(lambda: hub.stop())
        running_hub = RunningHub(f"http://127.0.0.1:{port}", hub, tokens, url, tmp_path, port)
        spoke, spoke_url = start_spoke(tmp_path, running_hub)
        stack.enter_context(running(spoke))
        context = browser.new_context(viewport=DESKTOP)
        stack.callback(context.close)
        page = context.new_page()
        _sign_in(page, spoke_url, expect)
        hub.stop()
        page.click("text=Raise a case")
        page.fill("input[name=pseudonym]", "RAMPUR-0077")
        page.fill("input[name=age]", "51")
        page.select_option("select[name=sex]", "female")
        page.select_option("select[name=specialty]", "ortho")
        page.fill("textarea[name=complaint]", "Painful swollen knee")
        page.fill("textarea[name=question]", "Aspirate here?")
        page.click("form.case-form button[type=submit]")
        heading = page.locator("#case-heading")
        expect(heading).to_contain_text("(no token yet)")
        expect(page.locator("#cancel-form")).to_be_visible()
        page.evaluate("window.__same_page = true")
        hub, _ = start_hub(tmp_path, url, port=port, async_mode="eventlet")
        # The outbox retries with backoff while the hub is away (up to a minute between tries).
        expect(heading).to_contain_text(re.compile(r"ORTHO-\d+"), timeout=90_000)
        expect(page).to_have_title(re.compile(r"ORTHO-\d+"))
        expect(page.locator("#case-status")).to_contain_text(re.compile("assigned|queued"))
        assert page.evaluate("window.__same_page === true")
        page.screenshot(path=str(shots / "spoke-case-token-live.png"))
