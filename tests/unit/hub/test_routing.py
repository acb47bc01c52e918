"""The routing rules: supervisor first, then least loaded on duty, ties by longest idle, the
pool when nobody has room, hours and the on-call list, and refilling from the pool."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.domain.assignment import (
    SpecialistLoad,
    WaitingCase,
    choose_on_call,
    choose_specialist,
    fill_from_pool,
    route,
)

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
T1 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_the_supervisor_on_duty_with_room_gets_the_case_even_if_busier() -> None:
    loads = [SpecialistLoad(1, True, 0, 5), SpecialistLoad(2, True, 4, 5)]
    decision = choose_specialist(loads, supervisor_id=2)
    assert decision.specialist_id == 2 and "supervisor" in decision.reason


def test_a_supervisor_off_duty_or_at_the_limit_is_passed_over_with_the_reason() -> None:
    off = choose_specialist(
        [SpecialistLoad(1, True, 3, 5), SpecialistLoad(2, False, 0, 5)], supervisor_id=2
    )
    full = choose_specialist(
        [SpecialistLoad(1, True, 3, 5), SpecialistLoad(2, True, 5, 5)], supervisor_id=2
    )
    assert off.specialist_id == full.specialist_id == 1
    assert off.reason.startswith("supervisor off duty") and full.reason.startswith(
        "supervisor at case limit"
    )


def test_least_loaded_first_then_longest_idle_then_lowest_id() -> None:
    loads = [
        SpecialistLoad(1, True, 1, 5, T1),
        SpecialistLoad(2, True, 1, 5, T0),
        SpecialistLoad(3, True, 2, 5),
    ]
    assert choose_specialist(loads).specialist_id == 2
    never = [SpecialistLoad(4, True, 1, 5, None), SpecialistLoad(5, True, 1, 5, T0)]
    assert choose_specialist(never).specialist_id == 4  # never assigned = idle longest


def test_nobody_with_room_means_the_pool_and_exclusions_hold() -> None:
    assert choose_specialist([SpecialistLoad(1, True, 5, 5)]).specialist_id is None
    assert choose_specialist([SpecialistLoad(1, True, 0, 5)], exclude=[1]).specialist_id is None


def test_outside_hours_only_emergencies_are_routed_to_the_on_call_list() -> None:
    loads = [SpecialistLoad(1, False, 0, 5), SpecialistLoad(2, False, 1, 5, on_call=True)]
    routine = route("routine", loads, None, open_now=False, opens_at_text="Tue 09:00")
    emergency = route("emergency", loads, None, open_now=False)
    assert routine.specialist_id is None and "Tue 09:00" in routine.reason
    assert emergency.specialist_id == 2 and "on-call" in emergency.reason
    assert choose_on_call([SpecialistLoad(1, False, 0, 5)]).specialist_id is None


def test_the_pool_is_handed_out_in_queue_order_until_nobody_has_room() -> None:
    loads = [SpecialistLoad(1, True, 4, 5), SpecialistLoad(2, True, 3, 5)]
    waiting = [
        WaitingCase(10, "emergency", None),
        WaitingCase(11, "urgent", None),
        WaitingCase(12, "routine", None),
        WaitingCase(13, "routine", None),
    ]
    handed = fill_from_pool(waiting, loads, T1)
    assert [(cid, d.specialist_id) for cid, d in handed] == [(10, 2), (11, 1), (12, 2)]
