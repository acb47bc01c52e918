"""Images that come late or come again: a PDF report served as a document, instances re-sent with
a corrected AccessionNumber moving to that case (within their spoke), and images that arrive
after the advice flagged to the specialist."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from shared.multipart import build_related
from tests.dicomgen import PDF_BYTES, make_ct_series, make_pdf_report
from tests.integration.hub.conftest import ADVICE, HubHarness

pytestmark = pytest.mark.usefixtures("database_url")


def _bytes(ds: Dataset) -> bytes:
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _stow(hub: HubHarness, datasets: list[Dataset], code: str = "PHC-1", case_uid: str = "") -> Any:
    body, content_type = build_related([_bytes(ds) for ds in datasets])
    headers = {**hub.spoke(code), "Content-Type": content_type}
    if case_uid:
        headers["X-Case-UID"] = case_uid
    return hub.client.post("/dicomweb/studies", data=body, headers=headers)


def _study_uids(hub: HubHarness, case_id: int) -> list[str]:
    r = hub.client.get(f"/api/v1/cases/{case_id}/studies", headers=hub.login("sup1"))
    assert r.status_code == 200, r.json
    return [s["study_uid"] for s in r.json]


@pytest.mark.parametrize("with_case_header", [True, False])
def test_images_resent_with_a_corrected_accession_number_move_to_that_case(
    hub: HubHarness, with_case_header: bool
) -> None:
    wrong = hub.raise_case(patient={"pseudonym": "PT-WRONG", "age": 50, "sex": "male"})
    right = hub.raise_case(patient={"pseudonym": "PT-0001", "age": 42, "sex": "female"})
    series = make_ct_series(3, accession_number=wrong["accession_number"])
    assert _stow(hub, series).status_code == 200
    assert _study_uids(hub, wrong["id"]) == [series[0].StudyInstanceUID]
    spoke = hub.socket(hub.spoke_tokens["PHC-1"])
    spoke.get_received()

    for ds in series:  # the modality's operator corrects the accession number and sends again
        ds.AccessionNumber = right["accession_number"]
    again = _stow(hub, series, case_uid=right["uid"] if with_case_header else "")
    assert again.status_code == 200, again.json
    assert _study_uids(hub, right["id"]) == [series[0].StudyInstanceUID]
    assert _study_uids(hub, wrong["id"]) == []
    events = [e["args"][0] for e in spoke.get_received() if e["name"] == "image.received"]
    assert [(e["case_id"], e["instances"]) for e in events] == [(right["id"], 3)]


def test_a_corrected_accession_number_never_moves_a_study_to_another_spokes_case(
    hub: HubHarness,
) -> None:
    mine = hub.raise_case()
    theirs = hub.raise_case(headers=hub.spoke("PHC-2"), raised_by="clinic4")
    series = make_ct_series(2, accession_number=mine["accession_number"])
    assert _stow(hub, series).status_code == 200
    for ds in series:
        ds.AccessionNumber = theirs["accession_number"]
    _stow(hub, series)  # PHC-1 names PHC-2's accession number: not a case of its own
    _stow(hub, series, code="PHC-2")  # PHC-2 sends PHC-1's instances: not its study
    assert _study_uids(hub, mine["id"]) == [series[0].StudyInstanceUID]
    assert _study_uids(hub, theirs["id"]) == []


def test_a_pdf_report_is_served_as_the_pdf_and_listed_as_a_document(hub: HubHarness) -> None:
    case = hub.raise_case()
    report = make_pdf_report(case["accession_number"])
    assert _stow(hub, [report]).status_code == 200
    base = (
        f"/dicomweb/studies/{report.StudyInstanceUID}/series/{report.SeriesInstanceUID}"
        f"/instances/{report.SOPInstanceUID}/rendered"
    )
    doctor = hub.login("ortho1")
    r = hub.client.get(base + "?accept=application/pdf", headers=doctor)
    assert r.status_code == 200
    assert r.content_type == "application/pdf"
    assert r.data == PDF_BYTES  # the clinic's file, without DICOM's pad byte
    assert r.headers["Content-Disposition"].startswith("inline; filename=")
    r = hub.client.get(base + "?accept=application/pdf&download=1", headers=doctor)
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert hub.client.get(base, headers={**doctor, "Accept": "*/*"}).status_code == 200
    assert hub.client.get(base + "?accept=image/jpeg", headers=doctor).status_code == 415
    assert hub.client.get(base, headers={"Accept": "application/pdf"}).status_code == 401


def _csrf(hub: HubHarness, path: str = "/login") -> str:
    html = hub.client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found[1]


def test_images_after_the_advice_are_flagged_on_the_worklist_and_the_case(hub: HubHarness) -> None:
    case = hub.raise_case()
    ortho = hub.login("ortho1")
    if (case.get("assigned_to") or {}).get("username") != "ortho1":
        assert (
            hub.client.post(f"/api/v1/cases/{case['id']}/claim", headers=ortho).status_code == 200
        )
    assert (
        _stow(hub, make_ct_series(2, accession_number=case["accession_number"])).status_code == 200
    )
    r = hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=ortho)
    assert r.status_code == 201, r.json
    hub.client.post(
        "/login", data={"username": "ortho1", "password": "demo", "csrf_token": _csrf(hub)}
    )
    assert "new image" not in hub.client.get("/worklist/rows").get_data(as_text=True)
    assert 'id="new-images"' not in hub.client.get(f"/cases/{case['id']}/live").get_data(
        as_text=True
    )

    hub.clock.advance(minutes=5)
    late = make_ct_series(3, accession_number=case["accession_number"])
    assert _stow(hub, late).status_code == 200
    rows = hub.client.get("/worklist/rows").get_data(as_text=True)
    assert "3 new images" in rows
    live = hub.client.get(f"/cases/{case['id']}/live").get_data(as_text=True)
    assert 'id="new-images"' in live and "3 new images arrived after the advice" in live
