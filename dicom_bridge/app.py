"""Run the bridge: spool, forwarder and DICOM server together, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from dicom_bridge.forwarder import Forwarder
from dicom_bridge.linking import CaseDirectory
from dicom_bridge.progress import Ledger, ProgressReporter
from dicom_bridge.scp import start_scp
from dicom_bridge.server import DicomServer
from dicom_bridge.spool import Spool
from dicom_bridge.worklist import SpokeWorklist
from teleconsult.runtime import deid_profile

logger = logging.getLogger(__name__)


def refuse_eventlet() -> None:
    """Fail fast if eventlet patched this process: the server's threads and blocking sockets need
    a process of their own."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("socket"):
        raise RuntimeError(
            "the DICOM bridge must run in its own process, not an eventlet-patched one"
        )


class Bridge:
    """The running bridge: a started forwarder and a listening AE, stopped together."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir, fsync=not settings.unsafe_skip_fsync)
        spoke_url = str(getattr(settings, "spoke_url", "") or "")
        self.worklist = (
            SpokeWorklist(spoke_url, settings.spoke_token, float(settings.worklist_timeout_s))
            if spoke_url
            else None
        )
        self.ledger = Ledger(self.spool.root / "progress.sqlite")
        self.forwarder = Forwarder(
            self.spool,
            hub_url=settings.hub_url,
            token=settings.spoke_token,
            batch_size=settings.batch_size,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            timeout_s=settings.hub_timeout_s,
            max_in_flight=settings.max_in_flight,
            ledger=self.ledger,
            cases=CaseDirectory(self.worklist),
            profile=deid_profile(settings, self.spool.root),
            keep_progress_s=float(settings.progress_keep_days) * 86400,
        )
        self.reporter = (
            ProgressReporter(
                self.ledger,
                spoke_url,
                settings.spoke_token,
                float(settings.worklist_timeout_s),
                float(settings.retry_initial_s),
            )
            if spoke_url
            else None
        )
        if self.reporter is not None:
            self.forwarder.progress_changed = self.reporter.changed
        self._workers_stopped = False
        self.server: DicomServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Return the (host, port) the AE listens on (the real port when configured as 0)."""
        if self.server is None:
            raise RuntimeError("the bridge is not started")
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start forwarding (leftovers first), then accept associations."""
        refuse_eventlet()
        if self.settings.unsafe_skip_fsync:
            logger.warning("unsafe_skip_fsync is set: acknowledged images may be lost in a crash")
        if self.reporter is not None:
            self.reporter.start()
        self.forwarder.start()
        try:
            self.server = start_scp(self.settings, self.spool, self.forwarder.wake, self.worklist)
        except BaseException:
            self._stop_workers()
            raise
        host, port = self.address
        logger.info("DICOM bridge AE %s listening on %s:%d", self.settings.ae_title, host, port)

    def stop(self) -> None:
        """Stop accepting, let associations end, then stop the forwarder."""
        if self.server is not None:
            self.server.shutdown()  # stops accepting and aborts open associations
            self.server = None
        self.spool.close()
        self._stop_workers()
        status = self.forwarder.status()
        logger.info(
            "DICOM bridge stopped: %d instance(s) sent to the hub, %d refused, %d still waiting in "
            "the spool (sent on the next start)",
            status["sent"],
            status["rejected"],
            status["pending"],
        )

    def _stop_workers(self) -> None:
        if self._workers_stopped:
            return
        self._workers_stopped = True
        self.forwarder.stop()
        if self.reporter is not None:
            self.reporter.push_once()  # the last counts, if the spoke is there
            self.reporter.stop()
        self.ledger.close()

    def status(self) -> dict[str, Any]:
        """Return the forwarder's counters."""
        return self.forwarder.status()


def run_bridge(settings: Any, stop_event: threading.Event | None = None) -> None:
    """Run the bridge until SIGINT/SIGTERM (or until ``stop_event`` is set), then shut down."""
    stop = stop_event or threading.Event()
    bridge = Bridge(settings)
    previous = _install_signal_handlers(stop)
    try:
        bridge.start()
        stop.wait()
    finally:
        bridge.stop()
        _restore_signal_handlers(previous)


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    """Make SIGINT/SIGTERM set ``stop``; only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
