"""Property tests: the 1:4 ratio survives any sequence of supervision changes (the case queue's
invariants run on the real services: tests/integration/hub/test_queue_invariants.py)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.supervision import SupervisionGroup
from shared.errors import Conflict, NotFound

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
