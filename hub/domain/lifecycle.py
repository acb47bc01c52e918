"""The case lifecycle as one explicit state machine (DESIGN.md, "Case lifecycle")."""

from __future__ import annotations

from shared.enums import CaseStatus as S
from shared.errors import Conflict

TRANSITIONS: dict[S, frozenset[S]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.QUEUED, S.ASSIGNED, S.CANCELLED}),
    S.QUEUED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.IN_REVIEW, S.QUEUED, S.NEEDS_INFO, S.ADVISED, S.REFERRED, S.CANCELLED}),
    S.IN_REVIEW: frozenset({S.ASSIGNED, S.QUEUED, S.NEEDS_INFO, S.ADVISED, S.REFERRED}),
    S.NEEDS_INFO: frozenset({S.ASSIGNED, S.QUEUED, S.CANCELLED}),
    S.ADVISED: frozenset({S.ADVISED, S.REFERRED, S.CLOSED}),
    S.REFERRED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Cases waiting to be seen: they hold a place in a queue.
WAITING = frozenset({S.QUEUED, S.ASSIGNED})
# Cases a specialist still has to act on.
OPEN = frozenset({S.SUBMITTED, S.QUEUED, S.ASSIGNED, S.IN_REVIEW, S.NEEDS_INFO})


def check_transition(current: str, target: str) -> S:
    """Return ``target`` as a status if the lifecycle allows ``current -> target``; else 409."""
    src, dst = S(current), S(target)
    if dst not in TRANSITIONS[src]:
        raise Conflict(
            f"A case that is {src.value} cannot become {dst.value}.",
            fields={"status": src.value},
        )
    return dst
