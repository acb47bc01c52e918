"""The audit log: every read of a case, image or advice, and every change, by whom and from
where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.persistence.models import AuditEntry
from hub.services.auth import Principal
from shared.clock import Clock


def audit(
    session: Session,
    clock: Clock,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: object,
    remote_addr: str = "",
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            at=clock.now(),
            user_id=principal.user_id,
            spoke_id=principal.spoke_service.id if principal.spoke_service else None,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            remote_addr=remote_addr or "",
            detail=detail,
        )
    )
