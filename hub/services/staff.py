"""Who is at work: specialists' duty, on-call list, schedules and case limits; users added or
deactivated; the specialties' operating hours. A change that affects routing reroutes the
cases concerned and refreshes queues in the same transaction. Owns the commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hub.domain.availability import parse_hours
from hub.persistence.models import Specialty, User
from hub.services.access import require_role
from hub.services.accounts import add_user
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.events import record_staff_event
from hub.services.serialize import user_dict
from hub.services.supervision import SupervisionService
from hub.services.workflow import WorkflowService
from shared import protocol
from shared.enums import Role
from shared.errors import Forbidden, NotFound


@dataclass
class StaffService(WorkflowService):
    def supervision(self) -> SupervisionService:
        return SupervisionService(self.session, self.clock, self.policy, self.remote_addr)

    # -- users ------------------------------------------------------------------------------
    def create_user(self, principal: Principal, data: dict[str, Any]) -> User:
        require_role(principal, Role.ADMIN)
        user = add_user(
            self.session,
            data["username"],
            data["password"],
            data["role"],
            name=data.get("name", ""),
            spoke_code=data.get("spoke"),
            specialties=data.get("specialties", []),
            qualification=data.get("qualification", ""),
            registration_number=data.get("registration_number", ""),
        )
        self._apply(
            user,
            {k: data[k] for k in ("on_call", "duty_schedule", "max_active_cases") if k in data},
        )
        audit(
            self.session,
            self.clock,
            principal,
            "create",
            "user",
            user.username,
            self.remote_addr,
            role=user.role,
        )
        self.supervision().rebalance(principal, f"{user.username} added")
        for specialty in user.specialties:
            self.flow.touch_specialty(specialty.id)
        return self._done(user, principal)

    def update_specialist(self, principal: Principal, user_id: int, data: dict[str, Any]) -> User:
        """Admin: on-call, schedule, case limit, active; a supervisor or the specialist: on duty."""
        user = self._specialist(user_id)
        self._may_change(principal, user, data)
        was_on_duty = self.flow.router.on_duty(user)
        was_active = user.active
        self._apply(user, data)
        audit(
            self.session,
            self.clock,
            principal,
            "update",
            "user",
            user.username,
            self.remote_addr,
            changes={k: str(v) for k, v in data.items()},
        )
        if was_active and not user.active:
            self.flow.reroute_unstarted(user.id, f"{user.username} was deactivated")
            self.supervision().rebalance(principal, f"{user.username} deactivated")
        elif was_on_duty and not self.flow.router.on_duty(user):
            self.flow.reroute_unstarted(user.id, f"{user.username} went off duty")
        elif user.active and not was_active:
            self.supervision().rebalance(principal, f"{user.username} reactivated")
        for specialty in user.specialties:
            self.flow.touch_specialty(specialty.id)
        return self._done(user, principal)

    def set_active(self, principal: Principal, user_id: int, active: bool) -> User:
        """Admin: deactivate (or reactivate) anyone of any role but oneself. A specialist's
        unstarted cases are routed again; every login of the user stops working at once."""
        require_role(principal, Role.ADMIN)
        user = self.session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        if user.id == principal.user_id and not active:
            raise Forbidden("An admin cannot deactivate their own account.")
        if user.role == Role.SPECIALIST.value:
            return self.update_specialist(principal, user_id, {"active": active})
        was_active, user.active = user.active, active
        audit(
            self.session,
            self.clock,
            principal,
            "deactivate" if not active else "activate",
            "user",
            user.username,
            self.remote_addr,
        )
        if user.role == Role.SPOKE_DOCTOR.value and was_active != active:
            self.supervision().rebalance(principal, f"{user.username} active={active}")
        return self._done(user, principal)

    def _may_change(self, principal: Principal, user: User, data: dict[str, Any]) -> None:
        if principal.role is Role.ADMIN:
            return
        duty_only = set(data) <= {"on_duty"}
        if duty_only and (principal.role is Role.SUPERVISOR or principal.user_id == user.id):
            return
        raise Forbidden(
            "Only an administrator may change this; a specialist may set their own duty."
        )

    def _apply(self, user: User, data: dict[str, Any]) -> None:
        if "duty_schedule" in data and data["duty_schedule"]:
            parse_hours(data["duty_schedule"])  # refuse a schedule nobody can read
        for key in ("on_duty", "on_call", "duty_schedule", "max_active_cases", "active"):
            if key in data:
                setattr(user, key, data[key])
        self.session.flush()

    def _specialist(self, user_id: int) -> User:
        user = self.session.get(User, user_id)
        if user is None or user.role != Role.SPECIALIST.value:
            raise NotFound("No such specialist.")
        return user

    def _done(self, user: User, principal: Principal) -> User:
        self.flow.finish()
        if user.role == Role.SPECIALIST.value:
            data = {"specialist": self.describe(user)}
            record_staff_event(
                self.session, self.clock, protocol.SPECIALIST_UPDATED, [user.id], data
            )
        self.session.commit()
        return user

    def describe(self, user: User) -> dict[str, Any]:
        router = self.flow.router
        return {
            **user_dict(user),
            "active": user.active,
            "on_duty": router.on_duty(user),
            "on_duty_switch": user.on_duty,
            "on_call": user.on_call,
            "duty_schedule": user.duty_schedule,
            "max_active_cases": user.max_active_cases,
            "online": user.last_seen_at is not None and user.offline_since is None,
        }

    def specialists(self, principal: Principal, specialty: str | None = None) -> list[User]:
        require_role(principal, Role.SUPERVISOR, Role.ADMIN, Role.SPECIALIST)
        query = select(User).where(User.role == Role.SPECIALIST.value).order_by(User.username)
        rows = list(self.session.scalars(query))
        return [u for u in rows if not specialty or specialty in {s.code for s in u.specialties}]

    # -- hours ------------------------------------------------------------------------------
    def set_hours(self, principal: Principal, code: str, hours: str) -> Specialty:
        require_role(principal, Role.ADMIN)
        specialty = self.session.scalar(select(Specialty).where(Specialty.code == code))
        if specialty is None:
            raise NotFound(f"No specialty {code!r}.")
        parse_hours(hours)  # a malformed schedule is a 400 naming what is wrong
        specialty.hours = hours.strip()
        audit(
            self.session,
            self.clock,
            principal,
            "update",
            "specialty",
            code,
            self.remote_addr,
            hours=hours,
        )
        self.flow.touch_specialty(specialty.id)
        self.flow.finish()
        self.session.commit()
        return specialty

    def active_specialties(self) -> list[Specialty]:
        """The specialties cases may be raised for, by code."""
        return list(
            self.session.scalars(select(Specialty).where(Specialty.active).order_by(Specialty.code))
        )

    def hours_by_code(self, code: str) -> dict[str, Any]:
        """A specialty's hours and whether it is open now; NotFound for an unknown code."""
        specialty = self.session.scalar(select(Specialty).where(Specialty.code == code))
        if specialty is None:
            raise NotFound(f"No specialty {code!r}.")
        return self.hours_of(specialty)

    def hours_of(self, specialty: Specialty) -> dict[str, Any]:
        router = self.flow.router
        now = self.clock.now()
        opens = router.opens_at(specialty, now)
        return {
            "code": specialty.code,
            "name": specialty.name,
            "hours": router.hours(specialty).text,
            "open_now": opens == now,
            "opens_at": opens.isoformat() if opens else None,
        }
