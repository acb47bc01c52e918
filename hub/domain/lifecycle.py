"""The case lifecycle as one explicit state machine (DESIGN.md, "Case lifecycle").

Each action names the states it starts from, the states it may lead to and the parties who may
take it. ``authorize`` checks the party first (403) and then the state (409 naming the current
state), so a refused action never changes anything.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from enum import StrEnum

from shared.enums import ENDED_STATUSES, HANDLED_STATUSES, OPEN_STATUSES, Role
from shared.enums import CaseStatus as S
from shared.errors import Conflict, Forbidden


class Action(StrEnum):
    SUBMIT = "submit"
    ROUTE = "route"
    CLAIM = "claim"
    RELEASE = "release"
    REQUEST_INFO = "request_info"
    PROVIDE_INFO = "provide_info"
    ADVISE = "advise"
    REFER = "refer"
    CLOSE = "close"
    CANCEL = "cancel"
    REASSIGN = "reassign"
    REROUTE = "reroute"
    MESSAGE = "message"  # write in the case's thread: no change of state


class Party(StrEnum):
    """Who someone is to a case."""

    CLINIC = "clinic"  # a clinic doctor (or the spoke service) of the case's spoke
    ASSIGNEE = "assignee"  # the specialist the case is assigned to
    SPECIALTY = "specialty"  # a specialist of the case's specialty
    SUPERVISOR = "supervisor"  # head of a hub department
    HUB = "hub"  # the hub itself: routing, timers, presence


@dataclass(frozen=True)
class Rule:
    sources: frozenset[S]
    targets: frozenset[S]
    parties: frozenset[Party]
    # A specialist of the specialty may only take a case nobody else holds (claim from the pool).
    unheld_or_mine: bool = False


def _rule(
    sources: Set[S], targets: Set[S], parties: Set[Party], unheld_or_mine: bool = False
) -> Rule:
    return Rule(frozenset(sources), frozenset(targets), frozenset(parties), unheld_or_mine)


# Cases a specialist holds: given to them and waiting, or in their review.
HELD = frozenset({S.ASSIGNED, S.IN_REVIEW})
_AFTER_ADVICE = {S.ASSIGNED, S.IN_REVIEW, S.ADVISED}

RULES: dict[Action, Rule] = {
    Action.SUBMIT: _rule({S.DRAFT}, {S.SUBMITTED}, {Party.CLINIC}),
    Action.ROUTE: _rule({S.SUBMITTED}, {S.QUEUED, S.ASSIGNED}, {Party.HUB}),
    Action.CLAIM: _rule(
        {S.QUEUED, S.ASSIGNED}, {S.IN_REVIEW}, {Party.ASSIGNEE, Party.SPECIALTY}, True
    ),
    Action.RELEASE: _rule(HELD, {S.QUEUED, S.ASSIGNED}, {Party.ASSIGNEE}),
    Action.REQUEST_INFO: _rule(HELD, {S.NEEDS_INFO}, {Party.ASSIGNEE}),
    Action.PROVIDE_INFO: _rule({S.NEEDS_INFO}, {S.ASSIGNED, S.QUEUED}, {Party.CLINIC}),
    Action.ADVISE: _rule(_AFTER_ADVICE, {S.ADVISED}, {Party.ASSIGNEE}),
    Action.REFER: _rule(_AFTER_ADVICE, {S.REFERRED}, {Party.ASSIGNEE}),
    Action.CLOSE: _rule({S.ADVISED, S.REFERRED}, {S.CLOSED}, {Party.CLINIC, Party.ASSIGNEE}),
    Action.CANCEL: _rule(
        {S.DRAFT, S.SUBMITTED, S.QUEUED, S.ASSIGNED, S.NEEDS_INFO}, {S.CANCELLED}, {Party.CLINIC}
    ),
    Action.REASSIGN: _rule({S.QUEUED, S.ASSIGNED, S.IN_REVIEW}, {S.ASSIGNED}, {Party.SUPERVISOR}),
    Action.REROUTE: _rule({S.QUEUED, S.ASSIGNED}, {S.QUEUED, S.ASSIGNED}, {Party.HUB}),
    # The clinic and the specialist who holds the case talk; a colleague of the specialty reads
    # (to cover) but claims first to write; a supervisor reads only (DESIGN.md, "Roles").
    Action.MESSAGE: _rule(set(S), set(), {Party.CLINIC, Party.ASSIGNEE}),
}


def _transitions() -> dict[S, frozenset[S]]:
    table: dict[S, set[S]] = {status: set() for status in S}
    for rule in RULES.values():
        for source in rule.sources:
            table[source] |= rule.targets
    return {status: frozenset(targets) for status, targets in table.items()}


TRANSITIONS: dict[S, frozenset[S]] = _transitions()

# Named sets of states, for every caller outside this module (services, pages, templates):
# import these, never re-type a list of statuses.
# Cases waiting to be seen: they hold a place in a queue.
WAITING = frozenset({S.QUEUED, S.ASSIGNED})
# Cases a specialist still has to act on.
OPEN = OPEN_STATUSES
# Cases that count against a specialist's concurrent-case limit (their own open cases).
ACTIVE = frozenset({S.ASSIGNED, S.IN_REVIEW, S.NEEDS_INFO})
# Cases nobody has started on yet: these are routed again when their specialist leaves.
UNSTARTED = frozenset({S.ASSIGNED})
# Cases a specialist has dealt with (advice or referral given, or closed since).
HANDLED = HANDLED_STATUSES
# Cases nothing more can happen to: no transition leaves them.
ENDED = ENDED_STATUSES
# The states each action starts from, straight from the rules above.
CLAIMABLE = RULES[Action.CLAIM].sources
RELEASABLE = RULES[Action.RELEASE].sources
ADVISABLE = RULES[Action.ADVISE].sources
REFERABLE = RULES[Action.REFER].sources
REASSIGNABLE = RULES[Action.REASSIGN].sources
CANCELLABLE = RULES[Action.CANCEL].sources


def values(states: frozenset[S]) -> list[str]:
    """The states as stored (for a database query or a template), in a stable order."""
    return sorted(s.value for s in states)


@dataclass(frozen=True)
class Actor:
    """Whoever acts on a case, as the state machine sees them."""

    role: Role | None = None
    user_id: int | None = None
    spoke_id: int | None = None
    specialty_ids: frozenset[int] = frozenset()
    spoke_service: bool = False
    hub: bool = False


HUB = Actor(hub=True)


@dataclass(frozen=True)
class CaseFacts:
    status: S
    spoke_id: int
    specialty_id: int
    assigned_to_id: int | None


def parties(actor: Actor, case: CaseFacts) -> frozenset[Party]:
    found: set[Party] = set()
    if actor.hub:
        found.add(Party.HUB)
    if (actor.spoke_service or actor.role is Role.SPOKE_DOCTOR) and actor.spoke_id == case.spoke_id:
        found.add(Party.CLINIC)
    if actor.role is Role.SPECIALIST:
        if actor.user_id is not None and case.assigned_to_id == actor.user_id:
            found.add(Party.ASSIGNEE)
        if case.specialty_id in actor.specialty_ids:
            found.add(Party.SPECIALTY)
    if actor.role is Role.SUPERVISOR:
        found.add(Party.SUPERVISOR)
    return frozenset(found)


_WHO = {
    Party.CLINIC: "the clinic that raised the case",
    Party.ASSIGNEE: "the specialist the case is assigned to",
    Party.SPECIALTY: "a specialist of the case's specialty",
    Party.SUPERVISOR: "a supervisor",
    Party.HUB: "the hub",
}


def authorize(action: Action, actor: Actor, case: CaseFacts) -> Rule:
    """The rule for ``action`` if ``actor`` may take it on ``case`` now; else 403 or 409."""
    rule = RULES[action]
    mine = parties(actor, case) & rule.parties
    if not mine:
        who = " or ".join(_WHO[p] for p in sorted(rule.parties))
        raise Forbidden(f"Only {who} may {action.value.replace('_', ' ')} this case.")
    if case.status not in rule.sources:
        raise Conflict(
            f"A case that is {case.status.value} cannot be {_PAST[action]}.",
            fields={"status": case.status.value},
        )
    held_by_other = case.assigned_to_id is not None and case.assigned_to_id != actor.user_id
    if rule.unheld_or_mine and Party.ASSIGNEE not in mine and held_by_other:
        raise Conflict(
            "This case is already assigned to another specialist.",
            fields={"status": case.status.value},
        )
    return rule


def actions_of(party: Party, status: S) -> list[Action]:
    """The actions ``party`` may take on a case that is ``status`` (what a page may offer)."""
    return [a for a, rule in RULES.items() if party in rule.parties and status in rule.sources]


def check_target(action: Action, current: S, target: S) -> S:
    """``target`` if ``action`` may lead from ``current`` to it."""
    rule = RULES[action]
    if current not in rule.sources or target not in rule.targets:
        raise Conflict(
            f"A case that is {current.value} cannot become {target.value}.",
            fields={"status": current.value},
        )
    return target


_PAST = {
    Action.SUBMIT: "submitted",
    Action.ROUTE: "routed",
    Action.CLAIM: "claimed",
    Action.RELEASE: "released",
    Action.REQUEST_INFO: "sent back for more information",
    Action.PROVIDE_INFO: "answered",
    Action.ADVISE: "advised",
    Action.REFER: "referred",
    Action.CLOSE: "closed",
    Action.CANCEL: "cancelled",
    Action.REASSIGN: "reassigned",
    Action.REROUTE: "routed again",
    Action.MESSAGE: "written to",
}


def check_transition(current: str, target: str) -> S:
    """Return ``target`` as a status if the lifecycle allows ``current -> target``; else 409."""
    src, dst = S(current), S(target)
    if dst not in TRANSITIONS[src]:
        raise Conflict(
            f"A case that is {src.value} cannot become {dst.value}.",
            fields={"status": src.value},
        )
    return dst
