"""Per-case progress (received / at the hub / rejected), requests in flight, and de-identification
applied by the forwarder just before sending."""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from dicom_bridge.forwarder import Forwarder
from dicom_bridge.linking import CaseDirectory
from dicom_bridge.progress import AT_HUB, REJECTED, Counts, Ledger
from dicom_bridge.spool import Spool, file_name, uid_of
from dicom_bridge.worklist import WorklistUnavailable
from shared.deid import Profile, new_uid
from tests.dicomgen import make_ct_series, make_us_cine, write_series
from tests.support.waiting import wait_for
from tests.unit.dicom_bridge.bridge_support import FakeHub

CASE_UID = "6f1c2a9e-0000-4000-8000-000000000001"
KEY = b"test-key"


class Worklist:
    def __init__(self, cases: list[dict[str, Any]] | None = None) -> None:
        self.cases = cases
        self.calls = 0

    def open_cases(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.cases is None:
            raise WorklistUnavailable("spoke down")
        return self.cases


def _forwarder(spool: Spool, hub: FakeHub, **kwargs: Any) -> Forwarder:
    defaults: dict[str, Any] = {"retry_initial_s": 0.02, "retry_max_s": 0.1, "timeout_s": 5.0}
    return Forwarder(spool, hub.url, "tok", **{**defaults, **kwargs})


def test_the_ledger_counts_each_instance_once_per_case_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "progress.sqlite")
    ledger.receive([("1.1", "ACC-1"), ("1.2", "ACC-1"), ("1.3", "OTHER")])
    ledger.receive([("1.1", "ACC-1")])
    ledger.link("ACC-1", CASE_UID)
    ledger.mark(["1.1"], AT_HUB)
    ledger.close()

    again = Ledger(tmp_path / "progress.sqlite")

    assert again.counts() == {CASE_UID: Counts(received=2, at_hub=1, rejected=0)}
    assert again.unpushed() == {CASE_UID: Counts(2, 1, 0)}
    again.pushed(CASE_UID, Counts(2, 1, 0))
    assert again.unpushed() == {}


def test_each_ledger_call_is_one_transaction(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "progress.sqlite")

    with pytest.raises(sqlite3.ProgrammingError):  # the second row fails: the first goes with it
        ledger.receive([("1.1", "ACC-1"), ("1.2",)])  # type: ignore[list-item]

    assert ledger.receive([("1.1", "ACC-1")]) == 1  # not there before


def test_case_directory_asks_the_spoke_again_only_after_a_while() -> None:
    now = [0.0]
    source = Worklist([{"uid": CASE_UID, "accession_number": "ACC-1"}])
    cases = CaseDirectory(source, refresh_s=5.0, clock=lambda: now[0])

    assert cases.case_for("ACC-1") == CASE_UID
    assert cases.case_for("ACC-2") is None and source.calls == 1
    now[0] = 6.0
    assert cases.case_for("ACC-2") is None and source.calls == 2
    assert cases.case_for("") is None


