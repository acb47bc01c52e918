"""Queue order and positions, ETAs, SLA deadlines and operating hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain.availability import parse_hours
from hub.domain.policy import WorkflowPolicy
from hub.domain.queue import (
    Throughput,
    eta_changed,
    handling_time,
    order_key,
    positions,
)
from hub.domain.sla import is_breached, sla_due
from shared.errors import InvalidInput

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
IST = ZoneInfo("Asia/Kolkata")


def test_emergency_then_urgent_then_routine_fifo_inside() -> None:
    keys = [
        order_key("routine", T, 1),
        order_key("urgent", T + timedelta(minutes=5), 2),
        order_key("emergency", T + timedelta(minutes=9), 3),
        order_key("urgent", T + timedelta(minutes=1), 4),
    ]
    assert positions(keys) == {3: 1, 4: 2, 2: 3, 1: 4}
    same_instant = [order_key("urgent", T, 8), order_key("urgent", T, 7)]
    assert positions(same_instant) == {7: 1, 8: 2}  # raised together: the older id first


def test_eta_uses_the_measured_handling_time_and_the_specialists_on_duty() -> None:
    assert handling_time([600, 300, 900], default_s=100) == 600
    assert handling_time([], default_s=100) == 100
    rate = Throughput(handling_s=600, on_duty=3)
    assert rate.specialist_eta(T, 2) == T + timedelta(minutes=20)
    assert rate.pool_eta(T, position=1, waiting_with_specialists=5) == T + timedelta(minutes=20)
    assert Throughput(600, 0).pool_eta(T, 1, 0) == T + timedelta(minutes=10)
    assert not eta_changed(T, T + timedelta(seconds=30)) and eta_changed(
        T, T + timedelta(minutes=6)
    )


def test_sla_defaults_and_configuration() -> None:
    policy = WorkflowPolicy()
    assert sla_due(policy, "emergency", T) == T + timedelta(minutes=15)
    assert sla_due(policy, "urgent", T) == T + timedelta(minutes=60)
    assert sla_due(policy, "routine", T) == T + timedelta(hours=24)
    custom = WorkflowPolicy.from_settings({"sla_urgent_min": 30})
    assert sla_due(custom, "urgent", T) == T + timedelta(minutes=30)


def test_the_sla_clock_waits_for_opening_except_for_emergencies() -> None:
    policy, opens = WorkflowPolicy(), T + timedelta(hours=10)
    assert sla_due(policy, "urgent", T, opens) == opens + timedelta(hours=1)
    assert sla_due(policy, "emergency", T, opens) == T + timedelta(minutes=15)
    due = T + timedelta(minutes=15)
    assert not is_breached(due, None, due - timedelta(seconds=1))
    assert is_breached(due, None, due) and not is_breached(due, T, due + timedelta(hours=1))


def test_hours_are_read_like_a_notice_board() -> None:
    hours = parse_hours("mon-fri 09:00-12:00, sat 09:00-11:00")
    monday_10 = datetime(2026, 1, 5, 10, 0, tzinfo=IST)
    assert hours.is_open(monday_10, IST)
    assert hours.next_opening(datetime(2026, 1, 5, 12, 0, tzinfo=IST), IST) == datetime(
        2026, 1, 6, 9, 0, tzinfo=IST
    )
    saturday_noon = datetime(2026, 1, 10, 12, 0, tzinfo=IST)
    assert hours.next_opening(saturday_noon, IST) == datetime(2026, 1, 12, 9, 0, tzinfo=IST)
    assert parse_hours("24h").is_open(monday_10, IST)
    night = parse_hours("mon-sun 22:00-06:00")
    assert night.is_open(datetime(2026, 1, 6, 3, 0, tzinfo=IST), IST)
    assert not night.is_open(datetime(2026, 1, 6, 7, 0, tzinfo=IST), IST)


@pytest.mark.parametrize("bad", ["mon-fri 9-12", "funday 09:00-10:00", "mon 25:00-26:00"])
def test_unreadable_hours_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_hours(bad)
