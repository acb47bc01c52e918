"""A real python-socketio client that records what the hub sends it, as a browser or spoke would."""

from __future__ import annotations

import threading
import time
from typing import Any

import socketio


class Listener:
    """Connects with a bearer or spoke token; keeps every event with the time it arrived."""

    def __init__(self, url: str, token: str, reconnection: bool = False) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = socketio.Client(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1
        )
        self.client.on("*", self._record)
        self.client.connect(url, auth={"token": token}, wait_timeout=10)

    def _record(self, event: str, data: Any) -> None:
        with self._lock:
            self.received.append((time.monotonic(), data))

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for _, e in self.received]

    def first(self, event_type: str) -> tuple[float, dict[str, Any]] | None:
        with self._lock:
            return next(((t, e) for t, e in self.received if e.get("type") == event_type), None)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    def resume(self, after_seq: int) -> Any:
        return self.client.call("resume", {"after_seq": after_seq}, timeout=10)

    def close(self) -> None:
        self.client.disconnect()
