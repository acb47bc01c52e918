"""STOW-RS into the hub's image store and WADO-RS back out, on SQLite and PostgreSQL."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from hub.persistence.models import Instance, Study
from shared.multipart import build_related, parse_related
from tests.dicomgen import make_ct_series
from tests.integration.hub.conftest import HubHarness


def _bytes(ds: Dataset) -> bytes:
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _stow(hub: HubHarness, parts: list[bytes], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    body, content_type = build_related(parts)
    return hub.client.post(
        "/dicomweb/studies", data=body, headers={**hub.spoke(), "Content-Type": content_type, **(headers or {})}
    )


def _instances(hub: HubHarness) -> int:
    with hub.app.extensions["teleconsult"].db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Instance)) or 0)


def test_stow_stores_each_instance_once_links_it_by_accession_and_wado_returns_the_same_bytes(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    series = make_ct_series(3, accession_number=case["accession_number"])
    sent = [_bytes(ds) for ds in series]
    first = _stow(hub, sent)
    assert first.status_code == 200, first.json
    assert len(first.json["00081199"]["Value"]) == 3
    assert _stow(hub, sent[:1]).status_code == 200  # the same SOP instance again: success, stored once
    assert _instances(hub) == 3
    studies = hub.client.get(f"/api/v1/cases/{case['id']}/studies", headers=hub.login("ortho1")).json
    assert studies[0]["study_uid"] == series[0].StudyInstanceUID
    assert studies[0]["series"][0]["instances"] == 3
    ds = series[1]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    r = hub.client.get(url, headers=hub.login("ortho1"))
    assert r.status_code == 200
    boundary = r.headers["Content-Type"].split("boundary=")[1]
    (headers, content), = parse_related(r.data, boundary)
    assert headers["content-type"] == "application/dicom" and content == sent[1]
    assert hub.client.get(url, headers=hub.spoke("PHC-2")).status_code == 404


def test_images_reach_the_specialist_as_an_event(hub: HubHarness) -> None:
    case = hub.raise_case()
    specialist = hub.socket(hub.login("ortho1")["Authorization"].split()[1])
    _stow(hub, [_bytes(ds) for ds in make_ct_series(2, accession_number=case["accession_number"])])
    events = [e["args"][0] for e in specialist.get_received() if e["name"] == "image.received"]
    assert [(e["case_id"], e["received"], e["instances"]) for e in events] == [(case["id"], 2, 2)]


def test_the_case_can_be_named_in_a_header(hub: HubHarness) -> None:
    case = hub.raise_case()
    series = make_ct_series(1, accession_number="UNRELATED")
    assert _stow(hub, [_bytes(series[0])], {"X-Case-UID": case["uid"]}).status_code == 200
    with hub.app.extensions["teleconsult"].db.session() as s:
        assert s.scalars(select(Study.case_id)).one() == case["id"]


def test_a_non_dicom_part_is_refused_and_nothing_is_stored(hub: HubHarness, tmp_path: Path) -> None:
    r = _stow(hub, [b"this is a PDF, honest" * 10])
    assert r.status_code == 409
    failed = r.json["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0xC000]
    assert "not a DICOM file" in r.headers["Warning"]
    assert _instances(hub) == 0
    assert not any((Path(hub.app.extensions["teleconsult"].image_dir)).rglob("*.dcm"))


def test_good_and_bad_parts_together_store_the_good_ones(hub: HubHarness) -> None:
    good_ds, damaged_ds = make_ct_series(2)
    good, damaged = _bytes(good_ds), _bytes(damaged_ds)
    truncated = damaged[: len(damaged) - 500]
    r = _stow(hub, [good, truncated, b"garbage"])
    assert r.status_code == 202
    assert len(r.json["00081199"]["Value"]) == 1 and len(r.json["00081198"]["Value"]) == 2
    # The damaged instance is named, so that a forwarder can set exactly that file aside.
    named = [f.get("00081155", {}).get("Value", [None])[0] for f in r.json["00081198"]["Value"]]
    assert named == [damaged_ds.SOPInstanceUID, None]
    assert _instances(hub) == 1


def test_a_dataset_without_sop_instance_uid_is_refused(hub: HubHarness) -> None:
    ds = make_ct_series(1)[0]
    del ds.SOPInstanceUID
    r = _stow(hub, [_bytes(ds)])
    assert r.status_code == 409 and "SOPInstanceUID" in r.headers["Warning"]


def test_wrong_content_type_gets_415_and_no_token_gets_401(hub: HubHarness) -> None:
    r = hub.client.post("/dicomweb/studies", data=b"x", headers={**hub.spoke(), "Content-Type": "application/json"})
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type"
    body, content_type = build_related([_bytes(make_ct_series(1)[0])])
    assert hub.client.post("/dicomweb/studies", data=body, headers={"Content-Type": content_type}).status_code == 401


def test_an_oversized_upload_gets_413(hub: HubHarness) -> None:
    hub.app.config["MAX_CONTENT_LENGTH"] = 1000
    r = _stow(hub, [_bytes(make_ct_series(1)[0])])
    assert r.status_code == 413 and r.json["error"]["code"] == "request_entity_too_large"
    assert _instances(hub) == 0
