"""One case end to end with hub, spoke and bridge as three real processes, DCMTK's storescu as
the modality and a python-socketio client as the clinic's browser; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from hub.persistence.models import AdviceDelivery
from shared.multipart import parse_related
from teleconsult.db import Database
from tests.conftest import need_tool
from tests.dicomgen import dataset_bytes, make_ct_series, write_series
from tests.support.realtime import Listener
from tests.support.slice import BRIDGE_AET, MODALITY_AET, Slice, clinic_slice
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

N_SLICES = 12
ADVICE = {
    "assessment": "Undisplaced fracture of the distal radius.",
    "recommendations": "Below-elbow cast for four weeks. Elevate the arm.",
    "disposition": "manage_locally",
    "prescriptions": [
        {
            "drug": "Ibuprofen",
            "strength": "400 mg",
            "dose": "1 tablet",
            "route": "oral",
            "frequency": "three times a day",
            "duration": "5 days",
            "instructions": "after food",
        }
    ],
    "follow_up_date": "2026-12-01",
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _hub_login(base: str, username: str) -> str:
    r = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": "demo"}, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


@dataclass
class People:
    """Bearer tokens of the clinic doctor (at the spoke) and the specialist (at the hub)."""

    doctor: dict[str, str]
    specialist: dict[str, str]


def run_slice(tmp_path: Path, database_url: str | None) -> dict[str, float]:
    storescu = need_tool("storescu")
    timings: dict[str, float] = {}
    began = time.monotonic()
    with clinic_slice(tmp_path, database_url) as s:
        timings["start"] = time.monotonic() - began
        t0 = time.monotonic()
        r = requests.post(
            f"{s.spoke_url}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=15,
        )
        assert r.status_code == 200, r.text
        people = People(_bearer(r.json()["access_token"]), _bearer(_hub_login(s.hub.url, "ortho1")))
        case = _raise_case_at_the_spoke(s, people)
        hub_case = _wait_synced(s, people, case["uid"])
        timings["case synced"] = time.monotonic() - t0
        browser = Listener(s.hub.url, _hub_login(s.hub.url, "clinic1"))
        try:
            t1 = time.monotonic()
            sent = _send_ct(s, storescu, tmp_path, case["accession_number"])
            _check_images_at_hub(s, people, hub_case["id"], sent)
            timings["images at hub"] = time.monotonic() - t1
            timings["advice latency"] = _advise_and_wait(s, people, browser, hub_case["id"])
            _clinic_sees_advice(s, people, case["uid"])
        finally:
            browser.close()
        timings["total"] = time.monotonic() - t0
    return timings


def _raise_case_at_the_spoke(s: Slice, people: People) -> dict[str, Any]:
    body = {
        "patient": {"pseudonym": "RAMPUR-0042", "age": 34, "sex": "male"},
        "complaint": "Fall on outstretched hand; swollen <b>wrist</b>",
        "vitals": {"pulse": 90},
        "question": "Fracture? Manage here or refer?",
        "specialty": "ortho",
        "priority": "urgent",
    }
    r = requests.post(f"{s.spoke_url}/api/v1/cases", json=body, headers=people.doctor, timeout=10)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _wait_synced(s: Slice, people: People, uid: str) -> dict[str, Any]:
    def at_hub() -> dict[str, Any] | None:
        items = requests.get(
            f"{s.hub.url}/api/v1/cases", headers=people.specialist, timeout=5
        ).json()["items"]
        return next((c for c in items if c["uid"] == uid), None)

    case = wait_for(at_hub, 20, what="the case at the hub")
    assert case["status"] == "assigned" and case["assigned_to"]["username"] == "ortho1"
    assert case["token"] == "ORTHO-0001" and case["raised_by"]["username"] == "clinic1"

    def tokened_at_spoke() -> dict[str, Any] | None:
        local = requests.get(
            f"{s.spoke_url}/api/v1/cases/{uid}", headers=people.doctor, timeout=5
        ).json()
        return local if local.get("token") else None

    assert (
        wait_for(tokened_at_spoke, 20, what="the hub's token back at the spoke")["token"]
        == "ORTHO-0001"
    )
    return case


def _send_ct(s: Slice, storescu: str, tmp: Path, accession: str) -> dict[str, bytes]:
    files = write_series(
        make_ct_series(N_SLICES, rows=128, cols=128, accession_number=accession), tmp / "ct"
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
    assert result.returncode == 0, result.stdout + result.stderr
    return {f.stem: f.read_bytes() for f in files}


def _check_images_at_hub(s: Slice, people: People, case_id: int, sent: dict[str, bytes]) -> None:
    headers = people.specialist

    def all_there() -> list[dict[str, Any]] | None:
        studies = requests.get(
            f"{s.hub.url}/api/v1/cases/{case_id}/studies", headers=headers, timeout=5
        ).json()
        return studies if studies and studies[0]["series"][0]["instances"] == N_SLICES else None

    study = wait_for(all_there, 30, what="all instances at the hub")[0]
    series_uid = study["series"][0]["series_uid"]
    for sop_uid, original in sent.items():
        series = f"{s.hub.url}/dicomweb/studies/{study['study_uid']}/series/{series_uid}"
        url = f"{series}/instances/{sop_uid}"
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == 200
        ((_, stored),) = parse_related(r.content, r.headers["Content-Type"].split("boundary=")[1])
        assert dataset_bytes(stored) == dataset_bytes(original)


def _advise_and_wait(s: Slice, people: People, browser: Listener, case_id: int) -> float:
    issued = time.monotonic()
    r = requests.post(
        f"{s.hub.url}/api/v1/cases/{case_id}/advice",
        json=ADVICE,
        headers=people.specialist,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    arrived, event = wait_for(
        lambda: browser.first("advice.issued"), 5, what="advice.issued at the browser"
    )
    assert event["advice"]["assessment"] == ADVICE["assessment"] and event["case_id"] == case_id
    latency = arrived - issued
    assert latency < 1.0, f"advice took {latency:.3f}s"
    return latency


def _clinic_sees_advice(s: Slice, people: People, uid: str) -> None:
    def stored_at_spoke() -> dict[str, Any] | None:
        case = requests.get(
            f"{s.spoke_url}/api/v1/cases/{uid}", headers=people.doctor, timeout=5
        ).json()
        return case if case.get("advice") else None

    case = wait_for(stored_at_spoke, 10, what="the advice stored at the spoke")
    assert case["advice"][0]["assessment"] == ADVICE["assessment"]
    assert case["status"] == "advised"
    db = Database(s.hub.database_url)
    try:

        def acknowledged() -> int:
            with db.session() as session:
                return int(session.scalar(select(func.count()).select_from(AdviceDelivery)) or 0)

        assert wait_for(acknowledged, 10, what="the spoke's acknowledgement at the hub") == 1
    finally:
        db.dispose()


def test_one_case_end_to_end_on_sqlite(tmp_path: Path) -> None:
    timings = run_slice(tmp_path, None)
    print("slice timings (s):", {k: round(v, 3) for k, v in timings.items()})


@pytest.mark.postgres
def test_one_case_end_to_end_on_postgresql(tmp_path: Path) -> None:
    from tests.conftest import need
    from tests.support.databases import fresh_postgres, postgres_available

    need(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_postgres() as url:
        timings = run_slice(tmp_path, url)
    print("slice timings (s):", {k: round(v, 3) for k, v in timings.items()})
