"""Child processes that do not outlive the process that started them (the demo, the cluster,
the tests' hubs and spokes)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
from collections.abc import Callable

import requests

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if its parent dies, even by SIGKILL (no orphans). Pass as
    ``preexec_fn`` to ``subprocess.Popen``."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_answering(
    popen: subprocess.Popen[bytes],
    url: str,
    timeout: float = 60,
    stopping: Callable[[], bool] = lambda: False,
) -> str | None:
    """Wait until the child answers ``url`` (2xx). None once it does, or when ``stopping()``;
    otherwise why not: "stopped" (the child ended) or "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping():
            return None
        if popen.poll() is not None:
            return "stopped"
        try:
            if requests.get(url, timeout=2).ok:
                return None
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return None if stopping() else "timeout"
