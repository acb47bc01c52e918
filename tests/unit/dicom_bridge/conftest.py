"""Fixtures of the DICOM bridge tests: generated CT files, bridge settings on a free port, a real
SCP and a fake hub.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from config.settings import Settings, load_settings
from dicom_bridge.scp import start_scp
from dicom_bridge.spool import Spool
from tests.dicomgen import make_ct_series, write_series
from tests.unit.dicom_bridge.bridge_support import (
    BRIDGE_AET,
    MODALITY_AET,
    FakeHub,
    RunningScp,
    handler_for,
)


@pytest.fixture
def ct_files(tmp_path: Path) -> list[Path]:
    """Three 64x64 16-bit CT slices in Explicit VR Little Endian, with an AccessionNumber."""
    series = make_ct_series(3, accession_number="ACC-T-0001", patient_id="PSEUDO-T-1")
    return write_series(series, tmp_path / "ct")


@pytest.fixture
def bridge_settings(tmp_path: Path) -> Settings:
    """Bridge settings for a test: free port, spool in tmp_path, one allowed modality."""
    return load_settings(
        "bridge",
        environ={},
        overrides={
            "host": "127.0.0.1",
            "port": 0,
            "ae_title": BRIDGE_AET,
            "allowed_aes": [MODALITY_AET],
            "accept_any_ae": False,
            "spool_dir": str(tmp_path / "spool"),
            "retry_initial_s": 0.05,
            "retry_max_s": 0.2,
            "hub_timeout_s": 5.0,
        },
    )


@pytest.fixture
def scp(bridge_settings: Settings) -> Iterator[RunningScp]:
    """A real bridge SCP (no forwarder) listening on a free port."""
    spool = Spool(bridge_settings.spool_dir)
    wake = threading.Event()
    server = start_scp(bridge_settings, spool, wake)
    try:
        yield RunningScp(spool, server.server_address[1], wake)
    finally:
        server.shutdown()
        spool.close()


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A STOW-RS endpoint on a free port, served from a thread."""
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
