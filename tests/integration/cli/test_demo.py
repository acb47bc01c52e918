"""`teleconsult demo`: the hub and two clinics up, the banner printed, the hub stopped and started
alone while the clinics keep working, and Ctrl-C leaves no process behind."""

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
    ports = {
        "hub": free_port(),
        "spoke": free_port(),
        "dicom": free_port(),
        "spoke2": free_port(),
        "dicom2": free_port(),
    }
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
            "--spoke2-port",
            str(ports["spoke2"]),
            "--dicom2-port",
            str(ports["dicom2"]),
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


def test_the_demo_runs_the_hub_and_two_clinics_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    demo, ports, log = _start_demo(tmp_path)
    try:
        banner = wait_for(
            lambda: "Press Ctrl-C" in log.read_text() and log.read_text(), 90, what="the banner"
        )
        for expected in (
            f"http://127.0.0.1:{ports['hub']}",
            f"http://127.0.0.1:{ports['spoke']}",
            f"SPOKE1 on 127.0.0.1:{ports['dicom']}",
            f"http://127.0.0.1:{ports['spoke2']}",
            f"SPOKE2 on 127.0.0.1:{ports['dicom2']}",
            "teleconsult demo-hub stop",
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
        signin = requests.post(
            f"http://127.0.0.1:{ports['spoke2']}/api/v1/auth/token",
            json={"username": "clinic4", "password": "demo"},
            timeout=10,
        )
        assert signin.status_code == 200  # PHC-2's doctors sign in at their own spoke
        children = _children(demo.pid)
        assert len([c for c in children if "-m" in c.cmdline()]) == 5  # hub, 2 spokes, 2 bridges
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
    for spoke in ("spoke", "spoke2"):
        token = (data / spoke / "spoke_token").read_text().strip()
        assert len(token) > 16
        for child in children:
            environ = "\0".join(f"{k}={v}" for k, v in child.environ().items())
            assert token not in environ, child.cmdline()
    for path in (
        data / "spoke" / "spoke_token",
        data / "spoke2" / "spoke_token",
        data / "hub" / "hub.sqlite",
        data / "spoke" / "spoke.sqlite",
        data / "spoke2" / "spoke.sqlite",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    folders = ("hub", "spoke", "bridge", "spoke2", "bridge2", "hub/images")
    for folder in (data, *(data / f for f in folders)):
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


def _demo_hub(tmp_path: Path, action: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "demo-hub",
            action,
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_the_hub_stops_and_starts_alone_while_a_clinic_keeps_working(tmp_path: Path) -> None:
    demo, ports, log = _start_demo(tmp_path)
    hub = f"http://127.0.0.1:{ports['hub']}"
    spoke = f"http://127.0.0.1:{ports['spoke']}"
    try:
        wait_for(lambda: "Press Ctrl-C" in log.read_text(), 90, what="the banner")
        doctor = requests.post(
            f"{spoke}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=10,
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {doctor}"}

        _demo_hub(tmp_path, "stop")
        wait_for(lambda: not _up(hub + "/healthz"), 30, what="the hub to stop")
        wait_for(
            lambda: "the clinics keep working offline" in log.read_text(), 30, what="the notice"
        )
        assert _up(spoke + "/healthz") and _up(f"http://127.0.0.1:{ports['spoke2']}/healthz")
        raised = requests.post(
            f"{spoke}/api/v1/cases",
            headers=auth,
            json={
                "patient": {"pseudonym": "OFFLINE-1", "age": 30, "sex": "female"},
                "complaint": "Raised while the hub is down",
                "question": "Seen when the link is back?",
                "specialty": "med",
                "priority": "routine",
            },
            timeout=10,
        )
        assert raised.status_code in (200, 201, 202), raised.text
        uid = raised.json()["uid"]
        case = requests.get(f"{spoke}/api/v1/cases/{uid}", headers=auth, timeout=10).json()
        assert not case.get("token")  # waits in the clinic's outbox

        _demo_hub(tmp_path, "start")
        wait_for(lambda: _up(hub + "/healthz"), 60, what="the hub to start again")
        synced = wait_for(
            lambda: (
                (
                    c := requests.get(
                        f"{spoke}/api/v1/cases/{uid}", headers=auth, timeout=10
                    ).json()
                ).get("token")
                and c
            ),
            60,
            what="the case to reach the hub",
        )
        assert synced["token"].startswith("MED-")
        assert demo.poll() is None  # the demo ran on throughout
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
