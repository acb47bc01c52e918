"""The forwarder against a real (fake) STOW-RS server: nothing lost, nothing duplicated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicom_bridge.forwarder import Forwarder
from dicom_bridge.progress import AT_HUB, Ledger
from dicom_bridge.spool import Spool, file_name
from shared.multipart import RelatedBody
from shared.stow import parse_stow_response
from tests.support.waiting import wait_for
from tests.unit.dicom_bridge.bridge_support import FakeHub, parse_multipart

TOKEN = "spoke-token-123"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def make_forwarder(spool: Spool, fake_hub: FakeHub) -> Iterator[object]:
    """Start forwarders at the fake hub; stop them all at the end of the test."""
    started: list[Forwarder] = []

    def make(batch_size: int = 20, url: str | None = None) -> Forwarder:
        forwarder = Forwarder(
            spool,
            url or fake_hub.url,
            TOKEN,
            batch_size=batch_size,
            retry_initial_s=0.02,
            retry_max_s=0.1,
            timeout_s=5.0,
        )
        forwarder.start()
        started.append(forwarder)
        return forwarder

    yield make
    for forwarder in started:
        forwarder.stop()


def _spool_all(spool: Spool, files: list[Path]) -> None:
    for f in files:
        spool.put(f.read_bytes(), f.stem)


def test_success_empties_the_spool_and_the_hub_gets_identical_bytes(
    spool: Spool, fake_hub: FakeHub, make_forwarder: Any, ct_files: list[Path]
) -> None:
    _spool_all(spool, ct_files)

    forwarder = make_forwarder(batch_size=2)

    wait_for(lambda: spool.count() == 0, what="spool to drain")
    assert sorted(fake_hub.stored) == sorted(f.read_bytes() for f in ct_files)
    assert len(fake_hub.requests) == 2  # 3 instances in batches of 2
    headers = fake_hub.requests[0]["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert all(h["Content-Type"] == "application/dicom" for h, _ in fake_hub.requests[0]["parts"])
    status = forwarder.status()
    assert (status["pending"], status["sent"], status["rejected"]) == (0, 3, 0)
    assert status["last_error"] is None and status["last_success_at"] is not None


def test_new_instances_are_sent_when_the_forwarder_is_woken(
    spool: Spool, fake_hub: FakeHub, make_forwarder: Any, ct_files: list[Path]
) -> None:
    forwarder = make_forwarder()
    wait_for(lambda: forwarder.status()["pending"] == 0)

    _spool_all(spool, ct_files)
    forwarder.notify()

    wait_for(lambda: len(fake_hub.stored) == len(ct_files), timeout=5, what="instances at the hub")
    # The hub records before it answers; the spool is emptied once the answer is read.
    wait_for(lambda: spool.count() == 0, timeout=5, what="the spool emptied")


def test_the_next_request_goes_while_the_last_one_is_settled_and_none_twice(
    spool: Spool, fake_hub: FakeHub, ct_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _spool_all(spool, ct_files)
    settled = threading.Event()
    done = spool.done

    def slow_done(*paths: Path) -> None:  # deleting confirmed files waits until the test says so
        settled.wait(10)
        done(*paths)

    monkeypatch.setattr(spool, "done", slow_done)
    forwarder = Forwarder(
        spool,
        fake_hub.url,
        TOKEN,
        batch_size=1,
        max_in_flight=1,
        retry_initial_s=0.02,
        retry_max_s=0.1,
        timeout_s=5.0,
    )
    forwarder.start()
    try:
        wait_for(
            lambda: len(fake_hub.requests) >= 2, what="a second request while the first is settled"
        )
        settled.set()
        wait_for(lambda: spool.count() == 0, what="the spool drained")
    finally:
        settled.set()
        forwarder.stop()

    assert len(fake_hub.requests) == len(ct_files)
    assert sorted(fake_hub.stored_uids()) == sorted(f.stem for f in ct_files)  # each once


def test_503_then_200_retries_without_loss_or_duplicates(
    spool: Spool, fake_hub: FakeHub, make_forwarder: Any, ct_files: list[Path]
) -> None:
    fake_hub.script = [503, 503]
    _spool_all(spool, ct_files)

    forwarder = make_forwarder()

    wait_for(lambda: spool.count() == 0, what="spool to drain after retries")
    assert [r["status"] for r in fake_hub.requests] == [503, 503, 200]
    assert sorted(fake_hub.stored_uids()) == sorted(f.stem for f in ct_files)
    wait_for(lambda: forwarder.status()["sent"] == len(ct_files), what="sends counted")


def test_a_refused_token_keeps_the_files_and_says_so(
    spool: Spool, fake_hub: FakeHub, make_forwarder: Any, ct_files: list[Path]
) -> None:
    fake_hub.script = [401] * 1000
    _spool_all(spool, ct_files)

    forwarder = make_forwarder()

    wait_for(lambda: len(fake_hub.requests) >= 2, what="a retry")
    assert spool.count() == len(ct_files)
    assert "TELECONSULT_BRIDGE_SPOKE_TOKEN" in (forwarder.status()["last_error"] or "")


def test_409_with_failed_sop_sequence_moves_files_to_rejected(
    spool: Spool, fake_hub: FakeHub, make_forwarder: Any, ct_files: list[Path]
) -> None:
    fake_hub.script = [409]
    _spool_all(spool, ct_files)

    forwarder = make_forwarder()

    wait_for(lambda: len(spool.rejected()) == len(ct_files), what="rejections")
    assert spool.count() == 0
    for f in ct_files:
        assert (spool.rejected_dir / file_name(f.stem)).read_bytes() == f.read_bytes()
        assert (
            "0xC000"
            in (spool.rejected_dir / file_name(f.stem).replace(".dcm", ".reason.txt")).read_text()
        )
    wait_for(lambda: forwarder.status()["rejected"] == len(ct_files), what="rejections counted")


def test_an_unreachable_hub_keeps_everything(
    spool: Spool, make_forwarder: Any, ct_files: list[Path]
) -> None:
    _spool_all(spool, ct_files)

    forwarder = make_forwarder(url="http://127.0.0.1:9")  # discard port: connection refused

    wait_for(lambda: forwarder.status()["last_error"] is not None, what="an error")
    assert "unreachable" in forwarder.status()["last_error"]
    assert spool.count() == len(ct_files)


def test_files_left_from_a_previous_run_are_sent_but_tmp_leftovers_never(
    tmp_path: Path, fake_hub: FakeHub, ct_files: list[Path]
) -> None:
    root = tmp_path / "spool"
    _spool_all(Spool(root), ct_files[:2])
    (root / "tmp" / "9.9.9.part").write_bytes(ct_files[2].read_bytes())  # crash mid-write

    restarted = Spool(root)
    forwarder = Forwarder(restarted, fake_hub.url, TOKEN, retry_initial_s=0.02, retry_max_s=0.1)
    forwarder.start()
    try:
        wait_for(lambda: restarted.count() == 0, what="leftovers to be sent")
    finally:
        forwarder.stop()

    assert sorted(fake_hub.stored_uids()) == sorted(f.stem for f in ct_files[:2])
    assert list((root / "tmp").iterdir()) == []


def test_stop_is_prompt_while_backing_off(spool: Spool, ct_files: list[Path]) -> None:
    _spool_all(spool, ct_files[:1])
    forwarder = Forwarder(spool, "http://127.0.0.1:9", TOKEN, retry_initial_s=30, retry_max_s=60)
    forwarder.start()
    wait_for(lambda: forwarder.status()["last_error"] is not None)

    forwarder.stop(timeout_s=2)

    assert forwarder._thread is not None and not forwarder._thread.is_alive()


def test_multipart_body_is_rfc2046_framed(ct_files: list[Path]) -> None:
    body = RelatedBody(list[Path | bytes](ct_files))
    data = b"".join(body)

    assert len(data) == len(body)
    parts = parse_multipart(data, body.content_type)
    assert [content for _, content in parts] == [f.read_bytes() for f in ct_files]


def test_parse_stow_response_reads_referenced_and_failed() -> None:
    payload = [
        {
            "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]},
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081155": {"vr": "UI", "Value": ["1.2.4"]},
                        "00081197": {"vr": "US", "Value": [0xA900]},
                    }
                ],
            },
        }
    ]

    result = parse_stow_response(payload)

    assert result.stored == {"1.2.3"}
    assert result.failed == {"1.2.4": 0xA900}
    assert parse_stow_response(None).stored == set()


def test_the_forwarder_forgets_progress_settled_long_enough_ago(
    spool: Spool, fake_hub: FakeHub
) -> None:
    ledger = Ledger(spool.root / "progress.sqlite")
    ledger.receive([("1.2.3", "ACC-DONE")])
    ledger.link("ACC-DONE", "case-done")
    ledger.mark(["1.2.3"], AT_HUB)
    forwarder = Forwarder(
        spool,
        fake_hub.url,
        TOKEN,
        ledger=ledger,
        keep_progress_s=0.0,
        retry_initial_s=0.02,
        retry_max_s=0.1,
    )
    forwarder.start()
    try:
        wait_for(
            lambda: ledger.case_of("ACC-DONE") is None, timeout=5, what="the settled case forgotten"
        )
    finally:
        forwarder.stop()
    assert ledger.counts() == {}
