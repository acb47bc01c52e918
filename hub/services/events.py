"""The event log: an event is written with the change it reports and published after commit.

``record_event`` adds the row (its ``seq`` comes from the database) and remembers it on the
session; ``EventPublisher`` hooks the session factory so that only committed events go out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hub.domain.audience import CaseParties, rooms_for
from hub.persistence.models import Case, Event
from shared.clock import Clock
from shared.protocol import event_payload

_PENDING = "teleconsult.pending_events"
_LOCKED = "teleconsult.event_lock_transaction"
# Serialises event-writing transactions on PostgreSQL so that seq order is commit order:
# a client resuming "after seq N" can then never miss an event committed later with a smaller seq.
_EVENT_LOCK_KEY = 0x7E1E


Publish = Callable[[str, dict[str, Any], list[str]], None]


def record_event(
    session: Session,
    clock: Clock,
    event_type: str,
    case_id: int | None,
    rooms: Iterable[str],
    data: dict[str, Any],
) -> Event:
    """Add an event to the log in the session's transaction. Its ``seq`` is given at the next
    flush (many events then go in one batch); it is published after commit."""
    transaction = session.get_transaction()
    if (
        session.get_bind().dialect.name == "postgresql"
        and session.info.get(_LOCKED) is not transaction
    ):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENT_LOCK_KEY})
        session.info[_LOCKED] = transaction
    row = Event(
        type=event_type,
        case_id=case_id,
        rooms=sorted(set(rooms)),
        payload=data,
        created_at=clock.now(),
    )
    session.add(row)
    session.info.setdefault(_PENDING, []).append(row)
    return row


def parties_of(
    case: Case, previous_assignee_id: int | None = None, escalate_to: Iterable[int] = ()
) -> CaseParties:
    """Who a stored case concerns, for ``rooms_for``."""
    return CaseParties(
        spoke_id=case.spoke_id,
        specialty_code=case.specialty.code,
        assigned_to_id=case.assigned_to_id,
        raised_by_id=case.raised_by_id,
        previous_assignee_id=previous_assignee_id,
        escalate_to=frozenset(escalate_to),
    )


def record_case_event(
    session: Session,
    clock: Clock,
    event_type: str,
    case: Case,
    data: dict[str, Any],
    previous_assignee_id: int | None = None,
    escalate_to: Iterable[int] = (),
) -> Event:
    """An event about a case, to the rooms ``rooms_for`` decides."""
    parties = parties_of(case, previous_assignee_id, escalate_to)
    return record_event(session, clock, event_type, case.id, rooms_for(event_type, parties), data)


def record_staff_event(
    session: Session,
    clock: Clock,
    event_type: str,
    users: Iterable[int | None],
    data: dict[str, Any],
) -> Event:
    """An event about hub staff (supervision, a specialist's duty): dashboard and those named."""
    return record_event(session, clock, event_type, None, rooms_for(event_type, None, users), data)


def as_message(row: Event) -> dict[str, Any]:
    return event_payload(row.seq, row.type, row.case_id, row.payload, row.created_at.isoformat())


class EventPublisher:
    """Publishes the events of a session's transaction once it has committed, and drops them
    if it rolled back."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def bind(self, sessions: sessionmaker[Session]) -> None:
        sa_event.listen(sessions, "after_commit", self._after_commit)
        sa_event.listen(sessions, "after_soft_rollback", self._after_rollback)

    def _after_commit(self, session: Session) -> None:
        for row in session.info.pop(_PENDING, []):
            self._publish(row.type, as_message(row), list(row.rooms))

    def _after_rollback(self, session: Session, previous: Any) -> None:
        if previous.parent is None:  # the whole transaction, not a savepoint
            session.info.pop(_PENDING, None)
