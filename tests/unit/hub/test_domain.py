from datetime import UTC, datetime

import pytest

from hub.domain.assignment import SpecialistLoad, choose_specialist, format_case_token
from hub.domain.lifecycle import TRANSITIONS, check_transition
from shared.enums import CaseStatus
from shared.errors import Conflict


def test_the_supervisor_gets_the_case_when_on_duty_with_room() -> None:
    loads = [SpecialistLoad(1, True, 0, 5), SpecialistLoad(2, True, 3, 5)]
    assert choose_specialist(loads, supervisor_id=2).specialist_id == 2


def test_otherwise_the_least_loaded_then_the_longest_idle() -> None:
    early, late = datetime(2026, 1, 5, 8, tzinfo=UTC), datetime(2026, 1, 5, 9, tzinfo=UTC)
    loads = [
        SpecialistLoad(1, True, 2, 5, early),
        SpecialistLoad(2, True, 1, 5, late),
        SpecialistLoad(3, True, 1, 5, early),
        SpecialistLoad(4, False, 0, 5),
    ]
    decision = choose_specialist(loads, supervisor_id=4)
    assert decision.specialist_id == 3 and "least loaded" in decision.reason


def test_nobody_with_room_means_the_case_waits() -> None:
    loads = [SpecialistLoad(1, True, 5, 5), SpecialistLoad(2, False, 0, 5)]
    decision = choose_specialist(loads)
    assert decision.specialist_id is None and "queued" in decision.reason


def test_tokens_read_well() -> None:
    assert format_case_token("ortho", 42) == "ORTHO-0042"


def test_every_state_is_in_the_machine_and_terminal_states_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(CaseStatus)
    assert TRANSITIONS[CaseStatus.CLOSED] == TRANSITIONS[CaseStatus.CANCELLED] == frozenset()


def test_an_illegal_transition_is_a_conflict_naming_the_current_state() -> None:
    assert check_transition("assigned", "advised") is CaseStatus.ADVISED
    with pytest.raises(Conflict) as exc:
        check_transition("closed", "assigned")
    assert exc.value.fields == {"status": "closed"}
