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
