"""`teleconsult demo`: three processes up, the banner printed, and Ctrl-C leaves no process
behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.processes import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _start_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, int], Path]:
    ports = {"hub": free_port(), "spoke": free_port(), "dicom": free_port()}
    log = tmp_path / "demo.out"
    out = log.open("w")
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "demo",
            "--data-dir",
            str(tmp_path / "data"),
            "--hub-port",
            str(ports["hub"]),
            "--spoke-port",
            str(ports["spoke"]),
            "--dicom-port",
            str(ports["dicom"]),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return demo, ports, log


def _children(pid: int) -> list[psutil.Process]:
    return list(psutil.Process(pid).children(recursive=True))


def _gone(procs: list[psutil.Process]) -> bool:
    return not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_the_demo_runs_three_components_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    demo, ports, log = _start_demo(tmp_path)
    try:
        banner = wait_for(
            lambda: "Press Ctrl-C" in log.read_text() and log.read_text(), 90, what="the banner"
        )
        for expected in (
            f"http://127.0.0.1:{ports['hub']}",
            f"http://127.0.0.1:{ports['spoke']}",
            f"SPOKE1 on 127.0.0.1:{ports['dicom']}",
            "clinic1",
            "ortho1",
            "sup1",
        ):
            assert expected in banner
        token = requests.post(
            f"http://127.0.0.1:{ports['hub']}/api/v1/auth/token",
            json={"username": "ortho1", "password": "demo"},
            timeout=10,
        )
        assert token.status_code == 200
        signin = requests.post(
            f"http://127.0.0.1:{ports['spoke']}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=10,
        )
        assert signin.status_code == 200
        children = _children(demo.pid)
        assert len([c for c in children if "-m" in c.cmdline()]) == 3
        _secrets_stay_private(tmp_path / "data", children)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0
        assert wait_for(lambda: _gone(children), 10, what="all children gone")
        assert "demo stopped" in log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()


def _secrets_stay_private(data: Path, children: list[psutil.Process]) -> None:
    """Finding 13: the service token was in the spoke's and the bridge's environment (readable in
    /proc/<pid>/environ) and the databases were world-readable."""
    token = (data / "spoke" / "spoke_token").read_text().strip()
    assert len(token) > 16
    for child in children:
        environ = "\0".join(f"{k}={v}" for k, v in child.environ().items())
        assert token not in environ, child.cmdline()
    for path in (
        data / "spoke" / "spoke_token",
        data / "hub" / "hub.sqlite",
        data / "spoke" / "spoke.sqlite",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (data, data / "hub", data / "spoke", data / "bridge", data / "hub" / "images"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_killing_the_demo_outright_takes_its_children_with_it(tmp_path: Path) -> None:
    demo, _, log = _start_demo(tmp_path)
    try:
        wait_for(lambda: "Press Ctrl-C" in log.read_text(), 90, what="the banner")
        children = _children(demo.pid)
        demo.kill()
        demo.wait(10)
        assert wait_for(lambda: _gone(children), 20, what="children to follow the demo")
    finally:
        for child in psutil.Process().children(recursive=True):
            child.kill()
