"""Who receives each event (DESIGN.md, "Socket.IO"): the one place that decides the rooms.

Every emitter of the hub (workflow, SLA job, images, staff, supervision) describes who is
concerned and asks ``rooms_for``; none picks rooms itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared import protocol
from shared.protocol import room_for_specialty, room_for_spoke, room_for_user


@dataclass(frozen=True)
class CaseParties:
    """Who a case concerns, as plain ids."""

    spoke_id: int
    specialty_code: str
    assigned_to_id: int | None = None
    raised_by_id: int | None = None
    # The specialist the case just left (reassigned, rerouted, released): told it is gone.
    previous_assignee_id: int | None = None
    # Told of a breach besides the case's own people: the raising doctor's supervising
    # specialist and the specialty's on-call specialists (supervisors are on the dashboard).
    escalate_to: frozenset[int] = frozenset()


# Case events the specialty's room does not get (only the case's own people and the clinic).
_NOT_TO_SPECIALTY = frozenset({protocol.IMAGE_RECEIVED})
# Events about hub staff, not about a case: the dashboard and the people named.
STAFF_EVENTS = frozenset({protocol.SUPERVISION_CHANGED, protocol.SPECIALIST_UPDATED})


def rooms_for(
    event_type: str, case: CaseParties | None = None, users: Iterable[int | None] = ()
) -> frozenset[str]:
    """The rooms an event goes to: for a case event, the clinic (spoke), the specialty (who may
    claim or cover), the dashboard, the assignee, the raising doctor, the one who just lost the
    case and, for a breach, those it escalates to; for a staff event, the dashboard and the
    users concerned."""
    rooms = {protocol.DASHBOARD_ROOM}
    rooms |= {room_for_user(u) for u in users if u}
    if case is None:
        return frozenset(rooms)
    rooms.add(room_for_spoke(case.spoke_id))
    if event_type not in _NOT_TO_SPECIALTY:
        rooms.add(room_for_specialty(case.specialty_code))
    people = [case.assigned_to_id, case.previous_assignee_id]
    if event_type not in _NOT_TO_SPECIALTY:
        people.append(case.raised_by_id)
    if event_type == protocol.SLA_BREACHED:
        people += sorted(case.escalate_to)
    rooms |= {room_for_user(u) for u in people if u}
    return frozenset(rooms)
