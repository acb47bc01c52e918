"""Who may see and do what with a case: one place for the role and scope rules of DESIGN.md."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, true

from hub.persistence.models import Case
from hub.services.auth import Principal
from shared.enums import Role
from shared.errors import Forbidden, NotFound


def case_scope(principal: Principal) -> ColumnElement[bool]:
    """A SQL condition selecting the cases ``principal`` may read."""
    if principal.spoke_service is not None:
        return Case.spoke_id == principal.spoke_service.id
    role = principal.role
    user = principal.user
    assert user is not None
    if role is Role.SPOKE_DOCTOR:
        return Case.spoke_id == user.spoke_id
    if role is Role.SPECIALIST:
        specialty_ids = [s.id for s in user.specialties]
        return or_(Case.assigned_to_id == user.id, Case.specialty_id.in_(specialty_ids))
    if role is Role.SUPERVISOR:
        return true()
    return false()  # admin: no clinical content


def can_read(principal: Principal, case: Case) -> bool:
    if principal.spoke_service is not None:
        return case.spoke_id == principal.spoke_service.id
    user, role = principal.user, principal.role
    assert user is not None
    if role is Role.SPOKE_DOCTOR:
        return case.spoke_id == user.spoke_id
    if role is Role.SPECIALIST:
        return case.assigned_to_id == user.id or case.specialty_id in {
            s.id for s in user.specialties
        }
    return role is Role.SUPERVISOR


def require_read(principal: Principal, case: Case | None) -> Case:
    """The case if the caller may read it; 404 otherwise (no hint that it exists elsewhere)."""
    if case is None or not can_read(principal, case):
        raise NotFound("No such case.")
    return case


def require_role(principal: Principal, *roles: Role, spoke_service: bool = False) -> None:
    if principal.spoke_service is not None:
        if spoke_service:
            return
    elif principal.role in roles:
        return
    raise Forbidden("Your role may not do this.")
