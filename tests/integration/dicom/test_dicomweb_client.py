"""A third-party DICOMweb client (dicomweb-client) against a real hub process under eventlet:
STOW-RS in, QIDO-RS searches, WADO-RS metadata, frames and rendered previews out."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom.uid import JPEG2000Lossless

from tests.dicomgen import compressed, make_ct_series, make_us_cine
from tests.support.hub import hub_process

dicomweb_client = pytest.importorskip("dicomweb_client")


def _client(base: str, token: str) -> object:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return dicomweb_client.DICOMwebClient(url=f"{base}/dicomweb", session=session)


def _token(base: str, username: str) -> str:
    r = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": "demo"}, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def test_dicomweb_client_stores_searches_and_reads_back(tmp_path: Path) -> None:
    with hub_process(tmp_path, async_mode="eventlet") as hub:
        spoke = _client(hub.url, hub.spoke_tokens["PHC-1"])
        ct = make_ct_series(3, accession_number="DWC-0001", patient_id="PSEUDO-DWC")
        us = compressed(
            make_us_cine(frames=4, accession_number="DWC-0001", patient_id="PSEUDO-DWC"),
            JPEG2000Lossless,
        )
        us.StudyInstanceUID = ct[0].StudyInstanceUID
        spoke.store_instances(datasets=[*ct, us])  # type: ignore[attr-defined]

        supervisor = _client(hub.url, _token(hub.url, "sup1"))
        (study,) = supervisor.search_for_studies(search_filters={"PatientID": "PSEUDO-DWC"})  # type: ignore[attr-defined]
        assert sorted(study["00080061"]["Value"]) == ["CT", "US"]
        assert supervisor.search_for_studies(search_filters={"AccessionNumber": "OTHER"}) == []  # type: ignore[attr-defined]
        series = supervisor.search_for_series(  # type: ignore[attr-defined]
            ct[0].StudyInstanceUID, search_filters={"Modality": "CT"}
        )
        assert [s["0020000E"]["Value"][0] for s in series] == [ct[0].SeriesInstanceUID]

        metadata = supervisor.retrieve_series_metadata(  # type: ignore[attr-defined]
            ct[0].StudyInstanceUID, ct[0].SeriesInstanceUID
        )
        assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(
            d.SOPInstanceUID for d in ct
        )
        ids = (us.StudyInstanceUID, us.SeriesInstanceUID, us.SOPInstanceUID)
        (stored,) = supervisor.retrieve_instance_frames(*ids, frame_numbers=[2])  # type: ignore[attr-defined]
        assert stored[:4] in (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c")  # JPEG 2000 as stored
        (raw,) = supervisor.retrieve_instance_frames(  # type: ignore[attr-defined]
            *ids, frame_numbers=[2], media_types=("application/octet-stream",)
        )
        assert raw == us.pixel_array[1].tobytes()
        png = supervisor.retrieve_instance_rendered(  # type: ignore[attr-defined]
            ct[0].StudyInstanceUID,
            ct[0].SeriesInstanceUID,
            ct[0].SOPInstanceUID,
            media_types=("image/png",),
            params={"window": "-600,1500,linear"},
        )
        assert np.asarray(Image.open(BytesIO(png))).shape == (64, 64)
        instance = supervisor.retrieve_instance(*ids)  # type: ignore[attr-defined]
        assert (
            instance.NumberOfFrames == 4
            and instance.file_meta.TransferSyntaxUID == JPEG2000Lossless
        )
