"""Weekly hours: when a specialty is open at the hub and when a specialist is on duty.

A schedule is written the way a notice board says it: ``"24h"``, or windows separated by
commas or semicolons, e.g. ``"mon-fri 09:00-12:00, sat 09:00-11:00"`` (a window whose end is
not after its start runs past midnight). Times are local to the hub's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$"
)


@dataclass(frozen=True)
class Window:
    weekday: int  # 0 = Monday
    start_min: int  # minutes after local midnight
    end_min: int  # may exceed 1440 when the window runs past midnight


@dataclass(frozen=True)
class WeeklyHours:
    windows: tuple[Window, ...] = ()
    always: bool = False
    text: str = "24h"

    def is_open(self, at: datetime, tz: ZoneInfo) -> bool:
        return self.next_opening(at, tz) == at

    def next_opening(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        """``at`` if open then, else the next time it opens (None if it never does)."""
        if self.always:
            return at
        local = at.astimezone(tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        best: datetime | None = None
        for day_offset in range(-1, 8):
            day = midnight + timedelta(days=day_offset)
            for w in self.windows:
                if w.weekday != day.weekday():
                    continue
                start = _local(day, w.start_min, tz)
                end = _local(day, w.end_min, tz)
                if start <= local < end:
                    return at
                if start > local and (best is None or start < best):
                    best = start
        return best.astimezone(at.tzinfo) if best is not None else None


def _local(day: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    naive = day.replace(tzinfo=None) + timedelta(minutes=minutes)
    return naive.replace(tzinfo=tz)


ALWAYS = WeeklyHours(always=True)


def parse_hours(spec: str) -> WeeklyHours:
    """Read a schedule; a malformed one is invalid input naming what is wrong."""
    text = " ".join(spec.strip().lower().split())
    if text in ("", "24h", "24/7", "always"):
        return ALWAYS
    windows: list[Window] = []
    for part in re.split(r"[,;]", text):
        part = part.strip()
        match = _WINDOW.match(part)
        if not match:
            raise InvalidInput(
                f"Cannot read the hours {part!r}: write e.g. 'mon-fri 09:00-12:00' or '24h'.",
                fields={"hours": [spec]},
            )
        start, end = _minutes(match["start"], spec), _minutes(match["end"], spec)
        if end <= start:
            end += 24 * 60
        windows += [Window(day, start, end) for day in _days(match["days"], spec)]
    return WeeklyHours(tuple(windows), False, text)


def _minutes(hhmm: str, spec: str) -> int:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise InvalidInput(f"{hhmm} is not a time of day.", fields={"hours": [spec]})
    return hours * 60 + minutes


def _days(text: str, spec: str) -> list[int]:
    first, _, last = text.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise InvalidInput(f"Unknown day in {text!r}: use mon..sun.", fields={"hours": [spec]})
    a, b = DAYS.index(first), DAYS.index(last or first)
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


def describe_opening(at: datetime, tz: ZoneInfo) -> str:
    """How a clinic is told when the hub opens: ``Mon 09:00``."""
    local = at.astimezone(tz)
    return f"{DAYS[local.weekday()].title()} {local:%H:%M}"
