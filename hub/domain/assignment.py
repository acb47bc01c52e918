"""Who gets a new case (the walking-skeleton rule; full routing and the ratio come later):
the raising doctor's supervisor when on duty with room, else the least loaded on-duty
specialist of the specialty with room, ties broken by longest idle; else the case waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SpecialistLoad:
    specialist_id: int
    on_duty: bool
    active_cases: int
    max_active_cases: int
    last_assigned_at: datetime | None = None

    @property
    def has_room(self) -> bool:
        return self.on_duty and self.active_cases < self.max_active_cases


@dataclass(frozen=True)
class Decision:
    specialist_id: int | None
    reason: str


def choose_specialist(
    candidates: list[SpecialistLoad], supervisor_id: int | None = None
) -> Decision:
    """Pick the specialist for a new case, with the reason a supervisor will be shown."""
    by_id = {c.specialist_id: c for c in candidates}
    supervisor = by_id.get(supervisor_id) if supervisor_id is not None else None
    if supervisor is not None and supervisor.has_room:
        return Decision(supervisor.specialist_id, "raising doctor's supervisor is on duty")
    ready = [c for c in candidates if c.has_room]
    if not ready:
        return Decision(None, "no on-duty specialist of the specialty has room: queued")
    never = datetime.min
    best = min(
        ready,
        key=lambda c: (
            c.active_cases,
            (c.last_assigned_at or never).replace(tzinfo=None),
            c.specialist_id,
        ),
    )
    return Decision(best.specialist_id, f"least loaded on-duty specialist ({best.active_cases} open)")


def format_case_token(specialty_code: str, number: int) -> str:
    """The human token a clinic reads out: ``ORTHO-0042``."""
    return f"{specialty_code.upper()}-{number:04d}"
