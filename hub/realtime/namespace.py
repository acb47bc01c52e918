"""The hub's Socket.IO namespace: authenticated connections, rooms from identity only, resume
from the event log, advice acknowledgements, presence, and tokens that end their connections."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request
from flask import session as flask_session
from flask_socketio import Namespace, emit, join_room, leave_room
from sqlalchemy import select

from hub.context import hub
from hub.persistence.models import Advice, AdviceDelivery, ApiToken, Case, Event, Spoke
from hub.realtime.presence import Presence
from hub.services.auth import Principal, authenticate, digest
from hub.services.events import as_message
from shared import protocol
from shared.enums import Role
from shared.errors import TeleconsultError

log = logging.getLogger(__name__)

_RESUME_BATCH = 500
ADVICE_ACK = "advice.ack"


@dataclass(frozen=True)
class Connection:
    label: str
    user_id: int | None
    spoke_id: int | None  # set for a spoke's service connection only
    rooms: frozenset[str]
    token_hash: str
    expires_at: datetime | None  # None: a spoke service token, valid until replaced

    @property
    def presence_key(self) -> str:
        return (
            protocol.room_for_spoke(self.spoke_id)
            if self.spoke_id
            else protocol.room_for_user(self.user_id or 0)
        )


def rooms_for(principal: Principal) -> frozenset[str]:
    """The rooms a caller is entitled to; the server alone decides them."""
    if principal.spoke_service is not None:
        return frozenset({protocol.room_for_spoke(principal.spoke_service.id)})
    user = principal.user
    assert user is not None
    rooms = {protocol.room_for_user(user.id)}
    if principal.role is Role.SPOKE_DOCTOR and user.spoke_id is not None:
        rooms.add(protocol.room_for_spoke(user.spoke_id))
    if principal.role is Role.SPECIALIST:
        rooms |= {protocol.room_for_specialty(s.code) for s in user.specialties}
    if principal.role is Role.SUPERVISOR:
        rooms.add(protocol.DASHBOARD_ROOM)
    return frozenset(rooms)


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
        h = hub()
        try:
            with h.db.session() as session:
                principal = authenticate(session, token, h.clock)
                conn = _connection(session, principal, token)
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
        return {"ok": True, "replayed": sent + tail, "resent": resent, "last_seq": last}

    def _replay(self, conn: Connection, after: int) -> tuple[int, int]:
        sent = 0
        with hub().db.session() as session:
            while True:
                rows = session.scalars(
                    select(Event).where(Event.seq > after).order_by(Event.seq).limit(_RESUME_BATCH)
                ).all()
                for row in rows:
                    if conn.rooms.intersection(row.rooms):
                        emit(row.type, as_message(row))
                        sent += 1
                if rows:
                    after = rows[-1].seq
                if len(rows) < _RESUME_BATCH:
                    return after, sent

    def _resend_undelivered_advice(self, conn: Connection, up_to_seq: int) -> int:
        """Advice the spoke was sent before ``up_to_seq`` but never acknowledged: send again."""
        with hub().db.session() as session:
            undelivered = {
                a.id
                for a in session.scalars(
                    select(Advice)
                    .join(Case, Case.id == Advice.case_id)
                    .outerjoin(
                        AdviceDelivery,
                        (AdviceDelivery.advice_id == Advice.id)
                        & (AdviceDelivery.spoke_id == conn.spoke_id),
                    )
                    .where(Case.spoke_id == conn.spoke_id, AdviceDelivery.advice_id.is_(None))
                )
            }
            if not undelivered:
                return 0
            case_ids = select(Advice.case_id).where(Advice.id.in_(undelivered))
            rows = session.scalars(
                select(Event)
                .where(
                    Event.type == protocol.ADVICE_ISSUED,
                    Event.case_id.in_(case_ids),
                    Event.seq <= up_to_seq,
                )
                .order_by(Event.seq)
            ).all()
            resent = 0
            for row in rows:
                if row.payload.get("advice", {}).get("id") in undelivered:
                    emit(row.type, as_message(row))
                    resent += 1
            return resent

    # -- acknowledgements --------------------------------------------------------------------
    def on_advice_ack(self, data: Any) -> dict[str, Any]:
        """A spoke has stored an advice: record the delivery once."""
        conn = self.connections.get(request.sid)  # type: ignore[attr-defined]
        advice_id = data.get("advice_id") if isinstance(data, dict) else None
        if conn is None or conn.spoke_id is None or not isinstance(advice_id, int):
            return {"ok": False}
        h = hub()
        with h.db.session() as session:
            advice = session.get(Advice, advice_id)
            if advice is None or session.get_one(Case, advice.case_id).spoke_id != conn.spoke_id:
                return {"ok": False}
            if session.get(AdviceDelivery, (advice_id, conn.spoke_id)) is None:
                session.add(
                    AdviceDelivery(
                        advice_id=advice_id, spoke_id=conn.spoke_id, delivered_at=h.clock.now()
                    )
                )
        return {"ok": True}

    # -- ending connections whose token no longer holds --------------------------------------
    def disconnect_token(self, token_hash: str) -> int:
        """End every connection made with this token (after a logout or revocation)."""
        sids = [sid for sid, c in list(self.connections.items()) if c.token_hash == token_hash]
        for sid in sids:
            self.disconnect(sid, namespace=self.namespace)
        return len(sids)

    def sweep(self) -> int:
        """Disconnect connections whose token expired, was revoked, or whose spoke was re-keyed."""
        h = hub()
        now = h.clock.now()
        ended = 0
        with h.db.session() as session:
            for sid, conn in list(self.connections.items()):
                if not _still_valid(session, conn, now):
                    log.info("socket of %s ended: its token no longer holds", conn.label)
                    self.disconnect(sid, namespace=self.namespace)
                    ended += 1
        return ended


def _connection(session: Any, principal: Principal, token: str) -> Connection:
    hashed = digest(token)
    expires_at = None
    if principal.user is not None:
        expires_at = session.scalar(
            select(ApiToken.expires_at).where(ApiToken.token_hash == hashed)
        )
    return Connection(
        principal.label,
        principal.user_id,
        principal.spoke_service.id if principal.spoke_service else None,
        rooms_for(principal),
        hashed,
        expires_at,
    )


def _still_valid(session: Any, conn: Connection, now: datetime) -> bool:
    if conn.spoke_id is not None:
        spoke = session.get(Spoke, conn.spoke_id)
        return bool(spoke and spoke.active and spoke.token_hash == conn.token_hash)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == conn.token_hash))
    return bool(token and token.revoked_at is None and token.expires_at > now and token.user.active)
