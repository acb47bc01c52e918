"""What routing needs to know from the database: who is on duty with how many open cases,
who supervises the raising doctor, and whether the specialty is open now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.domain.assignment import Decision, SpecialistLoad, route
from hub.domain.availability import WeeklyHours, describe_opening, parse_hours
from hub.domain.lifecycle import ACTIVE, values
from hub.domain.policy import WorkflowPolicy
from hub.persistence.models import Case, Specialty, SupervisionLink, User, user_specialties
from shared.clock import Clock
from shared.enums import Role


@dataclass
class Router:
    session: Session
    clock: Clock
    policy: WorkflowPolicy

    # -- availability -----------------------------------------------------------------------
    def hours(self, specialty: Specialty) -> WeeklyHours:
        return parse_hours(specialty.hours) if specialty.hours else self.policy.operating_hours

    def opens_at(self, specialty: Specialty, at: datetime | None = None) -> datetime | None:
        """``at`` (default now) if the specialty is open then, else when it next opens."""
        at = at or self.clock.now()
        return self.hours(specialty).next_opening(at, self.policy.timezone)

    def is_open(self, specialty: Specialty, now: datetime) -> bool:
        """Whether the specialty is open at ``now`` (one reading of the clock, given)."""
        return self.opens_at(specialty, now) == now

    def next_staffed(self, specialty: Specialty, now: datetime) -> datetime | None:
        """When someone of the specialty is next on duty with the specialty open, as far as the
        schedules tell (None when they do not: e.g. everyone switched off duty)."""
        hours = self.hours(specialty)
        starts = []
        for user in self.specialists(specialty.id):
            if not (user.active and user.on_duty and user.duty_schedule):
                continue
            start = parse_hours(user.duty_schedule).next_opening(now, self.policy.timezone)
            if start is not None and start > now:
                starts.append(start)
        if not starts:
            opens = hours.next_opening(now, self.policy.timezone)
            return opens if opens is not None and opens > now else None
        first = min(starts)
        return hours.next_opening(first, self.policy.timezone)

    def is_absent(self, user: User, now: datetime) -> bool:
        """No real-time connection for longer than the configured time."""
        limit = timedelta(seconds=self.policy.offline_reroute_s)
        return user.offline_since is not None and now - user.offline_since >= limit

    def on_duty(self, user: User, now: datetime | None = None) -> bool:
        """On duty by the switch, within the duty schedule (if any), and present."""
        now = now or self.clock.now()
        if not (user.active and user.on_duty) or self.is_absent(user, now):
            return False
        if not user.duty_schedule:
            return True
        return parse_hours(user.duty_schedule).is_open(now, self.policy.timezone)

    # -- loads --------------------------------------------------------------------------------
    def specialists(self, specialty_id: int) -> list[User]:
        return list(
            self.session.scalars(
                select(User)
                .join(user_specialties, user_specialties.c.user_id == User.id)
                .where(
                    user_specialties.c.specialty_id == specialty_id,
                    User.role == Role.SPECIALIST.value,
                    User.active,
                )
                .order_by(User.id)
            )
        )

    def active_counts(self, user_ids: list[int]) -> dict[int, tuple[int, datetime | None]]:
        rows = self.session.execute(
            select(Case.assigned_to_id, func.count(Case.id), func.max(Case.assigned_at))
            .where(Case.status.in_(values(ACTIVE)), Case.assigned_to_id.in_(user_ids))
            .group_by(Case.assigned_to_id)
        ).all()
        return {uid: (int(n), last) for uid, n, last in rows if uid is not None}

    def loads(self, specialty_id: int, now: datetime | None = None) -> list[SpecialistLoad]:
        now = now or self.clock.now()
        users = self.specialists(specialty_id)
        counts = self.active_counts([u.id for u in users])
        loads = []
        for u in users:
            n, last = counts.get(u.id, (0, None))
            loads.append(
                SpecialistLoad(
                    u.id,
                    self.on_duty(u, now),
                    n,
                    u.max_active_cases,
                    last,
                    u.on_call and not self.is_absent(u, now),
                )
            )
        return loads

    def supervisor_of(self, case: Case) -> int | None:
        if case.raised_by_id is None:
            return None
        return self.session.scalar(
            select(SupervisionLink.specialist_id).where(
                SupervisionLink.specialty_id == case.specialty_id,
                SupervisionLink.doctor_id == case.raised_by_id,
            )
        )

    # -- the decision ---------------------------------------------------------------------
    def decide(self, case: Case, exclude: tuple[int, ...] = ()) -> Decision:
        now = self.clock.now()
        opens = self.opens_at(case.specialty, now)
        when = describe_opening(opens, self.policy.timezone) if opens else "no hours set"
        return route(
            case.priority,
            self.loads(case.specialty_id, now),
            self.supervisor_of(case),
            open_now=opens == now,
            opens_at_text=when,
            exclude=exclude,
        )
