"""Live queue positions and ETAs of waiting cases, kept on the cases and refreshed whenever a
queue changes, so the clinic can be told (``queue.position``) exactly when its place moves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.domain.queue import (
    ORDER_FIELDS,
    PRIORITY_RANKS,
    Throughput,
    eta_changed,
    handling_time,
    order_key,
)
from hub.persistence.models import Case, Specialty
from hub.services.routing import Router
from shared.enums import CaseStatus
from shared.eta import Eta, honest_eta

# ("user", specialist id): cases assigned to one specialist, not yet started;
# ("pool", specialty id): cases waiting for any specialist of the specialty.
QueueRef = tuple[str, int]


def queue_ref(case: Case) -> QueueRef | None:
    if case.status == CaseStatus.ASSIGNED.value and case.assigned_to_id is not None:
        return ("user", case.assigned_to_id)
    if case.status == CaseStatus.QUEUED.value:
        return ("pool", case.specialty_id)
    return None


def queue_order() -> tuple[Any, ...]:
    """The domain's queue order (``hub.domain.queue.order_key``) as SQL ``ORDER BY`` terms."""
    rank = sql_case(PRIORITY_RANKS, value=Case.priority, else_=len(PRIORITY_RANKS))
    terms = {"priority": rank, "submitted_at": Case.submitted_at, "id": Case.id}
    return tuple(terms[name] for name in ORDER_FIELDS)


def before_in_queue(case: Case) -> Any:
    """SQL: the cases that come before ``case`` in queue order (whatever queue they are in)."""
    rank, submitted, ident = queue_order()
    mine = order_key(case.priority, case.submitted_at, case.id)
    return (rank < mine[0]) | (
        (rank == mine[0]) & ((submitted < mine[1]) | ((submitted == mine[1]) & (ident < mine[2])))
    )


@dataclass
class QueueBoard:
    session: Session
    router: Router
    _throughput: dict[int, Throughput] = field(default_factory=dict)
    _held_by_specialty: dict[int, int] = field(default_factory=dict)
    _opening: dict[int, datetime | None] = field(default_factory=dict)
    _staffed: dict[int, datetime | None] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop what was counted: staffing or assignments changed in this unit of work."""
        self._throughput.clear()
        self._staffed.clear()

    def _waiting_rows(self, ref: QueueRef) -> list[Any]:
        """(id, queue_position, eta_at, specialty_id) of a queue's cases, first to be seen first.

        Plain rows, not cases: a queue may hold thousands, of which few move on a change.
        """
        kind, ident = ref
        if kind == "user":
            where = (Case.status == CaseStatus.ASSIGNED.value) & (Case.assigned_to_id == ident)
        else:
            where = (Case.status == CaseStatus.QUEUED.value) & (Case.specialty_id == ident)
        return list(
            self.session.execute(
                select(Case.id, Case.queue_position, Case.eta_at, Case.specialty_id)
                .where(where)
                .order_by(*queue_order())
            )
        )

    def refresh(self, refs: Iterable[QueueRef]) -> list[Case]:
        """Recompute positions and ETAs of the given queues; returns the cases whose place or
        ETA moved enough to tell the clinic."""
        now = self.router.clock.now()
        self._held_by_specialty.clear()  # assignments may have changed since the last refresh
        self._opening.clear()
        moved: dict[int, tuple[int, datetime | None]] = {}
        for ref in sorted(set(refs)):
            for position, row in enumerate(self._waiting_rows(ref), start=1):
                eta = self._eta(ref, row.specialty_id, position, now)
                passed = row.eta_at is not None and row.eta_at <= now
                if row.queue_position != position or passed or eta_changed(row.eta_at, eta):
                    moved[row.id] = (position, eta)
        changed = []
        ids = list(moved)
        for start in range(0, len(ids), 1000):
            for case in self.session.scalars(
                select(Case).where(Case.id.in_(ids[start : start + 1000]))
            ):
                case.queue_position, case.eta_at = moved[case.id]
                changed.append(case)
        return sorted(changed, key=lambda c: c.id)

    def _eta(
        self, ref: QueueRef, specialty_id: int, position: int, now: datetime
    ) -> datetime | None:
        throughput = self.throughput(specialty_id)
        start = self._opens_at(specialty_id, now)
        if start is None or throughput.on_duty <= 0:
            return None  # nobody to see it: no estimate (``eta`` says "not before" instead)
        if ref[0] == "user":
            return throughput.specialist_eta(start, position)
        return throughput.pool_eta(start, position, self._held(specialty_id))

    def _opens_at(self, specialty_id: int, now: datetime) -> datetime | None:
        if specialty_id not in self._opening:
            self._opening[specialty_id] = self.router.opens_at(
                self.session.get_one(Specialty, specialty_id), now
            )
        return self._opening[specialty_id]

    def _held(self, specialty_id: int) -> int:
        """Cases of the specialty held by specialists; counted once per refresh, not per case."""
        if specialty_id not in self._held_by_specialty:
            self._held_by_specialty[specialty_id] = int(
                self.session.scalar(
                    select(func.count(Case.id)).where(
                        Case.specialty_id == specialty_id, Case.status == CaseStatus.ASSIGNED.value
                    )
                )
                or 0
            )
        return self._held_by_specialty[specialty_id]

    def throughput(self, specialty_id: int) -> Throughput:
        """The specialty's measured handling time and its specialists on duty now."""
        if specialty_id not in self._throughput:
            recent = self.session.execute(
                select(Case.started_at, Case.finished_at)
                .where(
                    Case.specialty_id == specialty_id,
                    Case.finished_at.is_not(None),
                    Case.started_at.is_not(None),
                )
                .order_by(Case.finished_at.desc())
                .limit(self.router.policy.handling_sample)
            ).all()
            durations = [(f - s).total_seconds() for s, f in recent if s and f]
            on_duty = sum(
                1 for u in self.router.specialists(specialty_id) if self.router.on_duty(u)
            )
            self._throughput[specialty_id] = Throughput(
                handling_time(durations, self.router.policy.default_handling_s), on_duty
            )
        return self._throughput[specialty_id]

    def eta(self, case: Case) -> Eta:
        """What the clinic is told now about when ``case`` will be seen (``honest_eta``)."""
        if queue_ref(case) is None:
            return Eta()
        now = self.router.clock.now()
        on_duty = self.throughput(case.specialty_id).on_duty
        opening = self._next_staffed(case.specialty, now) if on_duty <= 0 else None
        return honest_eta(now, case.eta_at, on_duty, opening)

    def _next_staffed(self, specialty: Specialty, now: datetime) -> datetime | None:
        """Counted once per unit of work and specialty, like the throughput."""
        if specialty.id not in self._staffed:
            self._staffed[specialty.id] = self.router.next_staffed(specialty, now)
        return self._staffed[specialty.id]

    def specialty_refs(self, specialty: Specialty) -> set[QueueRef]:
        """Every queue whose ETAs depend on the specialty's staffing."""
        refs: set[QueueRef] = {("pool", specialty.id)}
        refs |= {("user", u.id) for u in self.router.specialists(specialty.id)}
        return refs
