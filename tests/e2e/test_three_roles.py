"""The three roles in real browsers against real hub, spoke and bridge processes: the clinic
doctor raises a case and attaches a study sent with DCMTK's storescu; the specialist sees it
arrive without reloading, scrolls slices, changes the window and issues advice; the clinic's
page shows the advice without reloading; the supervisor's dashboard counts change."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need, need_tool
from tests.dicomgen import make_ct_series, write_series
from tests.e2e.conftest import DESKTOP, TABLET, watch_console
from tests.support.databases import fresh_database, postgres_available
from tests.support.slice import BRIDGE_AET, MODALITY_AET, Slice, clinic_slice

pytestmark = pytest.mark.slow
expect: Any = None
LIVE = 20_000  # ms: an event crosses hub → spoke → page well within this


@pytest.fixture(autouse=True)
def _expect(browser: Any) -> None:
    global expect
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=LIVE)
    expect = pw_expect


def _sign_in_hub(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    if username == "admin":  # admin pages show no clinical events: no Socket.IO there
        expect(page.locator("h1")).to_have_text("Users and roles")
    else:
        expect(
            page.locator("#live")
        ).to_be_visible()  # signed in, Socket.IO connected by the cookie


def _sign_in_spoke(page: Any, url: str) -> None:
    page.goto(f"{url}/signin")
    page.fill("input[name=username]", "clinic1")
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Cases of PHC-1")


def _shoot(pages: dict[str, Any], folder: Path, name: str, page: Any) -> None:
    for size_name, size in (("desktop", DESKTOP), ("tablet", TABLET)):
        page.set_viewport_size(size)
        page.screenshot(path=str(folder / f"{name}-{size_name}.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def _storescu(s: Slice, tmp: Path) -> None:
    storescu = need_tool("storescu")
    # No accession number the clinic knows: the study waits in the clinic's inbox.
    files = write_series(
        make_ct_series(8, rows=128, cols=128, accession_number="NOMATCH01"), tmp / "ct"
    )
    result = subprocess.run(
        [
            storescu,
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "127.0.0.1",
            str(s.dicom_port),
            *map(str, files),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_clinic_specialist_and_supervisor(browser: Any, tmp_path: Path, shots: Path) -> None:
    problems: list[str] = []
    # PostgreSQL, as in production: the pages read images in parallel with the bridge's writes.
    need(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database("postgresql", tmp_path) as url, clinic_slice(tmp_path, url) as s:
        ctx = {
            name: browser.new_context(viewport=DESKTOP)
            for name in ("clinic", "specialist", "supervisor")
        }
        clinic, specialist, supervisor = (
            ctx[n].new_page() for n in ("clinic", "specialist", "supervisor")
        )
        for page in (clinic, specialist, supervisor):
            watch_console(page, problems)
        pages = {"clinic": clinic, "specialist": specialist, "supervisor": supervisor}
        try:
            _play(s, pages, tmp_path, shots)
        except AssertionError as exc:
            for c in ctx.values():
                for i, page in enumerate(c.pages):
                    page.screenshot(path=str(shots / f"failure-{i}-{page.url.split('/')[2]}.png"))
            raise AssertionError(f"{exc}\nbrowser problems: {problems}") from None
        finally:
            for c in ctx.values():
                c.close()
    assert not [
        p for p in problems if "Content Security Policy" in p or "pageerror" in p or "http 5" in p
    ], problems


def _play(s: Slice, pages: dict[str, Any], tmp: Path, shots: Path) -> None:
    clinic, specialist, supervisor = pages["clinic"], pages["specialist"], pages["supervisor"]
    hub = s.hub.url

    specialist.goto(f"{hub}/login")
    _shoot(pages, shots, "hub-login", specialist)
    _sign_in_hub(supervisor, hub, "sup1")
    advised_before = int(supervisor.locator("#tile-advised").inner_text())
    _sign_in_hub(specialist, hub, "ortho1")
    expect(specialist.locator("h1")).to_have_text(re.compile("Worklist"))

    # The clinic doctor raises a case on the form.
    _sign_in_spoke(clinic, s.spoke_url)
    clinic.click("text=Raise a case")
    clinic.fill("input[name=pseudonym]", "RAMPUR-0042")
    clinic.fill("input[name=age]", "34")
    clinic.select_option("select[name=sex]", "male")
    clinic.select_option("select[name=specialty]", "ortho")
    clinic.select_option("select[name=priority]", "urgent")
    clinic.fill(
        "textarea[name=complaint]", "Fall on outstretched hand, swollen wrist <b>not bold</b>"
    )
    clinic.fill("textarea[name=question]", "Fracture? Manage here or refer?")
    clinic.fill("input[name=pulse]", "92")
    _shoot(pages, shots, "spoke-new-case", clinic)
    clinic.click("form.case-form button[type=submit]")
    expect(clinic.locator("#case-status")).to_contain_text(
        re.compile("assigned|queued")
    )  # synced, live
    case_url = clinic.url

    # The specialist sees it arrive without reloading.
    row = specialist.locator("#worklist tr", has_text="RAMPUR-0042")
    expect(row).to_be_visible()
    _shoot(pages, shots, "hub-worklist", specialist)

    # A CT from the modality that matched no case: the clinic attaches it from its inbox.
    _storescu(s, tmp)
    clinic.goto(f"{s.spoke_url}/inbox")
    for _ in range(30):  # the bridge forwards within seconds; the inbox is read from the hub
        if clinic.locator("#inbox tbody tr").count():
            break
        clinic.wait_for_timeout(1000)
        clinic.reload()
    _shoot(pages, shots, "spoke-inbox", clinic)
    clinic.locator("#inbox tbody tr").first.locator("button").click()
    expect(clinic.locator(".flash")).to_contain_text("attached")
    assert clinic.url == case_url
    _shoot(pages, shots, "spoke-case", clinic)

    # The specialist opens the case, scrolls slices, changes the window, advises.
    row.locator("a.token").click()
    img = specialist.locator("#slice")
    expect(img).to_have_attribute("src", re.compile(r"/rendered\?"))
    expect(specialist.locator(".thumb")).to_have_count(1)
    first = specialist.locator("#ov-slice").inner_text()
    specialist.locator("#viewer").focus()
    specialist.keyboard.press("ArrowDown")
    specialist.keyboard.press("ArrowDown")
    expect(specialist.locator("#ov-slice")).not_to_have_text(first)
    specialist.locator("#stage").hover()
    specialist.mouse.wheel(0, 300)
    specialist.select_option("#preset", "bone")
    expect(img).to_have_attribute("src", re.compile("window=bone"))
    box = specialist.locator("#stage").bounding_box()
    specialist.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    specialist.mouse.down()
    specialist.mouse.move(
        box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 30, steps=5
    )
    specialist.mouse.up()
    expect(img).to_have_attribute("src", re.compile(r"window=-?\d+%2C\d+"))
    expect(specialist.locator(".facts")).to_contain_text(
        "<b>not bold</b>"
    )  # escaped, shown as text
    specialist.click("[data-action=claim]")
    expect(specialist.locator("#case-status")).to_have_text(re.compile("in review"))
    expect(specialist.locator("#viewer")).to_have_attribute("data-shown", re.compile("rendered"))
    _shoot(pages, shots, "hub-case", specialist)
    form = specialist.locator("#advice-form")
    form.locator("textarea[name=assessment]").fill("Undisplaced distal radius fracture.")
    form.locator("textarea[name=recommendations]").fill("Below-elbow cast, 4 weeks. Elevate.")
    rx = form.locator("#rx li.rx-item").first
    for name, value in {
        "drug": "Ibuprofen",
        "strength": "400 mg",
        "dose": "1 tablet",
        "frequency": "three times a day",
        "duration": "5 days",
    }.items():
        rx.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    expect(specialist.locator("#advice-list")).to_contain_text(
        "Undisplaced distal radius fracture."
    )

    # The clinic's open case page shows the advice without reloading.
    expect(clinic.locator("#advice")).to_contain_text("Ibuprofen")
    expect(clinic.locator("#case-status")).to_contain_text("advised")
    _shoot(pages, shots, "spoke-case-advised", clinic)
    clinic.goto(s.spoke_url)
    _shoot(pages, shots, "spoke-cases", clinic)

    # The supervisor's dashboard counted it, without reloading.
    expect(supervisor.locator("#tile-advised")).to_have_text(str(advised_before + 1))
    _shoot(pages, shots, "hub-dashboard", supervisor)
    ctx = supervisor.context.browser.new_context(viewport=DESKTOP)
    admin = ctx.new_page()
    _sign_in_hub(admin, hub, "admin")
    _shoot(pages, shots, "hub-admin-users", admin)
    admin.goto(f"{hub}/admin/duty")
    _shoot(pages, shots, "hub-admin-duty", admin)
    admin.context.close()
