"""Honest ETAs (DESIGN.md, "Clinical safety rules"): the one rule for what anyone is told about
when a waiting case will be seen. The hub applies it when it estimates (``hub.domain.queue``);
a clinic applies it again when it shows an ETA it was sent earlier, so time that has passed
since never makes it show a time in the past."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Eta:
    """An expected time ``at`` (never before now), or, when nobody of the specialty is on duty,
    no time but ``not_before`` the next opening (None when even that is unknown)."""

    at: datetime | None = None
    not_before: datetime | None = None


def honest_eta(
    now: datetime, estimate: datetime | None, on_duty: int, next_opening: datetime | None
) -> Eta:
    """No estimate while nobody of the specialty is on duty, then "not before" the next opening;
    an estimate that has passed is "now", never a time in the past."""
    if on_duty <= 0:
        return Eta(None, next_opening if next_opening is not None and next_opening > now else None)
    if estimate is None:
        return Eta()
    return Eta(max(estimate, now), None)


def as_received(now: datetime, eta: datetime | None, not_before: datetime | None) -> Eta:
    """The same rule for a receiver of the hub's answer (``eta`` null means nobody on duty)."""
    return honest_eta(now, eta, 1 if eta is not None else 0, not_before)
