"""Files a clinic doctor uploads on the case page: checked and converted at the spoke, kept on
disk, sent to the real hub's STOW-RS once the case is there, linked to the case."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from shared.schemas import CaseCreateSchema
from spoke.persistence.models import SyncState
from spoke.uploads import ENCAPSULATED_PDF, SECONDARY_CAPTURE, UploadQueue
from spoke.uploads.convert import Instance
from spoke.uploads.queue import file_key
from tests.support.hub import RunningHub
from tests.support.spoke import (
    case_body,
    csrf_of,
    hub_token,
    make_app,
    services,
    sign_in_page,
    spoke_settings,
)
from tests.support.waiting import wait_for

PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def jpeg_photo() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 90)).save(out, format="JPEG")
    return out.getvalue()


def dicom_file(patient_id: str = "OTHER-ID") -> tuple[bytes, str]:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality, ds.InstanceNumber = patient_id, "CT", 1
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 4, 4, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(32)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), str(ds.SOPInstanceUID)


def raise_case(app: Flask) -> dict[str, Any]:
    return services(app).store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")


def upload(client: FlaskClient, uid: str, files: list[tuple[bytes, str]], csrf: bool = True) -> Any:
    data: dict[str, Any] = {"files": [(BytesIO(content), name) for content, name in files]}
    if csrf:
        data["csrf_token"] = csrf_of(client.get(f"/cases/{uid}").get_data(as_text=True))
    return client.post(f"/cases/{uid}/uploads", data=data, content_type="multipart/form-data")


def upload_dir(app: Flask, uid: str) -> Path:
    return services(app).uploads.queue.folder_of(uid)


def test_photo_pdf_and_dicom_reach_the_hub_linked_to_the_case(
    running: Flask, hub: RunningHub
) -> None:
    client = running.test_client()
    case = raise_case(running)
    services(running).outbox.wake()
    synced = wait_for(
        lambda: (
            (c := services(running).store.get_case(case["uid"]))["sync_state"] == SyncState.SYNCED
            and c
        ),
        15,
        what="case synced",
    )
    sign_in_page(client)
    dicom, dicom_uid = dicom_file()
    answer = upload(
        client,
        case["uid"],
        [(jpeg_photo(), "wrist.jpg"), (PDF, "lab report.pdf"), (dicom, "ct.dcm")],
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)

    specialist = {"Authorization": f"Bearer {hub_token(hub, 'med1')}"}
    url = f"{hub.url}/api/v1/cases/{synced['hub_id']}/studies"

    def all_there() -> list[dict[str, Any]] | None:
        studies = requests.get(url, headers=specialist, timeout=10).json()
        count = sum(s["instances"] for study in studies for s in study["series"])
        return studies if count == 3 else None

    studies = wait_for(all_there, 20, what="three instances at the hub")
    assert studies is not None
    uploaded = next(s for s in studies if s["accession_number"] == case["accession_number"])
    assert uploaded["patient_id"] == "PT-0001"
    assert sorted(s["modality"] for s in uploaded["series"]) == ["DOC", "XC"]
    # The hub has the PDF as Encapsulated PDF and the photo as Secondary Capture.
    classes = set()
    for series in uploaded["series"]:
        found = requests.get(
            f"{hub.url}/dicomweb/studies/{uploaded['study_uid']}/series/{series['series_uid']}/instances",
            headers=specialist,
            timeout=10,
        ).json()
        classes |= {i["00080016"]["Value"][0] for i in found}
    assert classes == {ENCAPSULATED_PDF, SECONDARY_CAPTURE}
    wado = requests.get(
        f"{hub.url}/dicomweb/studies/{uploaded['study_uid']}", headers=specialist, timeout=10
    )
    assert wado.status_code == 200 and b"lab report.pdf" in wado.content and PDF in wado.content

    # The confirmed files are gone from the clinic's disk; the page says they are at the hub.
    folder = upload_dir(running, case["uid"])
    wait_for(lambda: not list(folder.glob("*.dcm")), 10, what="sent files removed")
    page = client.get(f"/cases/{case['uid']}").get_data(as_text=True)
    assert page.count("at the hub") >= 3 and "wrist.jpg" in page and "lab report.pdf" in page
    assert dicom_uid in {r["sop_uid"] for r in services(running).uploads.queue.records(case["uid"])}


def test_upload_waits_for_the_case_and_shows_waiting(client: FlaskClient) -> None:
    case = raise_case(client.application)  # no worker runs: the case stays at the clinic
    sign_in_page(client)
    assert upload(client, case["uid"], [(jpeg_photo(), "photo.png.jpg")]).status_code == 302
    assert len(list(upload_dir(client.application, case["uid"]).glob("*.dcm"))) == 1
    stored = pydicom.dcmread(next(upload_dir(client.application, case["uid"]).glob("*.dcm")))
    assert stored.PatientID == "PT-0001" and stored.AccessionNumber == case["accession_number"]
    assert (
        stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and stored.SamplesPerPixel == 3
    )
    page = client.get(f"/cases/{case['uid']}").get_data(as_text=True)
    assert "waiting to be sent" in page and "1 file kept at the clinic" in page


def test_text_renamed_jpg_is_refused_and_nothing_is_queued(client: FlaskClient) -> None:
    case = raise_case(client.application)
    sign_in_page(client)
    answer = upload(
        client, case["uid"], [(jpeg_photo(), "fine.jpg"), (b"just some notes\n", "notes.jpg")]
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert (
        "Nothing was uploaded" in html
        and "notes.jpg: not a DICOM file, JPEG or PNG photo, or PDF report" in html
    )
    assert not upload_dir(client.application, case["uid"]).exists()


def test_dicom_without_sop_instance_uid_is_refused(client: FlaskClient) -> None:
    case = raise_case(client.application)
    sign_in_page(client)
    raw, _ = dicom_file()
    ds = pydicom.dcmread(BytesIO(raw))
    del ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out)
    answer = upload(client, case["uid"], [(out.getvalue(), "broken.dcm")])
    assert answer.status_code == 400 and "has no SOPInstanceUID" in answer.get_data(as_text=True)
    assert not upload_dir(client.application, case["uid"]).exists()


def test_upload_without_csrf_token_is_refused(client: FlaskClient) -> None:
    case = raise_case(client.application)
    sign_in_page(client)
    assert upload(client, case["uid"], [(PDF, "r.pdf")], csrf=False).status_code == 400
    assert not upload_dir(client.application, case["uid"]).exists()


def test_upload_needs_sign_in_and_a_known_case(client: FlaskClient) -> None:
    case = raise_case(client.application)
    answer = client.post(f"/cases/{case['uid']}/uploads")
    assert answer.status_code in (302, 400)
    sign_in_page(client)
    assert upload(client, "no-such-case", [(PDF, "r.pdf")], csrf=False).status_code == 400
    token = csrf_of(client.get(f"/cases/{case['uid']}").get_data(as_text=True))
    answer = client.post(
        "/cases/no-such-case/uploads",
        data={"csrf_token": token, "files": [(BytesIO(PDF), "r.pdf")]},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 404


def test_instance_the_hub_refuses_is_set_aside_with_its_reason(running: Flask) -> None:
    client = running.test_client()
    case = raise_case(running)
    services(running).outbox.wake()
    wait_for(
        lambda: services(running).store.get_case(case["uid"])["hub_id"], 15, what="case synced"
    )
    sign_in_page(client)
    raw, sop_uid = dicom_file()
    ds = pydicom.dcmread(BytesIO(raw))
    ds.PixelData = bytes(
        8
    )  # shorter than 4 x 4 x 2 bytes: the hub refuses it, the spoke does not look
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert upload(client, case["uid"], [(out.getvalue(), "short.dcm")]).status_code == 302
    queue = services(running).uploads.queue
    refused = wait_for(
        lambda: [r for r in queue.records(case["uid"]) if r["state"] == "refused"],
        15,
        what="refused",
    )
    assert refused[0]["sop_uid"] == sop_uid and "truncated" in refused[0]["reason"]
    assert (upload_dir(running, case["uid"]) / "refused" / f"{file_key(sop_uid)}.dcm").exists()
    page = client.get(f"/cases/{case['uid']}").get_data(as_text=True)
    assert "refused by the hub: the pixel data is truncated" in page


def test_files_larger_than_the_apps_form_limit_are_taken(client: FlaskClient) -> None:
    case = raise_case(client.application)
    sign_in_page(client)
    big = BytesIO()
    Image.frombytes("RGB", (1024, 1024), random.Random(7).randbytes(3 * 1024 * 1024)).save(
        big, format="PNG"
    )
    assert big.tell() > 1024 * 1024
    assert upload(client, case["uid"], [(big.getvalue(), "big.png")]).status_code == 302
    assert len(list(upload_dir(client.application, case["uid"]).glob("*.dcm"))) == 1


def _with_sop_uid(sop_uid: str) -> bytes:
    raw, _ = dicom_file()
    ds = pydicom.dcmread(BytesIO(raw))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_path_as_sop_instance_uid_writes_nothing_anywhere(
    client: FlaskClient, tmp_path: Path
) -> None:
    """Finding 1: a SOPInstanceUID ``/abs/path`` or ``../../`` named the file it was written to."""
    case = raise_case(client.application)
    sign_in_page(client)
    outside = tmp_path / "outside" / "evil"
    folder = upload_dir(client.application, case["uid"])
    for crafted in (str(outside), "../../escaped", "../" + case["uid"] + "-x"):
        answer = upload(client, case["uid"], [(_with_sop_uid(crafted), "ct.dcm")])
        assert answer.status_code == 400, crafted
        assert "SOPInstanceUID is not a valid UID" in answer.get_data(as_text=True)
    assert not (tmp_path / "outside").exists()
    assert not (folder.parent.parent / "escaped.dcm").exists()
    assert not (folder.parent / "escaped.dcm").exists()
    written = [p for p in tmp_path.rglob("*.dcm")]
    assert written == [], written


def test_the_queue_names_files_itself_whatever_the_uid(tmp_path: Path) -> None:
    """The queue never takes a name from the instance: a crafted UID stays in the case folder."""
    queue = UploadQueue(tmp_path / "uploads")
    now = datetime(2026, 1, 1, 12, 0)
    for crafted in (str(tmp_path / "abs" / "evil"), "../../evil", "../x/../../evil"):
        queue.add("case-1", Instance(crafted, SECONDARY_CAPTURE, "dicom", "x.dcm", b"DATA"), now)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert {p.parent for p in files} == {queue.folder_of("case-1").relative_to(tmp_path)}
    assert "case-1" not in str(queue.folder_of("case-1"))
    assert all(len(p.stem) == 40 and set(p.stem) <= set("0123456789abcdef") for p in files)
    records = queue.records("case-1")
    assert sorted(r["sop_uid"] for r in records) == sorted(
        [str(tmp_path / "abs" / "evil"), "../../evil", "../x/../../evil"]
    )
    assert queue.data("case-1", records[0]) == b"DATA"


@pytest.fixture
def deid_client(tmp_path: Path, hub: RunningHub) -> Iterator[FlaskClient]:
    app = make_app(
        spoke_settings(
            tmp_path, hub.url, hub.spoke_tokens["PHC-1"], deidentify=True, deid_key="k" * 32
        )
    )
    yield app.test_client()
    services(app).stop()
    services(app).db.dispose()


def test_uploaded_dicom_is_deidentified_before_it_is_queued(deid_client: FlaskClient) -> None:
    """Finding 10: files uploaded through the spoke page skipped de-identification entirely."""
    case = raise_case(deid_client.application)
    sign_in_page(deid_client)
    raw, sop_uid = dicom_file(patient_id="RAMPUR-0042")
    ds = pydicom.dcmread(BytesIO(raw))
    ds.PatientName, ds.MedicalAlerts, ds.Allergies = "Devi^Sita", "epilepsy", "penicillin"
    ds.PatientTelephoneNumbers, ds.PerformedLocation = "+91 98765 43210", "PHC Rampur room 2"
    item = Dataset()
    item.PersonName = "Sharma^Anil"
    ds.ContentSequence = [item]
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)

    assert upload(deid_client, case["uid"], [(out.getvalue(), "ct.dcm")]).status_code == 302

    (queued,) = upload_dir(deid_client.application, case["uid"]).glob("*.dcm")
    sent = queued.read_bytes()
    for secret in (
        b"RAMPUR-0042",
        b"Sita",
        b"epilepsy",
        b"penicillin",
        b"98765",
        b"Rampur",
        b"Anil",
    ):
        assert secret not in sent, secret
    clean = pydicom.dcmread(queued)
    assert clean.PatientID.startswith("ANON-") and clean.PatientIdentityRemoved == "YES"
    assert clean.SOPInstanceUID != sop_uid and clean.SOPInstanceUID.startswith("2.25.")
    (record,) = services(deid_client.application).uploads.queue.records(case["uid"])
    assert record["sop_uid"] == clean.SOPInstanceUID


def test_uploads_queued_by_an_older_spoke_are_still_sent(tmp_path: Path) -> None:
    """Files an older spoke queued under their (checked) UID in a folder named by the case uid."""
    folder = tmp_path / "uploads" / "case-1"
    folder.mkdir(parents=True)
    (folder / "1.2.3.4.dcm").write_bytes(b"DATA")
    record = {"sop_uid": "1.2.3.4", "state": "waiting", "name": "ct.dcm", "added_at": "x"}
    (folder / "1.2.3.4.json").write_text(json.dumps(record))
    queue = UploadQueue(tmp_path / "uploads")
    assert queue.waiting() == {"case-1": [record]}
    assert queue.data("case-1", record) == b"DATA"
    queue.confirmed("case-1", record, datetime(2026, 1, 1))
    assert queue.records("case-1")[0]["state"] == "at_hub"
    assert not (folder / "1.2.3.4.dcm").exists()
