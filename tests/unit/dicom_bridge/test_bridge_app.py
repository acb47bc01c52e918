"""The whole bridge: a modality's C-STORE ends up at the hub, and the bridge stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from config.settings import Settings
from dicom_bridge.app import Bridge, run_bridge
from tests.support.waiting import wait_for
from tests.unit.dicom_bridge.bridge_support import (
    BRIDGE_AET,
    MODALITY_AET,
    FakeHub,
    dataset_bytes,
)

ROOT = Path(__file__).resolve().parents[3]


def _store(port: int, files: list[Path]) -> list[int]:
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=BRIDGE_AET)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(path).Status for path in files]
    finally:
        assoc.release()


def test_a_stored_instance_reaches_the_hub_unchanged(
    bridge_settings: Settings, fake_hub: FakeHub, ct_files: list[Path]
) -> None:
    bridge = Bridge(bridge_settings.replace(hub_url=fake_hub.url, spoke_token="t0k"))
    bridge.start()
    try:
        assert _store(bridge.address[1], ct_files) == [0] * len(ct_files)
        wait_for(lambda: len(fake_hub.stored) == len(ct_files), what="instances at the hub")
        wait_for(lambda: bridge.status()["pending"] == 0, what="spool to drain")
    finally:
        bridge.stop()

    originals = sorted(dataset_bytes(f.read_bytes()) for f in ct_files)
    assert sorted(dataset_bytes(d) for d in fake_hub.stored) == originals


def test_run_bridge_stops_when_asked(bridge_settings: Settings, fake_hub: FakeHub) -> None:
    stop = threading.Event()
    settings = bridge_settings.replace(hub_url=fake_hub.url)
    runner = threading.Thread(target=run_bridge, args=(settings, stop), daemon=True)
    runner.start()

    stop.set()
    runner.join(10)

    assert not runner.is_alive()


def test_python_m_dicom_bridge_explains_a_missing_allow_list(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TELECONSULT_BRIDGE_ALLOWED_AES": "",
        "TELECONSULT_BRIDGE_ACCEPT_ANY_AE": "false",
        "TELECONSULT_BRIDGE_PORT": "0",
        "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "dicom_bridge"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "TELECONSULT_BRIDGE_ALLOWED_AES" in result.stderr


def test_python_m_dicom_bridge_serves_and_stops_on_sigterm(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    env = {
        **os.environ,
        "TELECONSULT_BRIDGE_ALLOWED_AES": MODALITY_AET,
        "TELECONSULT_BRIDGE_PORT": "0",
        "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
        "TELECONSULT_BRIDGE_HUB_URL": fake_hub.url,
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_bridge"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "bridge exited before listening"
        assert f"DICOM bridge AE {BRIDGE_AET} listening on 127.0.0.1:" in line

        proc.terminate()

        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
