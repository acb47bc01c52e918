"""What the Socket.IO edge asks the database: who a connection is, the event log to replay, advice
a spoke has not acknowledged, recording an acknowledgement, whether a token still holds; and the
REST views of the same (presence, undelivered advice). The handlers only emit and answer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.persistence.models import Advice, AdviceDelivery, ApiToken, Case, Event, Spoke, User
from hub.services.audit import audit
from hub.services.auth import Principal, authenticate, digest
from hub.services.events import as_message
from shared import protocol
from shared.clock import Clock
from shared.enums import Role

RESUME_BATCH = 500


@dataclass(frozen=True)
class Connection:
    """A live Socket.IO connection: who, in which rooms, on which token, valid until when."""

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


def entitled_rooms(principal: Principal) -> frozenset[str]:
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


class RealtimeService:
    """The Socket.IO connections' questions to the database, one session per call."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def connect(self, token: str, sid: str = "", remote_addr: str = "") -> Connection:
        """The connection a token opens (audited with its rooms); NotAuthenticated for a bad
        token."""
        principal = authenticate(self.session, token, self.clock)
        hashed = digest(token)
        expires_at = None
        if principal.user is not None:
            expires_at = self.session.scalar(
                select(ApiToken.expires_at).where(ApiToken.token_hash == hashed)
            )
        conn = Connection(
            principal.label,
            principal.user_id,
            principal.spoke_service.id if principal.spoke_service else None,
            entitled_rooms(principal),
            hashed,
            expires_at,
        )
        audit(
            self.session,
            self.clock,
            principal,
            "connect",
            "socket",
            sid,
            remote_addr,
            rooms=sorted(conn.rooms),
        )
        return conn

    def audit(
        self, conn: Connection, action: str, sid: str, remote_addr: str, **detail: Any
    ) -> None:
        """Who had which rooms open when, and what a resume replayed: the audit of live events
        (the event log says which rooms each event went to)."""
        principal = Principal(
            user=self.session.get(User, conn.user_id) if conn.user_id else None,
            spoke_service=self.session.get(Spoke, conn.spoke_id) if conn.spoke_id else None,
        )
        audit(self.session, self.clock, principal, action, "socket", sid, remote_addr, **detail)

    def events_after(
        self, rooms: Iterable[str], after: int, limit: int = RESUME_BATCH
    ) -> tuple[list[tuple[str, dict[str, Any]]], int, bool]:
        """Up to ``limit`` logged events after seq ``after``, those for ``rooms`` as (type,
        message); the last seq looked at, and whether the log may hold more."""
        wanted = set(rooms)
        rows = self.session.scalars(
            select(Event).where(Event.seq > after).order_by(Event.seq).limit(limit)
        ).all()
        messages = [(row.type, as_message(row)) for row in rows if wanted.intersection(row.rooms)]
        return messages, (rows[-1].seq if rows else after), len(rows) == limit

    def unacknowledged_advice_events(
        self, spoke_id: int, up_to_seq: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """``advice.issued`` events up to ``up_to_seq`` of advice the spoke never acknowledged."""
        undelivered = set(
            self.session.scalars(
                select(Advice.id)
                .join(Case, Case.id == Advice.case_id)
                .outerjoin(
                    AdviceDelivery,
                    (AdviceDelivery.advice_id == Advice.id) & (AdviceDelivery.spoke_id == spoke_id),
                )
                .where(Case.spoke_id == spoke_id, AdviceDelivery.advice_id.is_(None))
            )
        )
        if not undelivered:
            return []
        case_ids = select(Advice.case_id).where(Advice.id.in_(undelivered))
        rows = self.session.scalars(
            select(Event)
            .where(
                Event.type == protocol.ADVICE_ISSUED,
                Event.case_id.in_(case_ids),
                Event.seq <= up_to_seq,
            )
            .order_by(Event.seq)
        ).all()
        return [
            (row.type, as_message(row))
            for row in rows
            if row.payload.get("advice", {}).get("id") in undelivered
        ]

    def acknowledge_advice(self, spoke_id: int, advice_id: int) -> bool:
        """Record once that the spoke stored the advice; False if it is not this spoke's."""
        advice = self.session.get(Advice, advice_id)
        if advice is None or self.session.get_one(Case, advice.case_id).spoke_id != spoke_id:
            return False
        if self.session.get(AdviceDelivery, (advice_id, spoke_id)) is None:
            self.session.add(
                AdviceDelivery(
                    advice_id=advice_id, spoke_id=spoke_id, delivered_at=self.clock.now()
                )
            )
        return True

    def still_valid(self, conn: Connection, now: datetime) -> bool:
        """Whether the connection's token still holds (not expired, revoked or re-keyed)."""
        if conn.spoke_id is not None:
            spoke = self.session.get(Spoke, conn.spoke_id)
            return bool(spoke and spoke.active and spoke.token_hash == conn.token_hash)
        token = self.session.scalar(select(ApiToken).where(ApiToken.token_hash == conn.token_hash))
        return bool(
            token and token.revoked_at is None and token.expires_at > now and token.user.active
        )

    # -- REST views of delivery ------------------------------------------------------------------

    def online(self, presence_keys: Iterable[str]) -> tuple[list[User], list[str]]:
        """The specialists and the spoke codes among the live presence keys."""
        keys = list(presence_keys)
        user_ids = [int(k.split(":")[1]) for k in keys if k.startswith("user:")]
        spoke_ids = [int(k.split(":")[1]) for k in keys if k.startswith("spoke:")]
        users = self.session.scalars(
            select(User).where(User.id.in_(user_ids), User.role == Role.SPECIALIST.value)
        ).all()
        spokes = self.session.scalars(select(Spoke.code).where(Spoke.id.in_(spoke_ids)))
        return list(users), sorted(spokes)

    def undelivered_advice(self, principal: Principal) -> list[dict[str, Any]]:
        """Advice its clinic has not acknowledged: a specialist's own, or all for a supervisor."""
        query = (
            select(Advice, Case)
            .join(Case, Case.id == Advice.case_id)
            .outerjoin(
                AdviceDelivery,
                (AdviceDelivery.advice_id == Advice.id)
                & (AdviceDelivery.spoke_id == Case.spoke_id),
            )
            .where(AdviceDelivery.advice_id.is_(None))
            .order_by(Advice.issued_at)
        )
        if principal.role is Role.SPECIALIST:
            query = query.where(Advice.specialist_id == principal.user_id)
        return [
            {
                "advice_id": a.id,
                "case_id": c.id,
                "case_token": c.token,
                "spoke": c.spoke.code,
                "version": a.version,
                "issued_at": a.issued_at.isoformat(),
            }
            for a, c in self.session.execute(query).all()
        ]