def test_deidentified_instances_go_with_their_case_and_burned_in_ones_are_refused(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    spool = Spool(tmp_path / "spool")
    ct = make_ct_series(
        2, rows=8, cols=8, accession_number="ACC-1", patient_id="REAL-ID", patient_name="Real^Name"
    )
    us = make_us_cine(frames=1, rows=8, cols=8, accession_number="ACC-1")
    us.BurnedInAnnotation = "YES"
    for path in write_series([*ct, us], tmp_path / "in"):
        spool.put(path.read_bytes(), path.stem)
    forwarder = _forwarder(
        spool,
        fake_hub,
        profile=Profile(key=KEY),
        cases=CaseDirectory(Worklist([{"uid": CASE_UID, "accession_number": "ACC-1"}])),
    )
    forwarder.start()
    try:
        wait_for(lambda: spool.count() == 0, what="the spool drained")
    finally:
        forwarder.stop()

    (request,) = fake_hub.requests
    assert request["headers"]["X-Case-UID"] == CASE_UID
    sent = [dcmread(io.BytesIO(data)) for _, data in request["parts"]]
    assert sorted(str(ds.SOPInstanceUID) for ds in sent) == sorted(
        new_uid(KEY, str(ds.SOPInstanceUID)) for ds in ct
    )
    assert all(ds.PatientID != "REAL-ID" and ds.AccessionNumber == "" for ds in sent)
    assert [uid_of(p) for p in spool.rejected()] == [str(us.SOPInstanceUID)]
    assert (
        spool.root.joinpath("rejected", file_name(str(us.SOPInstanceUID))[:-4] + ".reason.txt")
        .read_text()
        .count("BurnedIn")
        == 1
    )
    assert forwarder.ledger.counts() == {CASE_UID: Counts(received=3, at_hub=2, rejected=1)}


def test_deidentified_instances_wait_while_the_spoke_never_answered(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    spool = Spool(tmp_path / "spool")
    (path,) = write_series(
        make_ct_series(1, rows=8, cols=8, accession_number="ACC-1"), tmp_path / "in"
    )
    spool.put(path.read_bytes(), path.stem)
    forwarder = _forwarder(
        spool, fake_hub, profile=Profile(key=KEY), cases=CaseDirectory(Worklist(None))
    )
    forwarder.start()
    try:
        wait_for(
            lambda: "cannot link" in (forwarder.status()["last_error"] or ""),
            what="the link refused",
        )
    finally:
        forwarder.stop()

    assert fake_hub.requests == [] and spool.count() == 1  # never sent unlinked


def test_no_more_than_max_in_flight_requests_at_once(tmp_path: Path, fake_hub: FakeHub) -> None:
    spool = Spool(tmp_path / "spool")
    files = write_series(make_ct_series(6, rows=8, cols=8), tmp_path / "in")
    for path in files:
        spool.put(path.read_bytes(), path.stem)
    fake_hub.gate = threading.Event()
    forwarder = _forwarder(spool, fake_hub, batch_size=1, max_in_flight=2)
    forwarder.start()
    try:
        wait_for(lambda: fake_hub.active == 2, what="two requests in flight")
        assert forwarder.status()["in_flight"] == 2
        fake_hub.gate.set()
        wait_for(lambda: spool.count() == 0, what="the spool drained")
    finally:
        fake_hub.gate.set()
        forwarder.stop()

    assert fake_hub.peak == 2
    assert sorted(fake_hub.stored_uids()) == sorted(f.stem for f in files)  # each once


def test_a_case_settled_long_ago_is_forgotten_and_an_open_one_kept(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "progress.sqlite")
    assert (
        ledger.receive(
            [("1.1", "ACC-OLD"), ("1.2", "ACC-OLD"), ("2.1", "ACC-OPEN"), ("3.1", "ACC-NEW")]
        )
        == 4
    )
    assert ledger.receive([("1.1", "ACC-OLD")]) == 0
    for accession, case_uid in (
        ("ACC-OLD", "case-old"),
        ("ACC-OPEN", "case-open"),
        ("ACC-NEW", "case-new"),
    ):
        ledger.link(accession, case_uid)
    ledger.mark(["1.1"], AT_HUB)
    ledger.mark(["1.2", "3.1"], REJECTED)
    ledger.pushed("case-old", Counts(2, 1, 1))

    now = time.time()
    assert ledger.prune(older_than_s=3600, now=now) == 0  # settled just now: kept
    assert (
        ledger.prune(older_than_s=3600, now=now + 7200) == 3
    )  # ACC-OLD and ACC-NEW; 2.1 still waits

    assert ledger.counts() == {"case-open": Counts(received=1, at_hub=0, rejected=0)}
    assert ledger.case_of("ACC-OLD") is None and ledger.case_of("ACC-OPEN") == "case-open"
    assert ledger.unpushed() == {"case-open": Counts(1, 0, 0)}


def test_a_ledger_from_before_settled_at_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "progress.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE instances (
                sop_uid TEXT PRIMARY KEY, accession TEXT NOT NULL DEFAULT '', state TEXT NOT NULL
            );
            INSERT INTO instances VALUES ('1.1', 'ACC-1', 'at_hub'), ('1.2', 'ACC-2', 'received');
        """)
    db.close()

    ledger = Ledger(path)

    assert (
        ledger.prune(older_than_s=60, now=time.time() + 120) == 1
    )  # the settled one, as of the upgrade
    assert ledger.receive([("1.2", "ACC-2")]) == 0
