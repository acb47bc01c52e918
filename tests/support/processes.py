"""Start real Teleconsult processes (hub, spoke, bridge) on free ports, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from teleconsult.children import die_with_parent
from tests.support.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode


def start(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Process:
    """Run ``python -m <args>`` in its own process group, output to ``log_dir/<name>.log``."""
    log = log_dir / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return Process(name, popen, log)


def wait_http(process: Process, url: str, timeout: float = 30) -> None:
    def up() -> bool:
        if not process.alive():
            raise AssertionError(f"{process.name} exited:\n{process.output()}")
        return requests.get(url, timeout=2).status_code == 200

    try:
        wait_for(up, timeout, what=f"{process.name} at {url}")
    except AssertionError:
        raise AssertionError(f"{process.name} did not come up:\n{process.output()}") from None


@contextmanager
def running(process: Process) -> Iterator[Process]:
    try:
        yield process
    finally:
        process.stop()
