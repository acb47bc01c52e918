"""STOW-RS into the hub's image store and WADO-RS back out, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, RLELossless
from sqlalchemy import func, select

from hub.persistence.models import Instance, Study
from hub.services.images import ImageService
from shared.multipart import RelatedBody, build_related, parse_related
from tests.dicomgen import compressed, make_ct_series, make_dx, make_us_cine
from tests.integration.hub.conftest import HubHarness


def _bytes(ds: Dataset) -> bytes:
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _stow(hub: HubHarness, parts: list[bytes], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    body, content_type = build_related(parts)
    return hub.client.post(
        "/dicomweb/studies",
        data=body,
        headers={**hub.spoke(), "Content-Type": content_type, **(headers or {})},
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
    assert (
        _stow(hub, sent[:1]).status_code == 200
    )  # the same SOP instance again: success, stored once
    assert _instances(hub) == 3
    studies = hub.client.get(
        f"/api/v1/cases/{case['id']}/studies", headers=hub.login("ortho1")
    ).json
    assert studies[0]["study_uid"] == series[0].StudyInstanceUID
    assert studies[0]["series"][0]["instances"] == 3
    ds = series[1]
    url = _base(ds)
    r = hub.client.get(url, headers=hub.login("ortho1"))
    assert r.status_code == 200
    boundary = r.headers["Content-Type"].split("boundary=")[1]
    ((headers, content),) = parse_related(r.data, boundary)
    assert headers["content-type"] == "application/dicom" and content == sent[1]
    assert hub.client.get(url, headers=hub.spoke("PHC-2")).status_code == 404


def test_images_reach_the_specialist_as_an_event(hub: HubHarness) -> None:
    case = hub.raise_case()
    specialist = hub.socket(hub.login("ortho1")["Authorization"].split()[1])
    _stow(hub, [_bytes(ds) for ds in make_ct_series(2, accession_number=case["accession_number"])])
    events = [e["args"][0] for e in specialist.get_received() if e["name"] == "image.received"]
    assert [(e["case_id"], e["received"], e["instances"]) for e in events] == [(case["id"], 2, 2)]


def test_a_batch_stores_each_instance_once_and_the_event_counts_the_whole_study(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    specialist = hub.socket(hub.login("ortho1")["Authorization"].split()[1])
    first, second, third = (
        _bytes(ds) for ds in make_ct_series(3, accession_number=case["accession_number"])
    )
    assert _stow(hub, [first, second]).status_code == 200

    r = _stow(hub, [second, third, third])  # one already stored, one new sent twice

    assert r.status_code == 200 and len(r.json["00081199"]["Value"]) == 2
    assert _instances(hub) == 3
    events = [e["args"][0] for e in specialist.get_received() if e["name"] == "image.received"]
    assert [(e["received"], e["instances"]) for e in events] == [(2, 2), (1, 3)]


def test_an_instance_stored_meanwhile_by_a_concurrent_request_is_not_stored_twice(
    hub: HubHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = (_bytes(ds) for ds in make_ct_series(2))
    assert _stow(hub, [first]).status_code == 200
    # As if the other request committed between this one's look-up and its insert.
    monkeypatch.setattr(ImageService, "_stored_classes", lambda self, sop_uids: {})

    r = _stow(hub, [first, second])

    assert r.status_code == 200 and len(r.json["00081199"]["Value"]) == 2
    assert _instances(hub) == 2


def test_a_disk_failure_refuses_the_new_parts_and_stores_none_of_them(
    hub: HubHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored, new = (_bytes(ds) for ds in make_ct_series(2))
    assert _stow(hub, [stored]).status_code == 200

    def full_disk(files: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hub.services.images.commit_all_durably", full_disk)
    r = _stow(hub, [stored, new])

    assert r.status_code == 202  # the one stored before is still confirmed
    (failed,) = r.json["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA700] and "No space left" in r.headers["Warning"]
    assert _instances(hub) == 1
    assert len(list(Path(hub.app.extensions["teleconsult"].image_dir).rglob("*.dcm"))) == 1


class ReadSizes(BytesIO):
    """The request body, recording the largest read the hub asks of it."""

    largest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_stow_reads_the_request_a_chunk_at_a_time_never_whole(hub: HubHarness) -> None:
    sent = [_bytes(ds) for ds in make_ct_series(12, rows=512, cols=512)]  # ~6 MB
    body = RelatedBody(sent)
    data = b"".join(body)
    stream = ReadSizes(data)
    tracemalloc.start()
    try:
        r = hub.client.post(
            "/dicomweb/studies",
            input_stream=stream,
            headers={
                **hub.spoke(),
                "Content-Type": body.content_type,
                "Content-Length": str(len(data)),
            },
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert r.status_code == 200, r.json
    assert _instances(hub) == 12
    assert stream.largest <= 64 * 1024  # the whole body would be one read of ~6 MB
    assert peak < len(data) / 3, f"{peak} bytes held for a {len(data)}-byte request"
    stored = sorted(Path(hub.app.extensions["teleconsult"].image_dir).rglob("*.dcm"))
    assert sorted(p.read_bytes() for p in stored) == sorted(sent)
    assert {stat.S_IMODE(p.stat().st_mode) for p in stored} == {0o600}  # private, as before


def test_parts_left_by_a_killed_hub_are_swept_and_a_live_requests_kept(hub: HubHarness) -> None:
    incoming = Path(hub.app.extensions["teleconsult"].image_dir) / ".incoming"
    dead, live = incoming / "dead", incoming / "live"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "1.part").write_bytes(b"half an instance")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(dead, (two_hours_ago, two_hours_ago))

    assert _stow(hub, [_bytes(make_ct_series(1)[0])]).status_code == 200

    assert not dead.exists() and (live / "1.part").exists()
    assert [p.name for p in incoming.iterdir()] == ["live"]  # the request's own folder is gone


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


def test_a_truncated_large_image_is_refused_though_its_pixels_are_not_read(hub: HubHarness) -> None:
    ds = make_ct_series(1, rows=256, cols=256)[
        0
    ]  # 128 KiB of pixel data: only its length is checked
    whole = _bytes(ds)

    r = _stow(hub, [whole[: len(whole) - 1000]])

    assert r.status_code == 409 and "truncated" in r.headers["Warning"]
    assert r.json["00081198"]["Value"][0]["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert _instances(hub) == 0
    assert _stow(hub, [whole]).status_code == 200


def test_a_dataset_without_sop_instance_uid_is_refused(hub: HubHarness) -> None:
    ds = make_ct_series(1)[0]
    del ds.SOPInstanceUID
    r = _stow(hub, [_bytes(ds)])
    assert r.status_code == 409 and "SOPInstanceUID" in r.headers["Warning"]


def test_wrong_content_type_gets_415_and_no_token_gets_401(hub: HubHarness) -> None:
    r = hub.client.post(
        "/dicomweb/studies", data=b"x", headers={**hub.spoke(), "Content-Type": "application/json"}
    )
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type"
    body, content_type = build_related([_bytes(make_ct_series(1)[0])])
    assert (
        hub.client.post(
            "/dicomweb/studies", data=body, headers={"Content-Type": content_type}
        ).status_code
        == 401
    )
    # The caller is known before the body is read: a stranger gets 401 whatever they send.
    assert (
        hub.client.post(
            "/dicomweb/studies", data=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 401
    )


def test_an_oversized_upload_gets_413(hub: HubHarness) -> None:
    hub.app.config["LARGE_BODIES"]["dicomweb.stow"] = 1000
    r = _stow(hub, [_bytes(make_ct_series(1)[0])])
    assert r.status_code == 413 and r.json["error"]["code"] == "request_entity_too_large"
    assert _instances(hub) == 0


# -- QIDO-RS, WADO-RS metadata, frames and rendered previews ---------------------------------------


def _json(hub: HubHarness, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = hub.client.get(url, headers=headers)
    assert r.status_code == 200, r.data[:300]
    assert r.headers["Content-Type"].startswith("application/dicom+json")
    return list(r.get_json())


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _uids(items: list[dict[str, Any]], tag: str = "0020000D") -> list[str]:
    return [_value(i, tag) for i in items]


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(data)))


def _base(ds: Dataset) -> str:
    series = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    return f"{series}/instances/{ds.SOPInstanceUID}"


def test_qido_finds_studies_by_patient_accession_date_and_modality(hub: HubHarness) -> None:
    case = hub.raise_case()
    ct = make_ct_series(2, accession_number=case["accession_number"], patient_id="PSEUDO-CT")
    dx = make_dx(accession_number="NOCASE-1", patient_id="PSEUDO-DX")
    dx.StudyDate = "20200115"
    assert _stow(hub, [_bytes(d) for d in [*ct, dx]]).status_code == 200
    spoke = hub.spoke()

    everything = _json(hub, "/dicomweb/studies", spoke)
    assert sorted(_uids(everything)) == sorted([ct[0].StudyInstanceUID, dx.StudyInstanceUID])
    by_ct = {_value(s, "0020000D"): s for s in everything}[ct[0].StudyInstanceUID]
    assert _value(by_ct, "00201208") == 2 and by_ct["00080061"]["Value"] == ["CT"]
    assert by_ct["00100010"]["Value"] == [{"Alphabetic": "TEST^PATIENT"}]
    assert _uids(_json(hub, "/dicomweb/studies?PatientID=PSEUDO-D*", spoke)) == [
        dx.StudyInstanceUID
    ]
    assert _uids(_json(hub, f"/dicomweb/studies?00080050={case['accession_number']}", spoke)) == [
        ct[0].StudyInstanceUID
    ]
    assert _uids(_json(hub, "/dicomweb/studies?StudyDate=20200101-20200131", spoke)) == [
        dx.StudyInstanceUID
    ]
    assert _uids(_json(hub, "/dicomweb/studies?ModalitiesInStudy=CT", spoke)) == [
        ct[0].StudyInstanceUID
    ]
    assert _uids(_json(hub, "/dicomweb/studies?linked=false", spoke)) == [dx.StudyInstanceUID]
    assert len(_json(hub, "/dicomweb/studies?limit=1&offset=1", spoke)) == 1
    assert hub.client.get("/dicomweb/studies?StudyDate=yesterday", headers=spoke).status_code == 400


def test_qido_is_scoped_like_the_rest_api(hub: HubHarness) -> None:
    case = hub.raise_case()
    linked = make_ct_series(1, accession_number=case["accession_number"])[0]
    unlinked = make_dx(accession_number="NOCASE-2")
    _stow(hub, [_bytes(linked), _bytes(unlinked)])

    assert _uids(_json(hub, "/dicomweb/studies", hub.login("ortho1"))) == [linked.StudyInstanceUID]
    assert _json(hub, "/dicomweb/studies", hub.login("radio1")) == []
    assert _json(hub, "/dicomweb/studies", hub.spoke("PHC-2")) == []
    assert len(_json(hub, "/dicomweb/studies", hub.login("sup1"))) == 2
    # admins read no clinical content: refused, not an empty answer
    assert hub.client.get("/dicomweb/studies", headers=hub.login("admin")).status_code == 403
    assert hub.client.get("/dicomweb/studies").status_code == 401
    assert (
        hub.client.get(
            f"/dicomweb/studies/{unlinked.StudyInstanceUID}/series", headers=hub.login("ortho1")
        ).status_code
        == 404
    )
    assert (
        hub.client.get(_base(linked) + "/rendered", headers=hub.spoke("PHC-2")).status_code == 404
    )


def test_series_and_instances_and_their_metadata_for_a_viewer(hub: HubHarness) -> None:
    case = hub.raise_case()
    ct = make_ct_series(3, accession_number=case["accession_number"])
    _stow(hub, [_bytes(d) for d in ct])
    reader, study = hub.login("ortho1"), ct[0].StudyInstanceUID

    (series,) = _json(hub, f"/dicomweb/studies/{study}/series?Modality=CT", reader)
    assert _value(series, "0020000E") == ct[0].SeriesInstanceUID and _value(series, "00201209") == 3
    instances = _json(
        hub, f"/dicomweb/studies/{study}/series/{ct[0].SeriesInstanceUID}/instances", reader
    )
    assert _uids(instances, "00080018") == [d.SOPInstanceUID for d in ct]
    assert _uids(
        _json(hub, f"/dicomweb/studies/{study}/instances?InstanceNumber=2", reader), "00080018"
    ) == [ct[1].SOPInstanceUID]

    metadata = _json(
        hub, f"/dicomweb/studies/{study}/series/{ct[0].SeriesInstanceUID}/metadata", reader
    )
    assert sorted(_uids(metadata, "00080018")) == sorted(d.SOPInstanceUID for d in ct)
    first = next(m for m in metadata if _value(m, "00080018") == ct[0].SOPInstanceUID)
    assert _value(first, "00280010") == 64 and _value(first, "00281052") == -1024
    assert first["7FE00010"]["BulkDataURI"].endswith(_base(ct[0]))
    assert len(_json(hub, f"/dicomweb/studies/{study}/metadata", reader)) == 3


def test_frames_come_raw_or_as_stored_and_rendered_previews_apply_the_window(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    ct = make_ct_series(1, accession_number=case["accession_number"])[0]
    jp2 = compressed(
        make_ct_series(1, accession_number=case["accession_number"])[0], JPEG2000Lossless
    )
    _stow(hub, [_bytes(ct), _bytes(jp2)])
    reader = hub.login("ortho1")

    r = hub.client.get(_base(ct) + "/frames/1", headers=reader)
    ((headers, raw),) = parse_related(r.data, r.headers["Content-Type"].split("boundary=")[1])
    assert headers["content-type"] == "application/octet-stream" and raw == ct.PixelData
    r = hub.client.get(_base(jp2) + "/frames/1", headers=reader)
    ((headers, stored),) = parse_related(r.data, r.headers["Content-Type"].split("boundary=")[1])
    assert headers["content-type"] == "image/jp2" and stored[:4] in (
        b"\xff\x4f\xff\x51",
        b"\x00\x00\x00\x0c",
    )
    accept = {**reader, "Accept": 'multipart/related; type="application/octet-stream"'}
    r = hub.client.get(_base(jp2) + "/frames/1", headers=accept)
    ((_, decoded),) = parse_related(r.data, r.headers["Content-Type"].split("boundary=")[1])
    assert decoded == jp2.pixel_array.astype("<u2").tobytes()
    assert hub.client.get(_base(ct) + "/frames/2", headers=reader).status_code == 404

    lung = _png(hub.client.get(_base(ct) + "/rendered?window=lung", headers=reader).data)
    brain = _png(hub.client.get(_base(ct) + "/rendered?window=40,80,linear", headers=reader).data)
    # Air (-1000 HU): a dark grey in the lung window (-600/1500), black in the brain window (40/80).
    assert (
        lung.shape == (64, 64)
        and lung[0, 0] == round(255 * ((-1000 + 600.5) / 1499 + 0.5))
        and brain[0, 0] == 0
    )
    assert lung[32, 32] > 200 and 0 < brain[32, 32] < 255  # water-like tissue
    r = hub.client.get(
        _base(jp2) + "/rendered?window=bone", headers={**reader, "Accept": "image/jpeg"}
    )
    assert r.headers["Content-Type"] == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    assert hub.client.get(_base(ct) + "/rendered?window=wide", headers=reader).status_code == 400


def test_a_monochrome1_dx_renders_inverted_and_a_us_cine_frame_by_frame(hub: HubHarness) -> None:
    case = hub.raise_case()
    dx = make_dx(accession_number=case["accession_number"])
    us = compressed(make_us_cine(frames=6, accession_number=case["accession_number"]), RLELossless)
    assert _stow(hub, [_bytes(dx), _bytes(us)]).status_code == 200
    reader = hub.login("ortho1")

    image = _png(hub.client.get(_base(dx) + "/rendered", headers=reader).data)
    # Bone has low stored values; MONOCHROME1 shows low values bright.
    assert image[64, 48] > 200 and image[0, 0] < 50
    frames = [
        _png(hub.client.get(_base(us) + f"/frames/{n}/rendered", headers=reader).data)
        for n in (1, 4)
    ]
    assert frames[0].shape == (48, 64, 3) and not np.array_equal(frames[0], frames[1])
    r = hub.client.get(_base(us) + "/frames/2,3", headers=reader)
    parts = parse_related(r.data, r.headers["Content-Type"].split("boundary=")[1])
    assert [h["content-type"] for h, _ in parts] == ["image/x-dicom-rle"] * 2
    assert hub.client.get(_base(us) + "/frames/7/rendered", headers=reader).status_code == 404


def test_a_study_without_a_case_can_be_attached_by_hand(hub: HubHarness) -> None:
    case = hub.raise_case()
    other_spoke_case = hub.raise_case(headers=hub.spoke("PHC-2"), raised_by="clinic4")
    dx = make_dx(accession_number="WALK-IN")
    _stow(hub, [_bytes(dx)])
    url = f"/dicomweb/studies/{dx.StudyInstanceUID}/case"

    assert (
        hub.client.put(
            url, json={"case_uid": other_spoke_case["uid"]}, headers=hub.spoke()
        ).status_code
        == 404
    )
    assert (
        hub.client.put(url, json={"case_uid": case["uid"]}, headers=hub.spoke("PHC-2")).status_code
        == 404
    )
    r = hub.client.put(url, json={"case_uid": case["uid"]}, headers=hub.spoke())
    assert r.status_code == 200 and r.json["case_id"] == case["id"]
    assert (
        hub.client.put(url, json={"case_uid": case["uid"]}, headers=hub.spoke()).status_code == 200
    )
    studies = hub.client.get(
        f"/api/v1/cases/{case['id']}/studies", headers=hub.login("ortho1")
    ).json
    assert [s["study_uid"] for s in studies] == [dx.StudyInstanceUID]
    assert _json(hub, "/dicomweb/studies?linked=false", hub.spoke()) == []


def _failed(answer: Any) -> dict[str, Any]:
    return {
        item["00081155"]["Value"][0]: item
        for item in (answer.json or {}).get("00081198", {}).get("Value", [])
    }


def test_another_clinic_cannot_take_or_add_to_a_clinics_images(hub: HubHarness) -> None:
    """Finding 2: STOW found studies and series by UID across spokes. PHC-2 moved PHC-1's study
    out of PHC-1's inbox onto a PHC-2 case, and added instances to PHC-1's case."""
    from spoke.inbox import study_summary

    theirs = hub.raise_case(headers=hub.spoke("PHC-2"), raised_by="clinic4")
    walk_in = make_dx(accession_number="WALK-IN")  # PHC-1's, in PHC-1's inbox
    assert _stow(hub, [_bytes(walk_in)]).status_code == 200
    ours = hub.raise_case()
    linked = make_ct_series(2, accession_number=ours["accession_number"])  # on PHC-1's case
    assert _stow(hub, [_bytes(ds) for ds in linked]).status_code == 200
    before = _instances(hub)

    # PHC-2 names PHC-1's unattached study for its own case: refused, nothing stored or moved.
    grab = make_dx(accession_number="X")
    grab.StudyInstanceUID = walk_in.StudyInstanceUID
    grab.SeriesInstanceUID = walk_in.SeriesInstanceUID
    answer = _stow(hub, [_bytes(grab)], {**hub.spoke("PHC-2"), "X-Case-UID": theirs["uid"]})
    assert answer.status_code == 409
    assert _failed(answer)[grab.SOPInstanceUID]["00081197"]["Value"] == [0x0110]
    assert "study UID is held for another clinic" in answer.headers["Warning"]
    # PHC-2 adds an instance to PHC-1's case's study and series, and re-sends PHC-1's instance.
    inject = make_ct_series(1)[0]
    inject.StudyInstanceUID = linked[0].StudyInstanceUID
    inject.SeriesInstanceUID = linked[0].SeriesInstanceUID
    answer = _stow(hub, [_bytes(inject), _bytes(linked[0])], hub.spoke("PHC-2"))
    assert answer.status_code == 409, answer.json
    assert set(_failed(answer)) == {inject.SOPInstanceUID, linked[0].SOPInstanceUID}
    assert "00081199" not in answer.json  # not "stored": the hub does not confirm another's
    # A series UID of PHC-1's under a new study of PHC-2: refused too.
    mixed = make_ct_series(1)[0]
    mixed.SeriesInstanceUID = linked[0].SeriesInstanceUID
    assert _stow(hub, [_bytes(mixed)], hub.spoke("PHC-2")).status_code == 409

    assert _instances(hub) == before
    with hub.app.extensions["teleconsult"].db.session() as s:
        study = s.scalar(select(Study).where(Study.study_uid == walk_in.StudyInstanceUID))
        assert study is not None and study.case_id is None
    # What PHC-1's spoke sees: the walk-in study still waits in its inbox, its case's study
    # still has its two instances; PHC-2's case has no images.
    inbox = [
        study_summary(item) for item in _json(hub, "/dicomweb/studies?linked=false", hub.spoke())
    ]
    assert [(i["study_uid"], i["instances"]) for i in inbox] == [(walk_in.StudyInstanceUID, 1)]
    studies = hub.client.get(f"/api/v1/cases/{ours['id']}/studies", headers=hub.spoke()).json
    assert [(s["study_uid"], s["series"][0]["instances"]) for s in studies] == [
        (linked[0].StudyInstanceUID, 2)
    ]
    theirs_now = hub.client.get(
        f"/api/v1/cases/{theirs['id']}/studies", headers=hub.spoke("PHC-2")
    ).json
    assert theirs_now == []
    assert _json(hub, "/dicomweb/studies?linked=false", hub.spoke("PHC-2")) == []


def test_the_hub_names_its_image_files_itself(hub: HubHarness) -> None:
    """DESIGN.md: file names never come from client data; the UIDs a sender chose name nothing."""
    ds = make_ct_series(1)[0]
    assert _stow(hub, [_bytes(ds)]).status_code == 200
    with hub.app.extensions["teleconsult"].db.session() as s:
        (instance,) = s.scalars(select(Instance)).all()
        path = Path(instance.path)
    image_dir = Path(hub.app.extensions["teleconsult"].image_dir)
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid not in str(path)
    assert not path.is_absolute() and ".." not in path.parts
    assert (image_dir / path).read_bytes() == _bytes(ds)


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header (SOF0) says ``width`` x ``height``."""
    out = BytesIO()
    Image.new("L", (64, 64), 90).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _path(ds: Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_a_decompression_bomb_is_refused_before_it_is_decoded(hub: HubHarness) -> None:
    """Finding 5: a 4.5 MB compressed 12000 x 12000 image took 4.8 GB to render. The pixel count
    is judged from the headers (the DICOM header and the bitstream's own) before decoding."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    case = hub.raise_case()
    bomb = make_dx(accession_number=case["accession_number"], rows=64, cols=64)
    bomb.BitsAllocated, bomb.BitsStored, bomb.HighBit = 8, 8, 7
    bomb.PhotometricInterpretation = "MONOCHROME2"
    bomb.PixelData = encapsulate([_jpeg_claiming(12000, 12000)])
    bomb["PixelData"].VR = "OB"
    bomb.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    bomb.LossyImageCompression = "01"
    assert len(_bytes(bomb)) < 10_000
    # A real compressed image, larger than a limit set low for the test.
    big = compressed(
        make_dx(accession_number=case["accession_number"], rows=1200, cols=1000), JPEG2000Lossless
    )
    assert _stow(hub, [_bytes(bomb), _bytes(big)]).status_code == 200
    reader = hub.login("ortho1")

    for url in (f"{_path(bomb)}/rendered", f"{_path(bomb)}/frames/1/rendered"):
        answer = hub.client.get(url, headers=reader)
        assert answer.status_code == 413, (url, answer.status_code)
        assert "144,000,000 pixels" in answer.json["error"]["message"]
    raw = {**reader, "Accept": 'multipart/related; type="application/octet-stream"'}
    assert hub.client.get(f"{_path(bomb)}/frames/1", headers=raw).status_code == 413
    assert hub.client.get(_path(bomb), headers=reader).status_code == 200  # still retrievable

    h = hub.app.extensions["teleconsult"]
    assert hub.client.get(f"{_path(big)}/rendered", headers=reader).status_code == 200
    h.settings = h.settings.replace(max_render_pixels=1_000_000)
    answer = hub.client.get(f"{_path(big)}/rendered", headers=reader)
    assert answer.status_code == 413 and "1,200,000 pixels" in answer.json["error"]["message"]
    assert hub.client.get(f"{_path(big)}/frames/1", headers=raw).status_code == 413
