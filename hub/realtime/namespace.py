"""The hub's Socket.IO namespace: authenticated connections, rooms from identity, resume, acks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import request
from flask_socketio import Namespace, emit, join_room
from sqlalchemy import select

from hub.context import hub
from hub.persistence.models import Advice, AdviceDelivery, Case, Event
from hub.services.auth import Principal, authenticate
from hub.services.events import as_message
from shared import protocol
from shared.enums import Role
from shared.errors import TeleconsultError

log = logging.getLogger(__name__)

_RESUME_BATCH = 500


@dataclass(frozen=True)
class Connection:
    label: str
    user_id: int | None
    spoke_id: int | None
    rooms: frozenset[str]


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


class HubNamespace(Namespace):
    def __init__(self, namespace: str = "/") -> None:
        super().__init__(namespace)
        self.connections: dict[str, Connection] = {}

    def trigger_event(self, event: str, *args: Any) -> Any:
        # Event names carry dots ("advice.ack"); handler method names cannot.
        return super().trigger_event((event or "").replace(".", "_"), *args)

    def on_connect(self, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        h = hub()
        try:
            with h.db.session() as session:
                principal = authenticate(session, str(token or ""), h.clock)
                conn = Connection(principal.label, principal.user_id, principal.spoke_id
                                  if principal.spoke_service else None, rooms_for(principal))
        except TeleconsultError as exc:
            raise ConnectionRefusedError(exc.message) from None
        self.connections[request.sid] = conn  # type: ignore[attr-defined]
        for room in conn.rooms:
            join_room(room)
        log.info("socket connected: %s rooms=%s", conn.label, sorted(conn.rooms))

    def on_disconnect(self, *_: Any) -> None:
        self.connections.pop(request.sid, None)  # type: ignore[attr-defined]

    def on_resume(self, data: Any) -> dict[str, Any]:
        """Send this connection every event it may see with seq > after_seq, in order."""
        conn = self.connections.get(request.sid)  # type: ignore[attr-defined]
        after = data.get("after_seq") if isinstance(data, dict) else None
        if conn is None or not isinstance(after, int) or after < 0:
            return {"ok": False, "error": "send {\"after_seq\": <int>}"}
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
                if len(rows) < _RESUME_BATCH:
                    break
                after = rows[-1].seq
        return {"ok": True, "replayed": sent}

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
                session.add(AdviceDelivery(advice_id=advice_id, spoke_id=conn.spoke_id, delivered_at=h.clock.now()))
        return {"ok": True}
