"""Modality Worklist from the clinic's open cases, pulled by DCMTK's ``findscu -W``; images sent
back with the worklist's accession number land on the case; a study that matches no case waits in
the spoke's inbox and is attached by hand. Hub, spoke and bridge are real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.conftest import need_tool
from tests.dicomgen import make_dx, make_us_cine, write_series
from tests.support.hub import RunningHub, hub_process
from tests.support.processes import free_port, running, start
from tests.support.slice import BRIDGE_AET, MODALITY_AET, start_spoke
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@dataclass
class Clinic:
    hub: RunningHub
    spoke_url: str
    dicom_port: int
    doctor: dict[str, str]


@contextmanager
def clinic(tmp: Path) -> Iterator[Clinic]:
    with ExitStack() as stack:
        hub = stack.enter_context(hub_process(tmp))
        spoke, spoke_url = start_spoke(tmp, hub)
        stack.enter_context(running(spoke))
        port = free_port()
        bridge = start(
            "bridge",
            ["dicom_bridge"],
            {
                "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
                "TELECONSULT_BRIDGE_PORT": str(port),
                "TELECONSULT_BRIDGE_AE_TITLE": BRIDGE_AET,
                "TELECONSULT_BRIDGE_ALLOWED_AES": MODALITY_AET,
                "TELECONSULT_BRIDGE_HUB_URL": hub.url,
                "TELECONSULT_BRIDGE_SPOKE_URL": spoke_url,
                "TELECONSULT_BRIDGE_SPOKE_TOKEN": hub.spoke_tokens["PHC-1"],
                "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp / "bridge" / "spool"),
                "TELECONSULT_BRIDGE_RETRY_INITIAL_S": "0.2",
            },
            tmp,
        )
        stack.enter_context(running(bridge))
        wait_for(
            lambda: "listening on" in bridge.output() or not bridge.alive(), 30, what="bridge start"
        )
        assert bridge.alive(), bridge.output()
        r = requests.post(
            f"{spoke_url}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=15,
        )
        assert r.status_code == 200, r.text
        yield Clinic(hub, spoke_url, port, {"Authorization": f"Bearer {r.json()['access_token']}"})


def _raise_case(c: Clinic, pseudonym: str) -> dict[str, Any]:
    body = {
        "patient": {"pseudonym": pseudonym, "age": 61, "sex": "female"},
        "complaint": "Breathless for a week",
        "question": "Effusion? Tap here or refer?",
        "specialty": "med",
        "priority": "urgent",
    }
    r = requests.post(f"{c.spoke_url}/api/v1/cases", json=body, headers=c.doctor, timeout=10)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _findscu(c: Clinic, tmp: Path, **keys: str) -> list[Dataset]:
    query = Dataset()
    query.PatientName = keys.get("PatientName", "")
    query.PatientID = query.AccessionNumber = query.StudyInstanceUID = ""
    query.PatientSex = query.RequestedProcedureDescription = ""
    step = Dataset()
    step.Modality = keys.get("Modality", "")
    step.ScheduledStationAETitle = MODALITY_AET
    step.ScheduledProcedureStepStartDate = step.ScheduledProcedureStepDescription = ""
    query.ScheduledProcedureStepSequence = Sequence([step])
    out = tmp / f"worklist-{len(list(tmp.glob('worklist-*')))}"
    out.mkdir()
    query_file = out / "query.dcm"
    query.save_as(query_file, implicit_vr=True, little_endian=True)
    result = subprocess.run(
        [
            need_tool("findscu"),
            "-W",
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "-X",
            "-od",
            str(out),
            "127.0.0.1",
            str(c.dicom_port),
            str(query_file),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def _storescu(c: Clinic, files: list[Path]) -> None:
    result = subprocess.run(
        [
            need_tool("storescu"),
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "127.0.0.1",
            str(c.dicom_port),
            *map(str, files),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _hub_studies(c: Clinic, case_uid: str) -> list[dict[str, Any]]:
    token = requests.post(
        f"{c.hub.url}/api/v1/auth/token", json={"username": "sup1", "password": "demo"}, timeout=10
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    cases = requests.get(f"{c.hub.url}/api/v1/cases", headers=headers, timeout=10).json()["items"]
    case = next(x for x in cases if x["uid"] == case_uid)
    return list(
        requests.get(
            f"{c.hub.url}/api/v1/cases/{case['id']}/studies", headers=headers, timeout=10
        ).json()
    )


def test_findscu_pulls_open_cases_and_images_link_back_or_wait_in_the_inbox(tmp_path: Path) -> None:
    with clinic(tmp_path) as c:
        case = _raise_case(c, "RAMPUR-0077")
        _raise_case(c, "RAMPUR-0078")

        items = _findscu(c, tmp_path, Modality="DX")
        assert sorted(str(i.PatientID) for i in items) == ["RAMPUR-0077", "RAMPUR-0078"]
        (item,) = _findscu(c, tmp_path, PatientName="RAMPUR-0077*")
        assert item.AccessionNumber == case["accession_number"] and item.PatientSex == "F"
        assert item.RequestedProcedureDescription == "Breathless for a week"
        assert item.ScheduledProcedureStepSequence[0].Modality == ""

        # The modality fills its images from the worklist item, as a real one does.
        dx = make_dx(accession_number=str(item.AccessionNumber), patient_id=str(item.PatientID))
        dx.StudyInstanceUID = item.StudyInstanceUID
        walk_in = make_us_cine(frames=3, accession_number="", patient_id="WALK-IN")
        _storescu(c, write_series([dx, walk_in], tmp_path / "images"))

        linked = wait_for(lambda: _hub_studies(c, case["uid"]), 30, what="the DX on the case")
        assert [s["study_uid"] for s in linked] == [str(item.StudyInstanceUID)]

        def inbox() -> list[dict[str, Any]]:
            return list(
                requests.get(f"{c.spoke_url}/api/v1/inbox", headers=c.doctor, timeout=10).json()[
                    "items"
                ]
            )

        (waiting,) = wait_for(inbox, 30, what="the walk-in study in the inbox")
        assert (
            waiting["patient_id"] == "WALK-IN"
            and waiting["modalities"] == ["US"]
            and waiting["instances"] == 1
        )
        url = f"{c.spoke_url}/api/v1/inbox/{waiting['study_uid']}/attach"
        assert (
            requests.post(
                url, json={"case_uid": "no-such-case"}, headers=c.doctor, timeout=10
            ).status_code
            == 404
        )
        r = requests.post(url, json={"case_uid": case["uid"]}, headers=c.doctor, timeout=10)
        assert r.status_code == 200, r.text
        assert inbox() == []
        assert len(_hub_studies(c, case["uid"])) == 2
        assert (
            requests.get(f"{c.spoke_url}/api/v1/worklist", headers=c.doctor, timeout=10).status_code
            == 401
        )
