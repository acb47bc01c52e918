"""The one backoff: doubling from the first wait, capped, back to the start after a success."""

from __future__ import annotations

import pytest

from shared.backoff import Backoff


def test_waits_double_up_to_the_maximum_and_reset() -> None:
    backoff = Backoff(1.0, 10.0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_a_maximum_below_the_first_wait_is_the_first_wait() -> None:
    assert Backoff(5.0, 1.0).next() == 5.0


def test_many_failures_stay_at_the_maximum() -> None:
    backoff = Backoff(0.002, 0.05)
    for _ in range(10_000):
        backoff.next()
    assert backoff.peek() == 0.05


@pytest.mark.parametrize(("initial", "factor"), [(0.0, 2.0), (1.0, 0.5)])
def test_a_backoff_that_would_not_grow_is_refused(initial: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, 10.0, factor)
