"""Orthanc as the clinic's PACS forwards a study (a small CT series and a multi-frame US in
JPEG-LS) to the bridge; the hub serves it over DICOMweb, unchanged and linked to the case."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from pydicom.uid import JPEGLSLossless

from config.settings import load_settings
from dicom_bridge.app import Bridge
from shared.multipart import parse_related
from tests.conftest import need
from tests.dicomgen import compressed, dataset_bytes, make_ct_series, make_us_cine, write_series
from tests.integration.dicom.orthanc import ORTHANC_AET, orthanc, orthanc_binary
from tests.support.hub import hub_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_orthanc_forwards_a_study_through_the_bridge_to_the_hub(tmp_path: Path) -> None:
    need(orthanc_binary() is not None, "Orthanc is not installed (Debian package orthanc)")
    with hub_process(tmp_path) as hub:
        token = hub.spoke_tokens["PHC-1"]
        r = requests.post(
            f"{hub.url}/api/v1/cases",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            json={
                "patient": {"pseudonym": "PACS-0001", "age": 50, "sex": "male"},
                "complaint": "Abdominal pain",
                "question": "Appendicitis?",
                "specialty": "med",
                "priority": "urgent",
                "raised_by": "clinic1",
            },
        )
        assert r.status_code == 201, r.text
        accession = r.json()["accession_number"]
        ct = make_ct_series(4, accession_number=accession, patient_id="PACS-0001")
        us = compressed(
            make_us_cine(frames=3, accession_number=accession, patient_id="PACS-0001"),
            JPEGLSLossless,
        )
        us.StudyInstanceUID = ct[0].StudyInstanceUID
        files = write_series([*ct, us], tmp_path / "study")

        settings = load_settings(
            "bridge",
            environ={},
            overrides={
                "host": "127.0.0.1",
                "port": 0,
                "ae_title": "SPOKE1",
                "allowed_aes": [ORTHANC_AET],
                "spool_dir": str(tmp_path / "spool"),
                "hub_url": hub.url,
                "spoke_token": token,
                "spoke_url": "",
                "retry_initial_s": 0.2,
            },
        )
        bridge = Bridge(settings)
        bridge.start()
        try:
            with orthanc(tmp_path, {"bridge": ["SPOKE1", "127.0.0.1", bridge.address[1]]}) as pacs:
                (study_id,) = {pacs.upload(f.read_bytes())["ParentStudy"] for f in files}
                pacs.store_to("bridge", [study_id])
            wait_for(
                lambda: bridge.status()["sent"] == len(files),
                60,
                what="the study forwarded to the hub",
            )
        finally:
            bridge.stop()

        headers = {"Authorization": f"Bearer {token}"}
        studies = requests.get(
            f"{hub.url}/dicomweb/studies?AccessionNumber={accession}", headers=headers, timeout=10
        ).json()
        assert [s["00201208"]["Value"][0] for s in studies] == [len(files)]
        series = f"{hub.url}/dicomweb/studies/{us.StudyInstanceUID}/series/{us.SeriesInstanceUID}"
        base = f"{series}/instances/{us.SOPInstanceUID}"
        r = requests.get(base, headers=headers, timeout=10)
        ((_, stored),) = parse_related(r.content, r.headers["Content-Type"].split("boundary=")[1])
        # Orthanc relays the dataset unchanged: JPEG-LS in, JPEG-LS at the hub.
        assert dataset_bytes(stored) == dataset_bytes(files[-1].read_bytes())
