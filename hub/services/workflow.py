"""A unit of work on cases: every transition is checked by the state machine, written to the
case history, the event log and the audit log; routing and pool refills happen here; queue
positions and ETAs are refreshed once at the end and pushed to the clinics that moved.

Services create one ``Workflow`` per request, call its methods, then ``finish()`` and commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.assignment import Decision, WaitingCase, fill_from_pool
from hub.domain.lifecycle import ACTIVE, WAITING, Action, Actor, CaseFacts, authorize, check_target
from hub.domain.policy import WorkflowPolicy
from hub.domain.queue import order_key
from hub.domain.sla import sla_due
from hub.persistence.models import Case, CaseHistory, Specialty, User
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.events import record_case_event
from hub.services.queueing import QueueBoard, QueueRef, before_in_queue, queue_order, queue_ref
from hub.services.routing import Router
from hub.services.serialize import case_dict
from shared import protocol
from shared.clock import Clock
from shared.enums import CaseStatus as S
from shared.errors import Conflict

HUB = Principal()
_KEEP: Any = object()


def actor_of(principal: Principal) -> Actor:
    if principal.spoke_service is not None:
        return Actor(spoke_id=principal.spoke_service.id, spoke_service=True)
    user = principal.user
    if user is None:
        return Actor(hub=True)
    return Actor(
        role=principal.role,
        user_id=user.id,
        spoke_id=user.spoke_id,
        specialty_ids=frozenset(s.id for s in user.specialties),
    )


def facts_of(case: Case) -> CaseFacts:
    return CaseFacts(S(case.status), case.spoke_id, case.specialty_id, case.assigned_to_id)


@dataclass
class _Pending:
    event_type: str
    case: Case
    previous_assignee_id: int | None
    extra: dict[str, Any]


@dataclass
class Workflow:
    session: Session
    clock: Clock
    policy: WorkflowPolicy
    remote_addr: str = ""
    router: Router = field(init=False)
    board: QueueBoard = field(init=False)
    _pending: list[_Pending] = field(default_factory=list)
    _queues: set[QueueRef] = field(default_factory=set)
    _refill: set[int] = field(default_factory=set)
    # case id -> specialists who must not be handed it in this unit of work (released it, left)
    _not_now: dict[int, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.router = Router(self.session, self.clock, self.policy)
        self.board = QueueBoard(self.session, self.router)

    # -- checks ---------------------------------------------------------------------------
    def authorize(self, principal: Principal, case: Case, action: Action) -> None:
        authorize(action, actor_of(principal), facts_of(case))

    def check_turn(self, case: Case) -> None:
        """Emergencies first: no case is started while a case of higher priority of its
        specialty waits in the pool (409 naming the case to take first)."""
        rank = queue_order()[0]
        mine = order_key(case.priority, case.submitted_at, case.id)[0]
        first: Case | None = self.session.scalars(
            select(Case)
            .where(
                Case.status == S.QUEUED.value,
                Case.specialty_id == case.specialty_id,
                Case.id != case.id,
                rank < mine,
            )
            .order_by(*queue_order())
            .limit(1)
        ).first()
        if first is not None:
            raise Conflict(
                f"{first.priority.title()} case {first.token} waits in the pool: take it first.",
                fields={"waiting": first.token, "status": case.status},
            )

    # -- transitions ------------------------------------------------------------------------
    def move(
        self,
        case: Case,
        action: Action,
        target: S,
        principal: Principal = HUB,
        *,
        assign_to: int | None = _KEEP,
        reason: str = "",
        event: str | None = None,
        **extra: Any,
    ) -> None:
        """Apply one transition and record it (history, audit, event after ``finish``)."""
        before = S(case.status)
        check_target(action, before, target)
        now = self.clock.now()
        old_ref, old_assignee = queue_ref(case), case.assigned_to_id
        if assign_to is not _KEEP and assign_to != case.assigned_to_id:
            case.assigned_to = self.session.get(User, assign_to) if assign_to is not None else None
            case.assigned_to_id = assign_to
            case.assigned_at = now if assign_to is not None else None
        case.status = target.value
        case.updated_at = now
        if target not in WAITING:
            case.queue_position, case.eta_at = None, None
        self._queues |= {r for r in (old_ref, queue_ref(case)) if r is not None}
        if (
            old_assignee is not None
            and before in ACTIVE
            and (target not in ACTIVE or case.assigned_to_id != old_assignee)
        ):
            self._refill.add(case.specialty_id)  # the old assignee has room again
        self.session.add(
            CaseHistory(
                case_id=case.id,
                at=now,
                action=action.value,
                from_status=before.value,
                to_status=target.value,
                actor_id=principal.user_id,
                actor_label=_label(principal),
                assigned_to_id=case.assigned_to_id,
                reason=reason,
            )
        )
        audit(
            self.session,
            self.clock,
            principal,
            action.value,
            "case",
            case.uid,
            self.remote_addr,
            case_id=case.id,
            from_status=before.value,
            to_status=target.value,
            reason=reason,
        )
        newly_assigned = target is S.ASSIGNED and case.assigned_to_id != old_assignee
        event = event or (protocol.CASE_ASSIGNED if newly_assigned else protocol.CASE_UPDATED)
        previous = old_assignee if old_assignee != case.assigned_to_id else None
        self._pending.append(_Pending(event, case, previous, {"action": action.value, **extra}))

    def note(self, case: Case, action: str, principal: Principal, reason: str) -> None:
        """A step in the case's history that does not change its state (e.g. an SLA breach)."""
        self.session.add(
            CaseHistory(
                case_id=case.id,
                at=self.clock.now(),
                action=action,
                from_status=case.status,
                to_status=case.status,
                actor_id=principal.user_id,
                actor_label=_label(principal),
                assigned_to_id=case.assigned_to_id,
                reason=reason,
            )
        )

    # -- routing ------------------------------------------------------------------------------
    def route(
        self,
        case: Case,
        action: Action,
        principal: Principal = HUB,
        exclude: tuple[int, ...] = (),
        **extra: Any,
    ) -> None:
        """Send the case to a specialist or to its specialty's pool, with the reason; ``extra``
        goes into the event (e.g. the clinic's answer that sent it back)."""
        if case.status == S.SUBMITTED.value and case.submitted_at is not None:
            opens = self.router.opens_at(case.specialty)
            case.sla_due_at = sla_due(self.policy, case.priority, case.submitted_at, opens)
        self._place(case, action, principal, exclude, why="", **extra)

    def _place(
        self,
        case: Case,
        action: Action,
        principal: Principal,
        exclude: tuple[int, ...],
        why: str,
        **extra: Any,
    ) -> None:
        """Routing proper. Emergencies first: while a case waits in the pool ahead of this one,
        this one joins the pool too and the pool is served in queue order at ``finish``."""
        decision = self.router.decide(case, exclude)
        reason = self._explain(decision.specialist_id, decision.reason)
        if decision.specialist_id is not None and self._pool_ahead_of(case):
            reason = "cases ahead of it wait in the pool: queued in turn"
            decision = Decision(None, reason)
            self.refill(case.specialty_id)
        if why:
            reason = f"{why}; {reason}"
        if exclude:
            self._not_now.setdefault(case.id, set()).update(exclude)
        case.routing_reason = reason
        if decision.specialist_id is None and case.status == S.QUEUED.value:
            return
        target = S.QUEUED if decision.specialist_id is None else S.ASSIGNED
        self.move(
            case,
            action,
            target,
            principal,
            assign_to=decision.specialist_id,
            reason=reason,
            routing_reason=reason,
            **extra,
        )

    def _pool_ahead_of(self, case: Case) -> bool:
        """Whether a case of the same specialty waits in the pool before ``case`` in queue order."""
        ahead = before_in_queue(case)
        return (
            self.session.scalar(
                select(Case.id)
                .where(
                    Case.status == S.QUEUED.value,
                    Case.specialty_id == case.specialty_id,
                    Case.id != case.id,
                    ahead,
                )
                .limit(1)
            )
            is not None
        )

    def _explain(self, specialist_id: int | None, reason: str) -> str:
        if specialist_id is None:
            return reason
        user = self.session.get(User, specialist_id)
        return f"to {user.username if user else specialist_id}: {reason}"

    def fill_pool(self, specialty_id: int) -> None:
        """Hand waiting pool cases, in queue order, to specialists of the specialty who now have
        room (outside hours: emergencies to the on-call list)."""
        now = self.clock.now()  # one reading: the opening and the loads are judged at one time
        specialty = self.session.get_one(Specialty, specialty_id)
        open_now = self.router.is_open(specialty, now)
        loads = self.router.loads(specialty_id, now)
        room = sum(
            c.max_active_cases - c.active_cases
            for c in loads
            if (c.has_room if open_now else c.has_room_on_call)
        )
        if room <= 0:
            return
        waiting = list(
            self.session.scalars(
                select(Case)
                .where(Case.status == S.QUEUED.value, Case.specialty_id == specialty_id)
                .order_by(*queue_order())
                .limit(room + len(self._not_now))
            )
        )
        by_id = {c.id: c for c in waiting}
        plan = [
            WaitingCase(
                c.id,
                c.priority,
                self.router.supervisor_of(c),
                frozenset(self._not_now.get(c.id, ())),
            )
            for c in waiting
        ]
        for case_id, decision in fill_from_pool(plan, loads, now, open_now):
            reason = self._explain(decision.specialist_id, decision.reason)
            by_id[case_id].routing_reason = reason
            self.move(
                by_id[case_id],
                Action.REROUTE,
                S.ASSIGNED,
                assign_to=decision.specialist_id,
                reason=reason,
                routing_reason=reason,
            )

    def reroute_unstarted(self, specialist_id: int, why: str) -> list[Case]:
        """Route again the cases waiting for a specialist who left (off duty, offline, gone)."""
        cases = list(
            self.session.scalars(
                select(Case)
                .where(Case.assigned_to_id == specialist_id, Case.status == S.ASSIGNED.value)
                .order_by(*queue_order())
            )
        )
        for case in cases:
            self._place(case, Action.REROUTE, HUB, (specialist_id,), why)
            self.refill(case.specialty_id)
        return cases

    def refill(self, specialty_id: int) -> None:
        """Serve the specialty's pool at the end of this unit of work, if anyone has room."""
        self._refill.add(specialty_id)

    def touch_specialty(self, specialty_id: int) -> None:
        """Staffing changed: ETAs of the specialty move and its pool may be served now."""
        self._refill.add(specialty_id)
        self._queues.add(("pool", specialty_id))
        self._queues |= {("user", u.id) for u in self.router.specialists(specialty_id)}

    # -- the end of the unit of work -------------------------------------------------------
    def finish(self) -> None:
        """Refill pools, refresh queue places and ETAs, then write the events (in order)."""
        done: set[int] = set()
        while self._refill - done:
            specialty_id = min(self._refill - done)
            done.add(specialty_id)
            self.fill_pool(specialty_id)
        self.session.flush()
        self.board.forget()
        moved = self.board.refresh(self._queues)
        announced = set()
        for p in self._pending:
            self.emit(p.event_type, p.case, p.previous_assignee_id, **p.extra)
            announced.add(p.case.id)
        for case in moved:
            if case.id not in announced:
                self.emit(
                    protocol.QUEUE_POSITION,
                    case,
                    queue_position=case.queue_position,
                    eta=case.eta_at.isoformat() if case.eta_at else None,
                )
        self._pending.clear()
        self._queues.clear()
        self._refill.clear()
        self._not_now.clear()

    def emit(
        self,
        event_type: str,
        case: Case,
        previous_assignee_id: int | None = None,
        escalate_to: tuple[int, ...] = (),
        **extra: Any,
    ) -> None:
        """Record an event about ``case`` with the case as it is now; ``rooms_for`` decides
        who receives it."""
        data = {"case_uid": case.uid, "case": case_dict(case, eta=self.board.eta(case)), **extra}
        record_case_event(
            self.session, self.clock, event_type, case, data, previous_assignee_id, escalate_to
        )


def _label(principal: Principal) -> str:
    if principal.user is None and principal.spoke_service is None:
        return "hub"
    return principal.label


@dataclass
class WorkflowService:
    """Base of the services that act through the workflow (routing, queues, events) within one
    request's unit of work."""

    session: Session
    clock: Clock
    remote_addr: str = ""
    policy: WorkflowPolicy = field(default_factory=WorkflowPolicy)
    flow: Workflow = field(init=False)

    def __post_init__(self) -> None:
        self.flow = Workflow(self.session, self.clock, self.policy, self.remote_addr)
