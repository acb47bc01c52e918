"""Socket.IO event names and the shape of an event: the public real-time contract."""

from __future__ import annotations

from typing import Any, Final

CASE_UPDATED: Final = "case.updated"
CASE_ASSIGNED: Final = "case.assigned"
IMAGE_RECEIVED: Final = "image.received"
MESSAGE_POSTED: Final = "message.posted"
ADVICE_ISSUED: Final = "advice.issued"
QUEUE_POSITION: Final = "queue.position"
SLA_BREACHED: Final = "sla.breached"
# Hub-side events for supervisors' and admins' pages (dashboard room).
SUPERVISION_CHANGED: Final = "supervision.changed"
SPECIALIST_UPDATED: Final = "specialist.updated"

ALL_EVENTS: Final = (
    CASE_UPDATED,
    CASE_ASSIGNED,
    IMAGE_RECEIVED,
    MESSAGE_POSTED,
    ADVICE_ISSUED,
    QUEUE_POSITION,
    SLA_BREACHED,
    SUPERVISION_CHANGED,
    SPECIALIST_UPDATED,
)

# Emitted by a client after (re)connecting: {"after_seq": <last seq it handled>}.
RESUME: Final = "resume"
# Emitted by a spoke once it has stored an advice: {"advice_id": <id>}; the hub records delivery.
ADVICE_ACK: Final = "advice.ack"


def room_for_user(user_id: int) -> str:
    return f"user:{user_id}"


def room_for_spoke(spoke_id: int) -> str:
    return f"spoke:{spoke_id}"


def room_for_specialty(code: str) -> str:
    return f"specialty:{code}"


DASHBOARD_ROOM: Final = "dashboard"


def event_payload(
    seq: int, event_type: str, case_id: int | None, data: dict[str, Any], at: str | None = None
) -> dict[str, Any]:
    """The JSON object every event carries: ``seq``, ``type``, ``case_id``, ``at`` (when the hub
    recorded it, ISO 8601 UTC) and its own fields."""
    return {**data, "seq": seq, "type": event_type, "case_id": case_id, "at": at}


# REST header: the clinic doctor a spoke's service acts for. The hub believes it only with that
# spoke's service token and only for an active clinic doctor of that spoke, and audits the call
# as the doctor's (DESIGN.md, "Security rules").
ACTING_DOCTOR_HEADER = "X-Acting-Doctor"
