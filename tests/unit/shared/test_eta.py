"""The one ETA rule (shared/eta.py): never in the past, none while nobody is on duty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.eta import Eta, as_received, honest_eta

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_an_estimate_that_has_passed_is_now_never_the_past() -> None:
    assert honest_eta(NOW, NOW - timedelta(minutes=5), 1, None) == Eta(NOW, None)
    assert honest_eta(NOW, NOW + timedelta(minutes=5), 2, None).at == NOW + timedelta(minutes=5)


def test_nobody_on_duty_gives_no_time_but_the_next_opening() -> None:
    opening = NOW + timedelta(hours=21)
    assert honest_eta(NOW, NOW + timedelta(minutes=5), 0, opening) == Eta(None, opening)
    assert honest_eta(NOW, None, 0, NOW - timedelta(hours=1)) == Eta(None, None)


def test_a_clinic_applies_the_rule_again_to_what_it_was_sent() -> None:
    assert as_received(NOW, NOW - timedelta(minutes=1), None) == Eta(NOW, None)
    later = NOW + timedelta(hours=3)
    assert as_received(NOW, None, later) == Eta(None, later)
