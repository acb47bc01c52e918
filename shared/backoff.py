"""Exponential backoff, the one used wherever something is retried (spoke workers, the spoke's
Socket.IO connection, the bridge's forwarder, SQLite's lock wait): the first wait, doubling each
time, never more than the maximum; back to the first after a success."""

from __future__ import annotations


class Backoff:
    """Waits of ``initial``, ``initial * factor``, ... capped at ``maximum`` seconds."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if initial <= 0 or factor < 1:
            raise ValueError("a backoff starts above 0 and does not shrink")
        self.initial = float(initial)
        self.maximum = max(float(maximum), self.initial)
        self.factor = float(factor)
        self.failures = 0

    def peek(self) -> float:
        """The wait after the failures so far (``initial`` when there were none)."""
        steps = max(0, self.failures - 1)
        wait = self.initial
        for _ in range(steps):
            wait *= self.factor
            if wait >= self.maximum:
                return self.maximum
        return wait

    def next(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        self.failures += 1
        return self.peek()

    def reset(self) -> None:
        """It worked: the next failure waits ``initial`` again."""
        self.failures = 0
