"""What the specialist and the clinic see around advice, in Chromium against real hub and spoke
processes: the prescription cards and their field errors, the printed e-prescription (one A4
page), a PDF report at the hub, new images after advice, and the pages in every language."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.conftest import DESKTOP, watch_console
from tests.support.hub import RunningHub, hub_process
from tests.support.processes import running
from tests.support.slice import start_spoke

pytestmark = pytest.mark.slow
LIVE = 20_000  # ms

RX = [
    {
        "drug": "Paracetamol",
        "strength": "500 mg",
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "every 6 hours when needed",
        "duration": "5 days",
        "instructions": "after food",
    },
    {
        "drug": "Ibuprofen",
        "strength": "400 mg",
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "three times a day",
        "duration": "5 days",
        "instructions": "stop if stomach pain",
    },
    {
        "drug": "Calcium carbonate + vitamin D3",
        "strength": "500 mg / 250 IU",
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "once a day",
        "duration": "6 weeks",
        "instructions": "",
    },
]


@dataclass
class World:
    hub: RunningHub
    spoke_url: str

    def token(self, username: str, url: str | None = None) -> dict[str, str]:
        r = requests.post(
            f"{url or self.hub.url}/api/v1/auth/token",
            json={"username": username, "password": "demo"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return {"Authorization": "Bearer " + r.json()["access_token"]}

    def spoke_auth(self, code: str = "PHC-1") -> dict[str, str]:
        return {"Authorization": "Bearer " + self.hub.spoke_tokens[code]}

    def api(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
        r = requests.request(
            method, f"{self.hub.url}/api/v1{path}", headers=headers, timeout=20, **kw
        )
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json()

    def case_for(self, specialist: str, pseudonym: str, specialty: str = "ortho") -> dict[str, Any]:
        """A case raised by clinic1 at PHC-1, in review by ``specialist``."""
        case = self.api(
            "POST",
            "/cases",
            self.spoke_auth(),
            json={
                "patient": {"pseudonym": pseudonym, "age": 34, "sex": "male"},
                "complaint": "Fall on outstretched hand, swollen wrist",
                "question": "Fracture? Manage here or refer?",
                "specialty": specialty,
                "priority": "urgent",
                "raised_by": "clinic1",
            },
        )
        me = self.token(specialist)
        if (case.get("assigned_to") or {}).get("username") != specialist:
            case = self.api("POST", f"/cases/{case['id']}/claim", me)
        return dict(case)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("world")
    with ExitStack() as stack:
        hub = stack.enter_context(
            hub_process(tmp, extra_env={"TELECONSULT_HUB_TIMEZONE": "Asia/Kolkata"})
        )
        spoke, spoke_url = start_spoke(
            tmp, hub, extra_env={"TELECONSULT_SPOKE_TIMEZONE": "Asia/Kolkata"}
        )
        stack.enter_context(running(spoke))
        yield World(hub, spoke_url)


@pytest.fixture
def expect(browser: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=LIVE)
    return pw_expect


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=DESKTOP)
    p = ctx.new_page()
    p.problems = []
    watch_console(p, p.problems)
    yield p
    ctx.close()


def sign_in_hub(page: Any, world: World, username: str, language: str = "en") -> None:
    page.goto(f"{world.hub.url}/login")
    if language:
        with page.expect_navigation():
            page.select_option("#language", language)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


# -- item 8: the prescription while typing, and errors next to the fields ------------------------


def test_prescription_cards_are_readable_at_1280_and_errors_sit_next_to_their_fields(
    world: World, page: Any, expect: Any, shots: Path
) -> None:
    case = world.case_for("ortho1", "RX-GRID-1")
    sign_in_hub(page, world, "ortho1", language="hi")
    page.goto(f"{world.hub.url}/cases/{case['id']}")
    form = page.locator("#advice-form")
    form.locator("textarea[name=assessment]").fill("Undisplaced distal radius fracture.")
    form.locator("textarea[name=recommendations]").fill("Below-elbow cast, 4 weeks.")
    page.click("#rx-add")
    cards = form.locator("#rx li.rx-item")
    expect(cards).to_have_count(2)
    first = cards.nth(0)
    first.locator("input[name=drug]").fill("Amoxicillin + clavulanic acid")
    first.locator("input[name=strength]").fill("625 mg")
    first.locator("input[name=instructions]").fill("after food, finish the course")
    cards.nth(1).locator("input[name=drug]").fill("Paracetamol")
    first.locator("input[name=drug]").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "hub-rx-typing-1280.png"))
    # Every input is wide enough to read what is typed; no two labels or inputs overlap.
    boxes = []
    for name in ("drug", "strength", "dose", "route", "frequency", "duration", "instructions"):
        field = first.locator(f"input[name={name}]")
        box = field.bounding_box()
        assert box["width"] >= 95, (name, box)
        boxes.append(box)
        label = first.locator(f"label:has(input[name={name}]) > span")
        expect(label).to_be_visible()
        boxes.append(label.bounding_box())
    drug = first.locator("input[name=drug]").bounding_box()
    assert drug["width"] >= 180
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    assert first.locator("label > span").first.evaluate("e => e.scrollWidth <= e.clientWidth")

    # Submit with doses and frequencies missing: the hub refuses; each message is beside its
    # input, in Hindi, and no raw JSON appears anywhere.
    form.locator("button[type=submit]").click()
    dose_error = first.locator("input[name=dose] + .field-error")
    expect(dose_error).to_have_text("आवश्यक है।")
    expect(cards.nth(1).locator("input[name=duration] + .field-error")).to_be_visible()
    expect(first.locator("input[name=dose]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".form-error")).to_be_visible()
    assert "{" not in page.locator("main").inner_text()
    expect(first.locator("input[name=drug] + .field-error")).to_have_count(0)
    page.screenshot(path=str(shots / "hub-rx-errors-1280.png"))

    # Filled in, the advice goes through with both drugs.
    for card in (first, cards.nth(1)):
        card.locator("input[name=dose]").fill("1 tablet")
        card.locator("input[name=frequency]").fill("twice a day")
        card.locator("input[name=duration]").fill("5 days")
    form.locator("button[type=submit]").click()
    expect(page.locator("#advice-list")).to_contain_text("Amoxicillin + clavulanic acid")
    expect(page.locator("#advice-list")).to_contain_text("Paracetamol")


# -- item 10: the printed e-prescription ----------------------------------------------------------


def sign_in_spoke(page: Any, world: World, username: str = "clinic1") -> None:
    page.goto(f"{world.spoke_url}/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def _pdf_pages(data: bytes) -> tuple[int, str]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    text = " ".join(p.extract_text() for p in reader.pages)
    return len(reader.pages), " ".join(text.split())


def test_the_printed_e_prescription_is_one_a4_page_with_letterhead_signature_and_local_time(
    world: World, page: Any, expect: Any, shots: Path
) -> None:
    case = world.case_for("ortho1", "PRINT-0042")
    advice = world.api(
        "POST",
        f"/cases/{case['id']}/advice",
        world.token("ortho1"),
        json={
            "assessment": "Undisplaced distal radius fracture.",
            "recommendations": "Below-elbow cast for 4 weeks; elevate the arm; review in 1 week.",
            "disposition": "manage_locally",
            "prescriptions": RX,
            "investigations": "X-ray of the wrist after 1 week",
            "follow_up_date": "2026-12-08",
        },
    )
    sign_in_spoke(page, world)
    page.goto(f"{world.spoke_url}/cases/{case['uid']}")
    expect(page.locator("#advice")).to_contain_text("Calcium carbonate")
    page.emulate_media(media="print")
    page.screenshot(path=str(shots / "spoke-print.png"), full_page=True)
    pages, text = _pdf_pages(page.pdf(format="A4", print_background=True))
    assert pages == 1, text
    issued = datetime.fromisoformat(advice["issued_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    for expected in (
        "Teleconsult hub",  # letterhead: the hub ...
        "Primary Health Centre 1",  # ... and the clinic
        "PRINT-0042",
        "34",
        "Dr. Ortho Specialist",
        "MD, MS",
        "REG-ORTHO1",
        issued.strftime("%d %b %Y, %H:%M"),
        "IST",
        "Calcium carbonate",
        "stop if stomach pain",
    ):
        assert expected in text, (expected, text)
    assert "UTC" not in text
    for hidden in ("Sign out", "Messages", "Complaint", "Print"):
        assert hidden not in text, hidden
    # A signature line: an empty ruled box above the specialist's name.
    line = page.locator(".sign-block .sign-line")
    expect(line).to_be_visible()
    assert line.evaluate("e => getComputedStyle(e).borderBottomStyle") == "solid"

    # The hub's case page prints the same record, in the hub's time zone.
    page.emulate_media(media="screen")
    sign_in_hub(page, world, "ortho1")
    page.goto(f"{world.hub.url}/cases/{case['id']}")
    expect(page.locator("#advice [data-print]")).to_be_visible()
    page.emulate_media(media="print")
    page.screenshot(path=str(shots / "hub-print.png"), full_page=True)
    pages, text = _pdf_pages(page.pdf(format="A4", print_background=True))
    assert pages == 1, text
    for expected in (
        "Teleconsult hub",
        "Primary Health Centre 1",
        "PRINT-0042",
        "Dr. Ortho Specialist",
        "REG-ORTHO1",
        issued.strftime("%d %b %Y, %H:%M") + " IST",
        "Calcium carbonate",
    ):
        assert expected in text, (expected, text)
    for hidden in ("UTC", "Worklist", "Messages", "Request information", "Window"):
        assert hidden not in text, hidden


def _qr_url(pdf: bytes) -> str:
    import zxingcpp
    from pypdf import PdfReader

    images = PdfReader(io.BytesIO(pdf)).pages[0].images
    found = [r.text for i in images for r in zxingcpp.read_barcodes(i.image.convert("L"))]
    assert len(found) == 1, found
    return str(found[0])


def test_the_e_prescription_pdf_buttons_and_the_public_check_of_its_qr_code(
    world: World, page: Any, expect: Any, browser: Any, shots: Path
) -> None:
    case = world.case_for("ortho1", "PDF-0042")
    world.api(
        "POST",
        f"/cases/{case['id']}/advice",
        world.token("ortho1"),
        json={
            "assessment": "Buckle fracture of the distal radius.",
            "recommendations": "Removable splint for 3 weeks.",
            "disposition": "manage_locally",
            "prescriptions": RX,
            "investigations": "",
            "follow_up_date": "2026-12-08",
        },
    )
    # The clinic: the button, and the PDF it opens (made by the spoke from the stored advice).
    sign_in_spoke(page, world)
    page.goto(f"{world.spoke_url}/cases/{case['uid']}")
    button = page.locator("#advice a[data-pdf]")
    expect(button).to_be_visible()
    answer = page.request.get(world.spoke_url + str(button.get_attribute("href")))
    assert answer.ok and answer.headers["content-type"] == "application/pdf"
    pages, text = _pdf_pages(answer.body())
    assert pages == 1 and "PDF-0042" in text and "REG-ORTHO1" in text, text
    # A pharmacist without a login opens the QR code's address.
    url = _qr_url(answer.body())
    assert url.startswith(world.hub.url + "/verify/")
    stranger = browser.new_context(viewport=DESKTOP)
    try:
        check = stranger.new_page()
        check.goto(url)
        expect(check.locator("#verify-status")).to_have_attribute("data-status", "valid")
        shown = check.locator("main").inner_text()
        check.screenshot(path=str(shots / "verify.png"), full_page=True)
    finally:
        stranger.close()
    assert case["token"] in shown and "Dr. Ortho Specialist" in shown
    for clinical in ("Buckle fracture", "Calcium carbonate", "34", "male"):
        assert clinical not in shown, clinical
    # The hub: the same button on the specialist's case page.
    sign_in_hub(page, world, "ortho1")
    page.goto(f"{world.hub.url}/cases/{case['id']}")
    hub_button = page.locator("#advice a[data-pdf]")
    expect(hub_button).to_be_visible()
    answer = page.request.get(world.hub.url + str(hub_button.get_attribute("href")))
    assert answer.ok and _pdf_pages(answer.body())[0] == 1
    assert not [p for p in page.problems if "http 404" in p or "pageerror" in p], page.problems


# -- item 9: a PDF report at the hub, and images after the advice


def _stow(world: World, datasets: list[Any], case_uid: str) -> None:
    from pydicom import dcmwrite

    from shared.multipart import build_related

    parts = []
    for ds in datasets:
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        parts.append(out.getvalue())
    body, content_type = build_related(parts)
    r = requests.post(
        f"{world.hub.url}/dicomweb/studies",
        data=body,
        headers={**world.spoke_auth(), "Content-Type": content_type, "X-Case-UID": case_uid},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_a_pdf_report_opens_at_the_hub_and_images_after_the_advice_are_signalled(
    world: World, page: Any, expect: Any, shots: Path
) -> None:
    from tests.dicomgen import PDF_BYTES, make_ct_series, make_pdf_report

    case = world.case_for("ortho1", "PDF-0001")
    _stow(
        world,
        make_ct_series(3, rows=64, cols=64, accession_number=case["accession_number"]),
        case["uid"],
    )
    _stow(world, [make_pdf_report(case["accession_number"], "PDF-0001")], case["uid"])
    sign_in_hub(page, world, "ortho1")
    page.goto(f"{world.hub.url}/cases/{case['id']}")
    img = page.locator("#slice")
    expect(img).to_have_attribute("src", re.compile(r"/rendered\?"))
    expect(page.locator(".thumb")).to_have_count(2)
    report = page.locator(".thumb.document")
    expect(report).to_contain_text("PDF")
    assert report.locator("img").count() == 0  # no rendered (black) preview of a document
    report.click()
    expect(page.locator("#doc")).to_be_visible()
    expect(img).not_to_have_attribute("src", re.compile("."))  # the CT slice is gone
    expect(page.locator("#doc-title")).to_have_text("Discharge summary (PDF)")
    page.screenshot(path=str(shots / "hub-pdf-report.png"))
    href = page.locator("#doc-open").get_attribute("href")
    answer = page.request.get(world.hub.url + href)
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.body() == PDF_BYTES
    download = page.request.get(world.hub.url + page.locator("#doc-download").get_attribute("href"))
    assert download.headers["content-disposition"].startswith("attachment;")
    page.locator(".thumb:not(.document)").click()  # back to the CT
    expect(page.locator("#doc")).to_be_hidden()
    expect(img).to_have_attribute("src", re.compile(r"/rendered\?"))
    assert not [p for p in page.problems if "http 404" in p or "pageerror" in p], page.problems

    # Advised; then the clinic sends two more images: the worklist shows it without reloading.
    world.api(
        "POST",
        f"/cases/{case['id']}/advice",
        world.token("ortho1"),
        json={
            "assessment": "Undisplaced fracture.",
            "recommendations": "Cast.",
            "disposition": "manage_locally",
            "prescriptions": RX[:1],
        },
    )
    page.goto(f"{world.hub.url}/worklist")
    row = page.locator("#handled tr", has_text=case["token"])
    expect(row).to_be_visible()
    expect(row.locator(".new-images")).to_have_count(0)
    page.wait_for_function(
        "() => document.getElementById('live') && !document.getElementById('live').hidden"
    )
    _stow(
        world,
        make_ct_series(2, rows=64, cols=64, accession_number=case["accession_number"]),
        case["uid"],
    )
    expect(row.locator(".new-images")).to_have_text("2 new images")
    page.screenshot(path=str(shots / "hub-worklist-new-images.png"))
    row.locator("a.token").click()
    expect(page.locator("#new-images")).to_contain_text("2 new images arrived after the advice")


# -- item 12: the dashboard in Russian


CLIPPED = """els => els.filter(e => e.offsetParent !== null).filter(e =>
  e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
).map(e => e.textContent.trim())"""


@pytest.mark.parametrize("width", [1280, 1024])
def test_the_russian_dashboard_shows_every_label_whole(
    world: World, page: Any, expect: Any, shots: Path, width: int
) -> None:
    world.case_for("ortho1", "DASH-RU-1")
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_hub(page, world, "sup1", language="ru")
    expect(page.locator("h1")).to_have_text("Панель хаба")
    page.screenshot(path=str(shots / f"hub-dashboard-ru-{width}.png"), full_page=True)
    labels = page.locator(".tile .label, .tile .value, th, .card h2, .legend li")
    assert labels.count() > 20
    assert labels.evaluate_all(CLIPPED) == []
    # Nothing runs out of its card either (a table would scroll, hiding its last columns).
    assert (
        page.locator(".dash-grid > .card, .table-wrap").evaluate_all(
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1)"
            ".map(e => (e.querySelector('h2') || e).textContent.trim().slice(0, 40))"
        )
        == []
    )
