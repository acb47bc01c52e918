"""Child processes that do not outlive the process that started them (the demo, the cluster,
the tests' hubs and spokes)."""

from __future__ import annotations

import contextlib
import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if its parent dies, even by SIGKILL (no orphans). Pass as
    ``preexec_fn`` to ``subprocess.Popen``."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
