"""``python -m spoke``: migrates its database, serves, reaches the hub, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import requests

from tests.support.hub import RunningHub
from tests.support.processes import free_port, start, wait_http
from tests.support.waiting import wait_for


def test_spoke_process_serves_and_stops_on_sigterm(tmp_path: Path, hub: RunningHub) -> None:
    port = free_port()
    env = {
        "TELECONSULT_SPOKE_PORT": str(port),
        "TELECONSULT_SPOKE_DATA_DIR": str(tmp_path / "spoke"),
        "TELECONSULT_SPOKE_HUB_URL": hub.url,
        "TELECONSULT_SPOKE_SPOKE_TOKEN": hub.spoke_tokens["PHC-1"],
        "TELECONSULT_SPOKE_SYNC_INTERVAL_S": "0.1",
    }
    process = start("spoke", ["spoke"], env, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(process, base + "/healthz")
        wait_for(
            lambda: requests.get(base + "/healthz", timeout=2).json()["hub_reachable"],
            15,
            what="hub reachable",
        )
        assert (tmp_path / "spoke" / "secret_key").stat().st_mode & 0o777 == 0o600
        assert requests.get(base + "/signin", timeout=2).status_code == 200
    finally:
        code = process.stop(signal.SIGTERM)
    assert code == 0, process.output()
    assert "spoke stopped" in process.output()
