"""Enumerations of the clinical domain, shared by hub, spoke and bridge."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SPOKE_DOCTOR = "spoke_doctor"
    SPECIALIST = "specialist"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class CaseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"
    ADVISED = "advised"
    REFERRED = "referred"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# How a case's status reads from outside the hub (spoke pages, worklist, clients). The hub's
# lifecycle (hub/domain/lifecycle.py) names these same sets from here, and a test holds them to
# its rules table, so the spoke never re-types a list of statuses.
# With the hub, waiting for a specialist or for the clinic's answer.
OPEN_STATUSES = frozenset(
    {
        CaseStatus.SUBMITTED,
        CaseStatus.QUEUED,
        CaseStatus.ASSIGNED,
        CaseStatus.IN_REVIEW,
        CaseStatus.NEEDS_INFO,
    }
)
# The specialist has dealt with it (advice or referral given, or closed since).
HANDLED_STATUSES = frozenset({CaseStatus.ADVISED, CaseStatus.REFERRED, CaseStatus.CLOSED})
# Nothing more can happen to it.
ENDED_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED})


class Priority(StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """0 is seen first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Disposition(StrEnum):
    MANAGE_LOCALLY = "manage_locally"
    REFER = "refer"
    URGENT_TRANSFER = "urgent_transfer"


# The specialties a new hub starts with: (code, name).
DEFAULT_SPECIALTIES: tuple[tuple[str, str], ...] = (
    ("ortho", "Orthopaedics"),
    ("radio", "Radiology"),
    ("med", "General medicine"),
    ("ent", "Ear, nose and throat"),
    ("eye", "Ophthalmology"),
)
