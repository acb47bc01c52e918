"""Property tests: the 1:4 ratio survives any sequence of supervision changes, and every
submitted case is with exactly one specialist or waits in exactly one queue."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.dispatch import Floor, FloorCase, FloorSpecialist
from hub.domain.lifecycle import ACTIVE
from hub.domain.supervision import SupervisionGroup
from shared.enums import CaseStatus as S
from shared.errors import Conflict, NotFound

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)

supervision_ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["add_doctor", "remove_doctor", "add_specialist", "remove_specialist", "reassign"]
        ),
        st.integers(0, 30),
        st.integers(0, 8),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ratio=st.integers(1, 5), ops=supervision_ops)
def test_no_sequence_of_changes_breaks_the_ratio(
    ratio: int, ops: list[tuple[str, int, int]]
) -> None:
    group = SupervisionGroup.build(ratio, [100, 101], {}, [])
    doctors: set[int] = set()
    for op, doctor, specialist in ops:
        sid = 100 + specialist
        if op == "add_doctor":
            group.add_doctor(doctor)
            doctors.add(doctor)
        elif op == "remove_doctor":
            group.remove_doctor(doctor)
            doctors.discard(doctor)
        elif op == "add_specialist":
            group.add_specialist(sid)
        elif op == "remove_specialist":  # removed or deactivated: the same for the group
            group.remove_specialist(sid)
        else:
            with contextlib.suppress(Conflict, NotFound):  # refused moves change nothing
                group.reassign(doctor, sid)
        group.check()
        placed = set(group.links()) | set(group.unsupervised)
        assert placed == doctors
        expected_missing = -(-len(group.unsupervised) // ratio)
        assert group.shortfall == expected_missing


def test_new_doctors_go_to_the_specialist_with_fewest_and_overflow_is_reported() -> None:
    group = SupervisionGroup.build(4, [1, 2], {}, [])
    for doctor in range(10, 20):
        group.add_doctor(doctor)
    assert sorted(len(d) for d in group.supervisees.values()) == [4, 4]
    assert group.unsupervised == [18, 19] and group.shortfall == 1
    moved = group.remove_specialist(1)
    assert len(moved) == 4 and group.shortfall == 2  # 6 waiting, 2 specialists missing
    group.add_specialist(3)
    assert len(group.supervisees[3]) == 4 and len(group.unsupervised) == 2
    try:
        group.reassign(group.unsupervised[0], 3)
    except Conflict as exc:
        assert exc.fields == {"supervisees": 4}
    else:
        raise AssertionError("a full specialist took one more")


floor_ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["submit", "submit", "submit", "claim", "finish", "release", "off", "on", "reassign"]
        ),
        st.integers(0, 200),
        st.sampled_from(["emergency", "urgent", "routine"]),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops=floor_ops, limit=st.integers(1, 4))
def test_every_case_is_with_one_specialist_or_in_one_queue(
    ops: list[tuple[str, int, str]], limit: int
) -> None:
    floor = Floor()
    for sid in (1, 2, 3):
        floor.specialists[sid] = FloorSpecialist(sid, frozenset({"ortho"}), max_active=limit)
    floor.supervisors = {("ortho", d): 1 + d % 3 for d in range(8)}
    now = T0
    for n, (op, pick, priority) in enumerate(ops):
        now += timedelta(minutes=1)
        ids = sorted(floor.cases)
        case = floor.cases[ids[pick % len(ids)]] if ids else None
        sid = 1 + pick % 3
        if op == "submit":
            floor.submit(FloorCase(n, "ortho", priority, now, raised_by=pick % 10), now)
        elif op == "claim" and case and case.status in (S.QUEUED, S.ASSIGNED):
            floor.claim(case.case_id, case.assigned_to or sid)
        elif op == "finish" and case and case.status in (S.ASSIGNED, S.IN_REVIEW):
            floor.finish(case.case_id, now)
        elif op == "release" and case and case.status in (S.ASSIGNED, S.IN_REVIEW):
            floor.release(case.case_id, now)
        elif op in ("off", "on"):
            floor.set_on_duty(sid, op == "on", now)
        elif op == "reassign" and case and case.status in (S.QUEUED, S.ASSIGNED, S.IN_REVIEW):
            floor.reassign(case.case_id, sid, now)
        floor.check()
        for spec in floor.specialists.values():
            # routing never takes a specialist over their limit (only a supervisor by hand may)
            if op != "reassign":
                held = [
                    c
                    for c in floor.cases.values()
                    if c.assigned_to == spec.specialist_id and c.status in ACTIVE
                ]
                assert len(held) <= max(limit, spec.active)


def test_an_off_duty_specialists_waiting_cases_move_and_pool_cases_are_served_in_order() -> None:
    floor = Floor()
    floor.specialists = {
        1: FloorSpecialist(1, frozenset({"ortho"}), 2),
        2: FloorSpecialist(2, frozenset({"ortho"}), 2),
    }
    floor.supervisors = {("ortho", 50): 1}
    now = T0
    for n, priority in enumerate(
        ["routine", "routine", "routine", "routine", "routine", "emergency"]
    ):
        floor.submit(FloorCase(n, "ortho", priority, now + timedelta(minutes=n), raised_by=50), now)
    assert [floor.cases[n].assigned_to for n in range(4)] == [1, 1, 2, 2]
    assert floor.position(5) == 1 and floor.position(4) == 2  # emergency first in the pool
    moved = floor.set_on_duty(1, False, now)
    assert moved == [0, 1] and floor.cases[0].status is S.QUEUED
    floor.finish(2, now)
    assert floor.cases[5].assigned_to == 2  # the emergency is served first
    floor.check()
