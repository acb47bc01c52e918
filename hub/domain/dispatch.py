"""An in-memory hub floor: the routing, queue and lifecycle rules applied to plain objects.

The database services apply the same rules to stored cases; this model lets the property tests
explore long random sequences quickly and lets the benchmark push a whole day through the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hub.domain.assignment import (
    Decision,
    SpecialistLoad,
    WaitingCase,
    choose_specialist,
    fill_from_pool,
)
from hub.domain.lifecycle import ACTIVE, Action, check_target
from hub.domain.queue import QueueKey, WaitingQueue, queue_key
from shared.enums import CaseStatus as S


@dataclass
class FloorCase:
    case_id: int
    specialty: str
    priority: str
    submitted_at: datetime
    raised_by: int | None
    status: S = S.SUBMITTED
    assigned_to: int | None = None

    @property
    def key(self) -> QueueKey:
        return queue_key(self.priority, self.submitted_at, self.case_id)


@dataclass
class FloorSpecialist:
    specialist_id: int
    specialties: frozenset[str]
    max_active: int = 10
    on_duty: bool = True
    active: int = 0
    last_assigned_at: datetime | None = None

    def load(self) -> SpecialistLoad:
        return SpecialistLoad(
            self.specialist_id, self.on_duty, self.active, self.max_active, self.last_assigned_at
        )


@dataclass
class Floor:
    specialists: dict[int, FloorSpecialist] = field(default_factory=dict)
    supervisors: dict[tuple[str, int], int] = field(default_factory=dict)  # (specialty, doctor)
    cases: dict[int, FloorCase] = field(default_factory=dict)
    pools: dict[str, WaitingQueue] = field(default_factory=dict)
    personal: dict[int, WaitingQueue] = field(default_factory=dict)
    decisions: int = 0
    _staff: dict[str, list[FloorSpecialist]] = field(default_factory=dict)
    _staff_size: int = -1

    # -- the rules ---------------------------------------------------------------------------
    def submit(self, case: FloorCase, now: datetime) -> Decision:
        self.cases[case.case_id] = case
        return self._route(case, now, Action.ROUTE)

    def claim(self, case_id: int, specialist_id: int) -> None:
        case = self.cases[case_id]
        target = check_target(Action.CLAIM, case.status, S.IN_REVIEW)
        self._leave_queue(case)
        case.status = target
        if case.assigned_to != specialist_id:
            case.assigned_to = specialist_id
            self.specialists[specialist_id].active += 1

    def finish(self, case_id: int, now: datetime) -> None:
        """Advice issued: the specialist's slot frees and the pool refills it."""
        case = self.cases[case_id]
        target = check_target(Action.ADVISE, case.status, S.ADVISED)
        self._leave_queue(case)
        if case.assigned_to is not None and case.status in ACTIVE:
            self.specialists[case.assigned_to].active -= 1
        case.status = target
        self.fill(case.specialty, now)

    def release(self, case_id: int, now: datetime) -> Decision:
        case = self.cases[case_id]
        releaser = case.assigned_to
        self._unassign(case)
        decision = self._route(case, now, Action.RELEASE, exclude=[releaser] if releaser else [])
        self.fill(case.specialty, now)
        return decision

    def set_on_duty(self, specialist_id: int, on_duty: bool, now: datetime) -> list[int]:
        """Going off duty sends the specialist's unstarted cases to be routed again."""
        spec = self.specialists[specialist_id]
        spec.on_duty = on_duty
        moved: list[int] = []
        if not on_duty:
            for key in list(self.personal.get(specialist_id, WaitingQueue()).keys()):
                case = self.cases[key[2]]
                self._unassign(case)
                self._route(case, now, Action.REROUTE, exclude=[specialist_id])
                moved.append(case.case_id)
        for code in spec.specialties:
            self.fill(code, now)
        return moved

    def reassign(self, case_id: int, specialist_id: int, now: datetime) -> None:
        case = self.cases[case_id]
        check_target(Action.REASSIGN, case.status, S.ASSIGNED)
        self._unassign(case)
        self._assign(case, specialist_id, now)
        self.fill(case.specialty, now)

    def fill(self, specialty: str, now: datetime) -> None:
        pool = self.pools.get(specialty)
        if not pool:
            return
        loads = self._loads(specialty)
        room = sum(c.max_active_cases - c.active_cases for c in loads if c.has_room)
        if not room:
            return
        waiting = [
            WaitingCase(k[2], self.cases[k[2]].priority, self._supervisor(self.cases[k[2]]))
            for k in pool.keys()[:room]
        ]
        for case_id, decision in fill_from_pool(waiting, loads, now):
            case = self.cases[case_id]
            pool.remove(case.key)
            assert decision.specialist_id is not None
            self._assign(case, decision.specialist_id, now, Action.REROUTE)

    # -- bookkeeping -------------------------------------------------------------------------
    def _route(
        self, case: FloorCase, now: datetime, action: Action, exclude: list[int] | None = None
    ) -> Decision:
        decision = choose_specialist(
            self._loads(case.specialty), self._supervisor(case), exclude or []
        )
        self.decisions += 1
        if decision.specialist_id is None:
            case.status = check_target(action, case.status, S.QUEUED)
            self.pools.setdefault(case.specialty, WaitingQueue()).add(case.key)
        else:
            self._assign(case, decision.specialist_id, now, action)
        return decision

    def _assign(
        self, case: FloorCase, specialist_id: int, now: datetime, action: Action = Action.REASSIGN
    ) -> None:
        case.status = check_target(action, case.status, S.ASSIGNED)
        case.assigned_to = specialist_id
        spec = self.specialists[specialist_id]
        spec.active += 1
        spec.last_assigned_at = now
        self.personal.setdefault(specialist_id, WaitingQueue()).add(case.key)

    def _unassign(self, case: FloorCase) -> None:
        self._leave_queue(case)
        if case.assigned_to is not None and case.status in ACTIVE:
            self.specialists[case.assigned_to].active -= 1
        case.assigned_to = None

    def _leave_queue(self, case: FloorCase) -> None:
        if case.status is S.QUEUED:
            self.pools[case.specialty].remove(case.key)
        elif case.status is S.ASSIGNED and case.assigned_to is not None:
            self.personal[case.assigned_to].remove(case.key)

    def _loads(self, specialty: str) -> list[SpecialistLoad]:
        if self._staff_size != len(self.specialists):  # the roster changed: index it again
            self._staff.clear()
            for spec in self.specialists.values():
                for code in spec.specialties:
                    self._staff.setdefault(code, []).append(spec)
            self._staff_size = len(self.specialists)
        return [s.load() for s in self._staff.get(specialty, [])]

    def _supervisor(self, case: FloorCase) -> int | None:
        if case.raised_by is None:
            return None
        return self.supervisors.get((case.specialty, case.raised_by))

    def position(self, case_id: int) -> int | None:
        case = self.cases[case_id]
        if case.status is S.QUEUED:
            return self.pools[case.specialty].position(case.key)
        if case.status is S.ASSIGNED and case.assigned_to is not None:
            return self.personal[case.assigned_to].position(case.key)
        return None

    def check(self) -> None:
        """Every submitted case is with exactly one specialist or waits in exactly one queue."""
        for case in self.cases.values():
            holders = [sid for sid, q in self.personal.items() if q.position(case.key) is not None]
            pools = [code for code, q in self.pools.items() if q.position(case.key) is not None]
            if case.status is S.ASSIGNED:
                assert case.assigned_to is not None and holders == [case.assigned_to] and not pools
            elif case.status is S.QUEUED:
                assert case.assigned_to is None and pools == [case.specialty] and not holders
            else:
                assert not holders and not pools
                if case.status in ACTIVE:
                    assert case.assigned_to is not None
        for spec in self.specialists.values():
            held = sum(
                1
                for c in self.cases.values()
                if c.assigned_to == spec.specialist_id and c.status in ACTIVE
            )
            assert held == spec.active, "load bookkeeping drifted"
