"""The hub's periodic work: SLA breaches, presence and schedules. Time comes from the clock.

The real-time layer calls ``HubJobs.tick(online_user_ids)`` every few seconds
(``hub.realtime.jobs.workflow_tick``, with presence from the hub's registry); tests call that
same tick after moving a ``FrozenClock``. Owns its commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.lifecycle import OPEN, values
from hub.domain.policy import WorkflowPolicy
from hub.domain.sla import is_breached
from hub.persistence.models import Case, Specialty, User
from hub.services.audit import audit
from hub.services.auth import purge_tokens
from hub.services.workflow import HUB, Workflow
from shared import protocol
from shared.clock import Clock
from shared.enums import CaseStatus, Role


@dataclass
class TickReport:
    sla_breached: list[int] = field(default_factory=list)
    rerouted: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sla_breached": self.sla_breached, "rerouted": self.rerouted}


@dataclass
class HubJobs:
    session: Session
    clock: Clock
    policy: WorkflowPolicy
    flow: Workflow = field(init=False)

    def __post_init__(self) -> None:
        self.flow = Workflow(self.session, self.clock, self.policy)

    def tick(self, online_user_ids: Iterable[int] | None = None) -> TickReport:
        """One round: presence (if given), reroute from absent or off-schedule specialists,
        serve pools that can be served, mark SLA breaches. Commits."""
        report = TickReport()
        if online_user_ids is not None:
            self._note_presence(set(online_user_ids))
        report.rerouted = self._reroute_from_absent()
        for specialty_id in self.session.scalars(select(Specialty.id).where(Specialty.active)):
            # Someone may have come on duty (schedule, presence) or left: serve the pool and
            # refresh the ETAs (an estimate that has passed is told again, never left stale).
            self.flow.touch_specialty(specialty_id)
        self.flow.finish()
        report.sla_breached = self.check_sla()
        purge_tokens(self.session, self.clock)
        self.session.commit()
        return report

    def reroute_absent_specialists(self, online_user_ids: Iterable[int]) -> list[int]:
        """Presence from the real-time layer: specialists without a connection for longer than
        ``offline_reroute_s`` stop receiving cases and their unstarted cases go elsewhere."""
        self._note_presence(set(online_user_ids))
        moved = self._reroute_from_absent()
        self.flow.finish()
        self.session.commit()
        return moved

    def _note_presence(self, online: set[int]) -> None:
        now = self.clock.now()
        for user in self.session.scalars(
            select(User).where(User.role == Role.SPECIALIST.value, User.active)
        ):
            if user.id in online:
                user.last_seen_at, user.offline_since = now, None
            elif user.offline_since is None:
                user.offline_since = now

    def _reroute_from_absent(self) -> list[int]:
        """Cases waiting for a specialist who is no longer on duty (switch, schedule, absence)."""
        holders = self.session.scalars(
            select(User).where(
                User.id.in_(
                    select(Case.assigned_to_id).where(Case.status == CaseStatus.ASSIGNED.value)
                )
            )
        ).all()
        moved: list[int] = []
        for user in holders:
            if self.flow.router.on_duty(user):
                continue
            why = "offline" if self.flow.router.is_absent(user, self.clock.now()) else "off duty"
            moved += [
                c.id for c in self.flow.reroute_unstarted(user.id, f"{user.username} is {why}")
            ]
        return moved

    def check_sla(self) -> list[int]:
        """Mark every case past its first-response deadline, tell the clinic, the specialist,
        the raising doctor's supervising specialist, the specialty's on-call specialists and
        the supervisors' dashboard (``rooms_for``)."""
        now = self.clock.now()
        due = self.session.scalars(
            select(Case)
            .where(
                Case.sla_due_at <= now,
                Case.first_response_at.is_(None),
                Case.sla_breached_at.is_(None),
                Case.status.in_(values(OPEN)),
            )
            .order_by(Case.sla_due_at)
        ).all()
        for case in due:
            if not is_breached(case.sla_due_at, case.first_response_at, now):
                continue
            case.sla_breached_at = now
            supervisor = self.flow.router.supervisor_of(case)
            late = int((now - (case.sla_due_at or now)).total_seconds())
            due_time = f"{case.sla_due_at:%H:%M}"
            reason = f"no first response within {self.policy.sla(case.priority)} (due {due_time})"
            self.flow.note(case, "sla_breached", HUB, reason)
            audit(
                self.session,
                self.clock,
                HUB,
                "sla_breached",
                "case",
                case.uid,
                escalated_to=supervisor,
            )
            on_call = self._on_call(case.specialty_id)
            self.flow.emit(
                protocol.SLA_BREACHED,
                case,
                escalate_to=tuple(u for u in (supervisor, *on_call) if u),
                on_call=list(on_call),
                due_at=case.sla_due_at.isoformat() if case.sla_due_at else None,
                late_s=late,
                escalated_to=supervisor,
                reason=reason,
                clinic_text=self.policy.sla_breach_clinic_text,
            )
        self.session.flush()
        return [c.id for c in due]

    def _on_call(self, specialty_id: int) -> tuple[int, ...]:
        """The specialty's specialists on the on-call list: a breach is escalated to them."""
        return tuple(u.id for u in self.flow.router.specialists(specialty_id) if u.on_call)
