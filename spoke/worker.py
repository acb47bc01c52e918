"""A background worker of the spoke: one thread repeating a cycle, woken at once when there is
new work, backing off exponentially while the cycle fails (the hub is away)."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from shared.backoff import Backoff

log = logging.getLogger(__name__)


class Worker(ABC):
    """Subclasses implement ``cycle()``: True when it went well, False to back off."""

    name = "spoke-worker"

    def __init__(self, interval_s: float, max_backoff_s: float = 60.0) -> None:
        self.interval_s = max(0.01, float(interval_s))
        self.max_backoff_s = max(self.interval_s, max_backoff_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backoff = Backoff(self.interval_s, self.max_backoff_s)

    @abstractmethod
    def cycle(self) -> bool:
        """One round of work."""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the request in flight."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Work now: something new waits."""
        self._wake.set()

    def _run(self) -> None:
        log.info("%s started", self.name)
        while not self._stop.is_set():
            try:
                ok = self.cycle()
            except Exception:  # a bug, a disk or database problem must not kill the worker
                log.exception("%s cycle failed", self.name)
                ok = False
            if ok:
                self.backoff.reset()
            self._wake.wait(self.interval_s if ok else self.backoff.next())
            self._wake.clear()
        log.info("%s stopped", self.name)
