"""Who gets a case (DESIGN.md, "The 1:4 supervision ratio"): the raising doctor's supervisor for
the specialty when on duty and under their concurrent-case limit; else the on-duty specialist
of the specialty with room, least loaded first, ties by longest idle; else the case waits in the
specialty's pool. Outside the specialty's hours only emergencies are routed, to whoever is on
call. Every decision carries the reason a supervisor is shown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.enums import Priority


@dataclass(frozen=True)
class SpecialistLoad:
    specialist_id: int
    on_duty: bool
    active_cases: int
    max_active_cases: int
    last_assigned_at: datetime | None = None
    on_call: bool = False

    @property
    def has_room(self) -> bool:
        return self.on_duty and self.active_cases < self.max_active_cases

    @property
    def has_room_on_call(self) -> bool:
        return self.on_call and self.active_cases < self.max_active_cases

    def plus_one(self, at: datetime | None) -> SpecialistLoad:
        return replace(self, active_cases=self.active_cases + 1, last_assigned_at=at)


@dataclass(frozen=True)
class Decision:
    specialist_id: int | None
    reason: str


_NEVER = datetime.min


def _idle_key(c: SpecialistLoad) -> tuple[int, datetime, int]:
    last = (c.last_assigned_at or _NEVER).replace(tzinfo=None)
    return (c.active_cases, last, c.specialist_id)


def choose_specialist(
    candidates: list[SpecialistLoad],
    supervisor_id: int | None = None,
    exclude: Iterable[int] = (),
) -> Decision:
    """Pick the specialist for a case during the specialty's hours."""
    excluded = frozenset(exclude)
    pool = [c for c in candidates if c.specialist_id not in excluded]
    by_id = {c.specialist_id: c for c in pool}
    supervisor = by_id.get(supervisor_id) if supervisor_id is not None else None
    why_not = ""
    if supervisor is not None:
        if supervisor.has_room:
            return Decision(supervisor.specialist_id, "raising doctor's supervisor is on duty")
        why_not = (
            "supervisor off duty; " if not supervisor.on_duty else "supervisor at case limit; "
        )
    elif supervisor_id is not None and supervisor_id not in excluded:
        why_not = "supervisor not available; "
    ready = [c for c in pool if c.has_room]
    if not ready:
        return Decision(None, why_not + "no on-duty specialist of the specialty has room: queued")
    best = min(ready, key=_idle_key)
    return Decision(
        best.specialist_id, why_not + f"least loaded on-duty specialist ({best.active_cases} open)"
    )


def choose_on_call(candidates: list[SpecialistLoad], exclude: Iterable[int] = ()) -> Decision:
    """Outside hours an emergency goes to the least loaded specialist on the on-call list."""
    excluded = frozenset(exclude)
    ready = [c for c in candidates if c.has_room_on_call and c.specialist_id not in excluded]
    if not ready:
        return Decision(None, "outside hours and nobody on call has room: queued")
    best = min(ready, key=_idle_key)
    return Decision(best.specialist_id, "outside hours: emergency to the on-call specialist")


def route(
    priority: str,
    candidates: list[SpecialistLoad],
    supervisor_id: int | None,
    open_now: bool,
    opens_at_text: str = "",
    exclude: Iterable[int] = (),
) -> Decision:
    """The routing rule in full, hours included."""
    if open_now:
        return choose_specialist(candidates, supervisor_id, exclude)
    if Priority(priority) is Priority.EMERGENCY:
        return choose_on_call(candidates, exclude)
    when = f"; will be seen from {opens_at_text}" if opens_at_text else ""
    return Decision(None, f"outside the specialty's hours: queued{when}")


@dataclass(frozen=True)
class WaitingCase:
    case_id: int
    priority: str
    supervisor_id: int | None
    # Specialists who must not get this case now (e.g. the one who just released it).
    exclude: frozenset[int] = frozenset()


def fill_from_pool(
    waiting: list[WaitingCase],
    candidates: list[SpecialistLoad],
    at: datetime | None,
    open_now: bool = True,
) -> list[tuple[int, Decision]]:
    """Hand pool cases, in queue order, to specialists who have room, until nobody has.

    Emergencies first: a case that cannot be placed stops the hand-out, so nobody is given a
    case behind it. Outside the specialty's hours only emergencies go, to the on-call list.
    Loads are updated as cases are handed out, so one call spreads a backlog evenly.
    """
    loads = {c.specialist_id: c for c in candidates}
    handed: list[tuple[int, Decision]] = []
    for case in waiting:
        if not open_now and Priority(case.priority) is not Priority.EMERGENCY:
            break
        decision = route(
            case.priority, list(loads.values()), case.supervisor_id, open_now, exclude=case.exclude
        )
        if decision.specialist_id is None:
            break
        loads[decision.specialist_id] = loads[decision.specialist_id].plus_one(at)
        handed.append(
            (case.case_id, Decision(decision.specialist_id, "from the pool: " + decision.reason))
        )
    return handed


def format_case_token(specialty_code: str, number: int) -> str:
    """The human token a clinic reads out: ``ORTHO-0042``."""
    return f"{specialty_code.upper()}-{number:04d}"
