"""Time to first response per priority (DESIGN.md): when it is due and whether it is breached."""

from __future__ import annotations

from datetime import datetime

from hub.domain.policy import WorkflowPolicy
from shared.enums import Priority


def sla_start(priority: str, submitted_at: datetime, opens_at: datetime | None) -> datetime:
    """The SLA clock starts when the case is submitted, or, for a case that waits for the
    specialty to open, at opening time. Emergencies never wait for opening hours."""
    if Priority(priority) is Priority.EMERGENCY or opens_at is None:
        return submitted_at
    return max(submitted_at, opens_at)


def sla_due(
    policy: WorkflowPolicy, priority: str, submitted_at: datetime, opens_at: datetime | None = None
) -> datetime:
    return sla_start(priority, submitted_at, opens_at) + policy.sla(priority)


def is_breached(due_at: datetime | None, first_response_at: datetime | None, now: datetime) -> bool:
    """A case breaches once its due time passes without a first response."""
    return due_at is not None and first_response_at is None and now >= due_at
