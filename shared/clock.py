"""An injectable clock, so that SLA and queue logic is tested by moving time, not by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)


class TickingClock(FrozenClock):
    """A clock for tests that, like the real one, never gives the same time twice: each read is
    a microsecond after the last. Code that reads the clock twice and compares shows up here."""

    def now(self) -> datetime:
        self._now += timedelta(microseconds=1)
        return self._now


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 time with its zone, as the hub sends them; None for anything else (missing,
    malformed, or without a zone, which would be read as the reader's local time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
