"""The bridge's forwarder with real processes: de-identified images reach the right case and the
clinic sees how far they got; a hub killed and restarted mid-transfer loses and duplicates
nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom import dcmread
from sqlalchemy import func, select

from dicom_bridge.spool import file_name
from hub.persistence.models import Instance
from hub.services.images import image_path
from teleconsult.db import Database
from tests.conftest import need_tool
from tests.dicomgen import make_ct_series, make_us_cine, write_series
from tests.support.hub import RunningHub, hub_process, prepare_hub_db, start_hub
from tests.support.processes import Process, free_port, running, start
from tests.support.slice import BRIDGE_AET, MODALITY_AET, start_spoke
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _bridge(tmp: Path, hub_url: str, token: str, **settings: str) -> tuple[Process, int]:
    port = free_port()
    env = {
        "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
        "TELECONSULT_BRIDGE_PORT": str(port),
        "TELECONSULT_BRIDGE_AE_TITLE": BRIDGE_AET,
        "TELECONSULT_BRIDGE_ALLOWED_AES": MODALITY_AET,
        "TELECONSULT_BRIDGE_HUB_URL": hub_url,
        "TELECONSULT_BRIDGE_SPOKE_TOKEN": token,
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp / "bridge" / "spool"),
        "TELECONSULT_BRIDGE_RETRY_INITIAL_S": "0.1",
        "TELECONSULT_BRIDGE_RETRY_MAX_S": "0.5",
        **{f"TELECONSULT_BRIDGE_{k.upper()}": v for k, v in settings.items()},
    }
    process = start("bridge", ["dicom_bridge"], env, tmp)
    wait_for(
        lambda: "listening on" in process.output() or not process.alive(), 30, what="bridge start"
    )
    assert process.alive(), process.output()
    return process, port


def _storescu(port: int, files: list[Path]) -> None:
    result = subprocess.run(
        [
            need_tool("storescu"),
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _login(base: str, username: str) -> dict[str, str]:
    r = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": "demo"}, timeout=15
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@contextmanager
def _clinic(tmp: Path, **bridge_settings: str) -> Iterator[tuple[RunningHub, str, int]]:
    with ExitStack() as stack:
        hub = stack.enter_context(hub_process(tmp))
        spoke, spoke_url = start_spoke(tmp, hub)
        stack.enter_context(running(spoke))
        bridge, port = _bridge(
            tmp, hub.url, hub.spoke_tokens["PHC-1"], spoke_url=spoke_url, **bridge_settings
        )
        stack.enter_context(running(bridge))
        yield hub, spoke_url, port


def test_deidentified_images_reach_their_case_and_the_clinic_sees_the_progress(
    tmp_path: Path,
) -> None:
    with _clinic(tmp_path, deidentify="true") as (hub, spoke_url, port):
        doctor = _login(spoke_url, "clinic1")
        body = {
            "patient": {"pseudonym": "RAMPUR-0099", "age": 40, "sex": "female"},
            "complaint": "Wrist pain",
            "question": "Fracture?",
            "specialty": "ortho",
            "priority": "urgent",
        }
        case = requests.post(
            f"{spoke_url}/api/v1/cases", json=body, headers=doctor, timeout=10
        ).json()
        ct = make_ct_series(
            3,
            rows=16,
            cols=16,
            accession_number=case["accession_number"],
            patient_id="AADHAAR-1234-5678",
            patient_name="Devi^Sita",
        )
        us = make_us_cine(
            frames=1,
            rows=8,
            cols=8,
            accession_number=case["accession_number"],
            patient_id="AADHAAR-1234-5678",
            patient_name="Devi^Sita",
        )
        us.BurnedInAnnotation = "YES"
        files = write_series([*ct, us], tmp_path / "images")
        _storescu(port, files)

        specialist = _login(hub.url, "sup1")

        def studies() -> list[dict[str, Any]]:
            cases = requests.get(f"{hub.url}/api/v1/cases", headers=specialist, timeout=10).json()[
                "items"
            ]
            hub_case = next(c for c in cases if c["uid"] == case["uid"])
            found = requests.get(
                f"{hub.url}/api/v1/cases/{hub_case['id']}/studies", headers=specialist, timeout=10
            )
            return [s for s in found.json() if s["series"] and s["series"][0]["instances"] == 3]

        (study,) = wait_for(studies, 40, what="the de-identified CT on its case")
        assert study["study_uid"] != str(ct[0].StudyInstanceUID) and study["study_uid"].startswith(
            "2.25."
        )
        url = f"{hub.url}/dicomweb/studies/{study['study_uid']}/metadata"
        metadata = requests.get(url, headers=specialist, timeout=10).json()
        assert len(metadata) == 3
        originals = {str(ds.SOPInstanceUID) for ds in ct}
        for item in metadata:
            text = str(item)
            assert "AADHAAR" not in text and "Devi" not in text and "Sita" not in text
            assert item["00120062"]["Value"] == ["YES"]  # PatientIdentityRemoved
            assert item["00080018"]["Value"][0] not in originals and item["00080018"]["Value"][
                0
            ].startswith("2.25.")

        def progress() -> dict[str, int] | None:
            local = requests.get(
                f"{spoke_url}/api/v1/cases/{case['uid']}", headers=doctor, timeout=10
            ).json()
            return (
                local["images"]
                if local["images"] == {"received": 4, "at_hub": 3, "rejected": 1}
                else None
            )

        wait_for(progress, 30, what="the progress of the images at the spoke")
        listed = requests.get(f"{spoke_url}/api/v1/cases", headers=doctor, timeout=10).json()[
            "items"
        ]
        assert next(c for c in listed if c["uid"] == case["uid"])["images"]["at_hub"] == 3
        name = file_name(str(us.SOPInstanceUID)).removesuffix(".dcm")
        reason = tmp_path / "bridge" / "spool" / "rejected" / f"{name}.reason.txt"
        assert "BurnedInAnnotation=YES" in reason.read_text()
        put = requests.put(
            f"{spoke_url}/api/v1/cases/{case['uid']}/images-progress",
            json={"received": 1},
            headers=doctor,
            timeout=10,
        )
        assert put.status_code == 401  # a doctor's token is not the bridge's


def test_a_hub_killed_mid_transfer_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'hub' / 'hub.sqlite'}"
    (tmp_path / "hub").mkdir()
    tokens = prepare_hub_db(database_url)
    hub, hub_port = start_hub(tmp_path, database_url, name="hub-1")
    images = tmp_path / "hub" / "images"
    db = Database(database_url)
    with ExitStack() as stack:
        stack.callback(db.dispose)
        stack.callback(lambda: hub.stop())
        bridge, port = _bridge(
            tmp_path,
            f"http://127.0.0.1:{hub_port}",
            tokens["PHC-1"],
            spoke_url="",
            batch_size="2",
            max_in_flight="2",
        )
        stack.enter_context(running(bridge))
        files = write_series(
            make_ct_series(40, rows=16, cols=16, accession_number="ACC-RESTART"), tmp_path / "ct"
        )

        _storescu(port, files)
        wait_for(
            lambda: images.exists() and any(images.rglob("*.dcm")),
            30,
            interval=0.005,
            what="a first image",
        )
        hub.stop(sig=9)
        at_kill = len(list(images.rglob("*.dcm")))
        hub, _ = start_hub(tmp_path, database_url, name="hub-2", port=hub_port)

        def stored() -> int:
            with db.session() as session:
                return int(session.scalar(select(func.count(Instance.id))) or 0)

        wait_for(lambda: stored() == 40, 60, what="all 40 instances at the restarted hub")
        spool = tmp_path / "bridge" / "spool"
        wait_for(lambda: not list((spool / "incoming").iterdir()), 30, what="the spool emptied")

    assert at_kill < 40, "the hub was killed after the transfer, not during it"
    with db.session() as session:
        uids = list(session.scalars(select(Instance.sop_uid)))
    assert sorted(uids) == sorted(f.stem for f in files)  # each once
    assert sorted(p.relative_to(images) for p in images.rglob("*.dcm")) == sorted(
        image_path(f.stem) for f in files
    )  # one file each: the instances re-sent after the crash landed on their own files
    for f in files[:3]:
        assert dcmread(images / image_path(f.stem)).PixelData == dcmread(f).PixelData
    with sqlite3.connect(spool / "progress.sqlite") as ledger:
        assert ledger.execute(
            "SELECT state, COUNT(*) FROM instances GROUP BY state"
        ).fetchall() == [("at_hub", 40)]
    assert "retrying" in bridge.output() or at_kill == 0
