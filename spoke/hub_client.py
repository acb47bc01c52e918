"""The spoke's Socket.IO client: receives the hub's events for this spoke, stores each one
locally (committed) before acknowledging advice, and catches up with ``resume`` and a REST
mirror of this spoke's cases on every (re)connect."""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import socketio

from shared import protocol
from shared.backoff import Backoff
from spoke.hub_api import HubApi, HubRefused, HubUnavailable
from spoke.store import CaseStore

log = logging.getLogger(__name__)

_STOP = object()
HANDLED_EVENTS = (
    protocol.CASE_ASSIGNED,
    protocol.CASE_UPDATED,
    protocol.IMAGE_RECEIVED,
    protocol.MESSAGE_POSTED,
    protocol.ADVICE_ISSUED,
    protocol.QUEUE_POSITION,
    protocol.SLA_BREACHED,
)


class HubClient:
    """A reconnecting Socket.IO connection to the hub with ``start()`` / ``stop()``."""

    def __init__(
        self,
        hub_url: str,
        spoke_token: str,
        store: CaseStore,
        hub_api: HubApi,
        call_timeout_s: float = 10.0,
        max_delay_s: float = 30.0,
        on_link_back: Callable[[], None] = lambda: None,
    ) -> None:
        self.hub_url = hub_url
        # Called on every (re)connection: the spoke's workers send what waited at once instead
        # of sleeping out their backoff (up to a minute after an outage).
        self.on_link_back = on_link_back
        self.spoke_token = spoke_token
        self.store = store
        self.hub_api = hub_api
        self.call_timeout_s = call_timeout_s
        self.max_delay_s = max_delay_s
        self.sio = socketio.Client(
            reconnection=True,
            reconnection_delay=1,
            reconnection_delay_max=max_delay_s,
            handle_sigint=False,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Events are stored one at a time in the order they arrived (the Socket.IO client may
        # call handlers on several threads): an older event never overwrites a newer one.
        self._events: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._register()

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected)

    def _register(self) -> None:
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        for name in HANDLED_EVENTS:
            self.sio.on(name, self._events.put)

    def start(self) -> None:
        """Connect in the background; keeps trying until connected or stopped."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._store_events, name="spoke-hub-events", daemon=True
        )
        self._worker.start()
        self._thread = threading.Thread(
            target=self._connect_loop, name="spoke-hub-client", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._close_websocket_without_waiting()
        try:
            self.sio.shutdown()
        except Exception:  # shutting down must not fail because the link already broke
            log.debug("socket shutdown", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._worker is not None:
            self._events.put(_STOP)
            self._worker.join(timeout)
            self._worker = None

    def _close_websocket_without_waiting(self) -> None:
        """websocket-client's ``close()`` waits up to 3 s for the hub's closing frame, which the
        Engine.IO read loop (reading the same socket on its own thread) takes first: every stop
        took 3 s. The closing frame is sent all the same; only the wait for the echo is dropped."""
        ws = getattr(self.sio.eio, "ws", None)
        if ws is not None and callable(getattr(ws, "close", None)):
            ws.close = functools.partial(ws.close, timeout=0)

    def _store_events(self) -> None:
        while (data := self._events.get()) is not _STOP:
            self.handle_event(data)

    def _connect_loop(self) -> None:
        """The first connection (python-socketio reconnects by itself once connected)."""
        backoff = Backoff(1.0, self.max_delay_s)
        while not self._stop.is_set():
            try:
                self.sio.connect(
                    self.hub_url, auth={"token": self.spoke_token}, wait_timeout=self.call_timeout_s
                )
                break
            except (socketio.exceptions.ConnectionError, ValueError) as exc:
                delay = backoff.next()
                log.warning(
                    "cannot connect to the hub at %s (%s): retry in %.0fs", self.hub_url, exc, delay
                )
                self._stop.wait(delay)
        if self._stop.is_set() and self.sio.connected:
            self.sio.disconnect()

    # -- handlers: never raise -------------------------------------------------------------
    def _on_connect(self) -> None:
        log.info("connected to the hub at %s", self.hub_url)
        try:
            self.on_link_back()
        except Exception:  # a handler never raises
            log.exception("waking the spoke's workers failed")
        # call() waits for the hub's answer: not on the thread that delivers it.
        threading.Thread(target=self.catch_up, name="spoke-catch-up", daemon=True).start()

    def _on_disconnect(self, *_: Any) -> None:
        log.warning("disconnected from the hub")

    def _on_connect_error(self, data: Any = None) -> None:
        log.debug("Socket.IO connection to the hub failed: %s", data)

    def catch_up(self) -> None:
        """Ask for missed events, then mirror every case of this spoke and missing advice."""
        try:
            answer = self.sio.call(
                protocol.RESUME, {"after_seq": self.store.last_seq()}, timeout=self.call_timeout_s
            )
            log.info("resume: %s", answer)
            self.mirror()
            for advice_id in self.store.unacked_advice():
                self._ack({"id": advice_id})
        except (HubUnavailable, HubRefused, socketio.exceptions.SocketIOError) as exc:
            log.warning("catching up with the hub failed: %s", exc)
        except Exception:
            log.exception("catching up with the hub failed")

    def mirror(self) -> int:
        """Copy every case of this spoke from the hub; returns how many were seen."""
        page, seen = 1, 0
        while True:
            answer = self.hub_api.list_cases(page)
            items = answer.get("items") or []
            seen += len(self.store.mirror_cases(items))
            if not items or seen >= int(answer.get("total") or 0):
                break
            page += 1
        for uid, hub_id in self.store.cases_missing_advice():
            self.store.store_advice(uid, self.hub_api.advice_for(hub_id))
        return seen

    def handle_event(self, data: Any) -> None:
        """Store one event (committed), then acknowledge its advice."""
        try:
            if not isinstance(data, dict):
                log.warning("ignored an event that is not an object: %r", data)
                return
            advice = self.store.handle_event(data)
            if advice is not None:
                self._ack(advice)
        except Exception:
            log.exception(
                "could not store hub event %s", data.get("seq") if isinstance(data, dict) else data
            )

    def _ack(self, advice: dict[str, Any]) -> None:
        answer = self.sio.call(
            protocol.ADVICE_ACK, {"advice_id": advice["id"]}, timeout=self.call_timeout_s
        )
        if isinstance(answer, dict) and answer.get("ok"):
            self.store.mark_acked(int(advice["id"]))
        else:
            log.warning("the hub did not accept the ack of advice %s: %s", advice["id"], answer)
