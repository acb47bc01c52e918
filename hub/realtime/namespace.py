"""The hub's Socket.IO namespace: authenticated connections, rooms from identity only, resume
from the event log, advice acknowledgements, presence, and tokens that end their connections."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request
from flask import session as flask_session
from flask_socketio import Namespace, emit, join_room, leave_room

from hub.context import hub
from hub.realtime.presence import Presence
from hub.services.realtime import Connection, RealtimeService
from shared.errors import TeleconsultError

log = logging.getLogger(__name__)


class HubNamespace(Namespace):  # type: ignore[misc]  # flask_socketio has no type hints
    def __init__(self, presence: Presence, namespace: str = "/") -> None:
        super().__init__(namespace)
        self.presence = presence
        self.connections: dict[str, Connection] = {}
        self._lock = threading.Lock()

    def trigger_event(self, event: str, *args: Any) -> Any:
        # Event names carry dots ("advice.ack"); handler method names cannot.
        return super().trigger_event((event or "").replace(".", "_"), *args)

    # -- connecting ---------------------------------------------------------------------------
    def on_connect(self, auth: Any = None) -> None:
        token = str(auth.get("token") or "") if isinstance(auth, dict) else ""
        if not token:  # a page of the hub: the signed session cookie holds its login token
            token = str(flask_session.get("hub_token") or "")
        try:
            with _service() as service:
                conn = service.connect(token, request.sid, request.remote_addr or "")  # type: ignore[attr-defined]
        except TeleconsultError as exc:
            raise ConnectionRefusedError(exc.message) from None
        with self._lock:
            self.connections[request.sid] = conn  # type: ignore[attr-defined]
        for room in conn.rooms:
            join_room(room)
        self.presence.connected(conn.presence_key)
        log.info("socket connected: %s rooms=%s", conn.label, sorted(conn.rooms))

    def on_disconnect(self, *_: Any) -> None:
        with self._lock:
            conn = self.connections.pop(request.sid, None)  # type: ignore[attr-defined]
        if conn is not None:
            self.presence.disconnected(conn.presence_key)
            with _service() as service:
                service.audit(conn, "disconnect", request.sid, request.remote_addr or "")  # type: ignore[attr-defined]

    # -- resume ------------------------------------------------------------------------------
    def on_resume(self, data: Any) -> dict[str, Any]:
        """Send every event this connection may see with seq > after_seq, in order, then live.

        The connection leaves its rooms while the log is replayed, rejoins, and replays the tail
        committed meanwhile: no gap; an event in both is a duplicate the client drops by seq.
        """
        conn = self.connections.get(request.sid)  # type: ignore[attr-defined]
        after = data.get("after_seq") if isinstance(data, dict) else None
        if conn is None or not isinstance(after, int) or isinstance(after, bool) or after < 0:
            return {"ok": False, "error": 'send {"after_seq": <int>}'}
        for room in conn.rooms:
            leave_room(room)
        try:
            last, sent = self._replay(conn, after)
        finally:
            for room in conn.rooms:
                join_room(room)
        last, tail = self._replay(conn, last)
        resent = self._resend_undelivered_advice(conn, after) if conn.spoke_id else 0
        with _service() as service:  # what a resume replayed is a read of patient data
            service.audit(
                conn,
                "resume",
                request.sid,  # type: ignore[attr-defined]
                request.remote_addr or "",
                after_seq=after,
                last_seq=last,
                replayed=sent + tail,
                resent=resent,
            )
        return {"ok": True, "replayed": sent + tail, "resent": resent, "last_seq": last}

    def _replay(self, conn: Connection, after: int) -> tuple[int, int]:
        sent, more = 0, True
        while more:
            with _service() as service:
                messages, after, more = service.events_after(conn.rooms, after)
            for event_type, message in messages:
                emit(event_type, message)
            sent += len(messages)
        return after, sent

    def _resend_undelivered_advice(self, conn: Connection, up_to_seq: int) -> int:
        """Advice the spoke was sent before ``up_to_seq`` but never acknowledged: send again."""
        assert conn.spoke_id is not None
        with _service() as service:
            messages = service.unacknowledged_advice_events(conn.spoke_id, up_to_seq)
        for event_type, message in messages:
            emit(event_type, message)
        return len(messages)

    # -- acknowledgements --------------------------------------------------------------------
    def on_advice_ack(self, data: Any) -> dict[str, Any]:
        """A spoke has stored an advice: record the delivery once."""
        conn = self.connections.get(request.sid)  # type: ignore[attr-defined]
        advice_id = data.get("advice_id") if isinstance(data, dict) else None
        if conn is None or conn.spoke_id is None or not isinstance(advice_id, int):
            return {"ok": False}
        with _service() as service:
            return {"ok": service.acknowledge_advice(conn.spoke_id, advice_id)}

    # -- ending connections whose token no longer holds --------------------------------------
    def disconnect_token(self, token_hash: str) -> int:
        """End every connection made with this token (after a logout or revocation)."""
        sids = [sid for sid, c in list(self.connections.items()) if c.token_hash == token_hash]
        for sid in sids:
            self.disconnect(sid, namespace=self.namespace)
        return len(sids)

    def sweep(self) -> int:
        """Disconnect connections whose token expired, was revoked, or whose spoke was re-keyed."""
        now = hub().clock.now()
        with _service() as service:
            stale = [
                (sid, conn)
                for sid, conn in list(self.connections.items())
                if not service.still_valid(conn, now)
            ]
        for sid, conn in stale:  # outside the session: disconnecting writes the audit log
            log.info("socket of %s ended: its token no longer holds", conn.label)
            self.disconnect(sid, namespace=self.namespace)
        return len(stale)


@contextmanager
def _service() -> Iterator[RealtimeService]:
    """The realtime service on its own session, committed when the block ends."""
    h = hub()
    with h.db.session() as session:
        yield RealtimeService(session, h.clock)
