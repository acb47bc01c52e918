"""Every action of the case state machine, from every state, by every kind of caller."""

from __future__ import annotations

import pytest

from hub.domain.lifecycle import (
    HUB,
    RULES,
    TRANSITIONS,
    Action,
    Actor,
    CaseFacts,
    Party,
    authorize,
    check_target,
)
from shared.enums import CaseStatus as S
from shared.enums import Role
from shared.errors import Conflict, Forbidden

SPOKE, SPECIALTY, ME, OTHER = 1, 10, 100, 200
CLINIC = Actor(role=Role.SPOKE_DOCTOR, user_id=7, spoke_id=SPOKE)
SPOKE_SERVICE = Actor(spoke_id=SPOKE, spoke_service=True)
OTHER_CLINIC = Actor(role=Role.SPOKE_DOCTOR, user_id=8, spoke_id=2)
SPECIALIST = Actor(role=Role.SPECIALIST, user_id=ME, specialty_ids=frozenset({SPECIALTY}))
STRANGER = Actor(role=Role.SPECIALIST, user_id=300, specialty_ids=frozenset({99}))
SUPERVISOR = Actor(role=Role.SUPERVISOR, user_id=400)
ADMIN = Actor(role=Role.ADMIN, user_id=500)


def facts(status: S, assigned_to: int | None = ME) -> CaseFacts:
    return CaseFacts(status, SPOKE, SPECIALTY, assigned_to)


def who_may(action: Action) -> list[Actor]:
    parties = RULES[action].parties
    return [
        actor
        for party, actor in (
            (Party.CLINIC, CLINIC),
            (Party.ASSIGNEE, SPECIALIST),
            (Party.SPECIALTY, SPECIALIST),
            (Party.SUPERVISOR, SUPERVISOR),
            (Party.HUB, HUB),
        )
        if party in parties
    ]


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(S))
def test_each_action_is_allowed_exactly_from_its_source_states(action: Action, status: S) -> None:
    rule = RULES[action]
    actor = who_may(action)[0]
    case = facts(status)
    if status in rule.sources:
        assert authorize(action, actor, case) is rule
        for target in rule.targets:
            assert check_target(action, status, target) is target
    else:
        with pytest.raises(Conflict) as exc:
            authorize(action, actor, case)
        assert exc.value.fields == {"status": status.value}


@pytest.mark.parametrize("action", list(Action))
def test_callers_outside_the_rule_are_forbidden_before_the_state_is_looked_at(
    action: Action,
) -> None:
    allowed = set(who_may(action))
    for actor in (
        CLINIC,
        SPOKE_SERVICE,
        OTHER_CLINIC,
        SPECIALIST,
        STRANGER,
        SUPERVISOR,
        ADMIN,
        HUB,
    ):
        if actor in allowed or (actor is SPOKE_SERVICE and CLINIC in allowed):
            continue
        with pytest.raises(Forbidden):
            authorize(action, actor, facts(S.CLOSED))


def test_a_specialist_claims_from_the_pool_but_not_a_colleagues_case() -> None:
    authorize(Action.CLAIM, SPECIALIST, facts(S.QUEUED, assigned_to=None))
    authorize(Action.CLAIM, SPECIALIST, facts(S.ASSIGNED, assigned_to=ME))
    with pytest.raises(Conflict, match="another specialist"):
        authorize(Action.CLAIM, SPECIALIST, facts(S.ASSIGNED, assigned_to=OTHER))
    with pytest.raises(Conflict) as exc:
        authorize(Action.CLAIM, SPECIALIST, facts(S.IN_REVIEW, assigned_to=OTHER))
    assert exc.value.fields == {"status": "in_review"}


def test_only_the_assignee_advises_refers_releases_and_asks() -> None:
    for action in (Action.ADVISE, Action.REFER, Action.RELEASE, Action.REQUEST_INFO):
        with pytest.raises(Forbidden):
            authorize(action, SPECIALIST, facts(S.IN_REVIEW, assigned_to=OTHER))


def test_the_spoke_service_acts_for_its_clinic_only() -> None:
    authorize(Action.CANCEL, SPOKE_SERVICE, facts(S.QUEUED, None))
    authorize(Action.PROVIDE_INFO, SPOKE_SERVICE, facts(S.NEEDS_INFO))
    with pytest.raises(Forbidden):
        authorize(Action.CANCEL, Actor(spoke_id=2, spoke_service=True), facts(S.QUEUED, None))


def test_the_needs_info_round_trip_returns_to_assigned() -> None:
    assert check_target(Action.REQUEST_INFO, S.IN_REVIEW, S.NEEDS_INFO) is S.NEEDS_INFO
    assert check_target(Action.PROVIDE_INFO, S.NEEDS_INFO, S.ASSIGNED) is S.ASSIGNED
    with pytest.raises(Conflict):
        check_target(Action.PROVIDE_INFO, S.NEEDS_INFO, S.ADVISED)


def test_transitions_are_the_union_of_the_rules_and_terminal_states_are_final() -> None:
    assert TRANSITIONS[S.CLOSED] == TRANSITIONS[S.CANCELLED] == frozenset()
    assert S.ADVISED in TRANSITIONS[S.ADVISED]  # a correction is a new advice version
    assert TRANSITIONS[S.DRAFT] == {S.SUBMITTED, S.CANCELLED}
    assert S.CANCELLED not in TRANSITIONS[S.IN_REVIEW]


def test_the_named_sets_outside_the_hub_agree_with_the_rules_table() -> None:
    """The spoke reads statuses through shared's sets; they must say what the rules say."""
    from hub.domain import lifecycle

    assert {s for s in S if not TRANSITIONS.get(s)} == lifecycle.ENDED
    assert lifecycle.OPEN | lifecycle.HANDLED | lifecycle.ENDED | {S.DRAFT} == set(S)
    assert not lifecycle.OPEN & (lifecycle.HANDLED | lifecycle.ENDED)
    assert RULES[Action.ADVISE].targets | RULES[Action.REFER].targets <= lifecycle.HANDLED
