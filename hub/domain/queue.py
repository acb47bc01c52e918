"""The queue: emergency before urgent before routine, first come first served inside one
priority; live positions and the expected time a case will be seen (what a clinic is told of
that time follows the one rule of ``shared.eta.honest_eta``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.enums import Priority

OrderKey = tuple[int, datetime, int]

# The one queue order of the hub, by these fields of a case: priority (emergency first), then
# the time it was raised, then its id (so two cases raised at one instant still differ).
ORDER_FIELDS = ("priority", "submitted_at", "id")
PRIORITY_RANKS: dict[str, int] = {p.value: p.rank for p in Priority}


def order_key(priority: str, submitted_at: datetime | None, case_id: int) -> OrderKey:
    """Sorts a case among the cases waiting with it: the hub's only ordering rule. Only a
    submitted case waits in a queue."""
    if submitted_at is None:
        raise ValueError(f"case {case_id} was never submitted: it has no place in a queue")
    return (PRIORITY_RANKS[Priority(priority).value], submitted_at, case_id)


def positions(keys: Iterable[OrderKey]) -> dict[int, int]:
    """Case id -> 1-based position, for the cases of one queue."""
    return {key[2]: n for n, key in enumerate(sorted(keys), start=1)}


@dataclass(frozen=True)
class Throughput:
    """How fast a specialty sees cases now: the measured handling time and who is on duty."""

    handling_s: float
    on_duty: int

    def pool_eta(self, start: datetime, position: int, waiting_with_specialists: int) -> datetime:
        """A pool case is seen after the cases ahead of it in the pool and those already in
        the on-duty specialists' own queues, shared among the specialists on duty."""
        servers = max(self.on_duty, 1)
        rounds = math.ceil((position + waiting_with_specialists) / servers)
        return start + timedelta(seconds=rounds * self.handling_s)

    def specialist_eta(self, start: datetime, position: int) -> datetime:
        return start + timedelta(seconds=position * self.handling_s)


def handling_time(durations_s: Sequence[float], default_s: float) -> float:
    """The measured handling time: the median of recent cases, robust to one forgotten case."""
    done = sorted(d for d in durations_s if d >= 0)
    if not done:
        return float(default_s)
    mid = len(done) // 2
    return done[mid] if len(done) % 2 else (done[mid - 1] + done[mid]) / 2


def eta_changed(old: datetime | None, new: datetime | None, tolerance_s: float = 300) -> bool:
    """Whether an ETA moved enough to tell the clinic again (a place in the queue is always
    told; an estimate that drifts by minutes is not worth a message each time)."""
    if old is None or new is None:
        return old is not new
    return abs((new - old).total_seconds()) >= tolerance_s
