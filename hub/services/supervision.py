"""Supervision groups in the database: the domain's ``SupervisionGroup`` per specialty, loaded
from and written back to ``supervision_links``, with every move logged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.policy import WorkflowPolicy
from hub.domain.supervision import SupervisionGroup
from hub.persistence.models import Specialty, SupervisionLink, User, user_specialties
from hub.services.access import require_role
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.events import record_staff_event
from hub.services.serialize import user_ref
from shared import protocol
from shared.clock import Clock
from shared.enums import Role
from shared.errors import NotFound

HUB = Principal()


@dataclass
class SupervisionService:
    session: Session
    clock: Clock
    policy: WorkflowPolicy
    remote_addr: str = ""
    # Off for set-up outside a running hub (CLI, demo seeding): audit only, no real-time events.
    emit_events: bool = True

    def specialties(self) -> list[Specialty]:
        return list(
            self.session.scalars(select(Specialty).where(Specialty.active).order_by(Specialty.code))
        )

    def group(self, specialty: Specialty) -> tuple[SupervisionGroup, dict[int, int]]:
        """The specialty's group, repaired to hold the ratio, and the links as stored."""
        specialists = list(
            self.session.scalars(
                select(User.id)
                .join(user_specialties, user_specialties.c.user_id == User.id)
                .where(
                    user_specialties.c.specialty_id == specialty.id,
                    User.active,
                    User.role == Role.SPECIALIST.value,
                )
            )
        )
        doctors = list(
            self.session.scalars(
                select(User.id)
                .where(User.role == Role.SPOKE_DOCTOR.value, User.active)
                .order_by(User.id)
            )
        )
        stored = {
            link.doctor_id: link.specialist_id
            for link in self.session.scalars(
                select(SupervisionLink)
                .where(SupervisionLink.specialty_id == specialty.id)
                .order_by(SupervisionLink.id)
            )
        }
        return SupervisionGroup.build(self.policy.ratio, specialists, stored, doctors), stored

    def rebalance(self, principal: Principal = HUB, reason: str = "") -> int:
        """Bring every specialty's links in line with who is active now (new doctors placed,
        supervisees of departed specialists moved). Returns how many links changed."""
        changed = 0
        for specialty in self.specialties():
            group, stored = self.group(specialty)
            changed += self._save(specialty, stored, group, principal, reason)
        return changed

    def reassign(
        self, principal: Principal, specialty_code: str, doctor: str, specialist: str
    ) -> None:
        require_role(principal, Role.SUPERVISOR)
        specialty = self._specialty(specialty_code)
        group, stored = self.group(specialty)
        group.reassign(self._user_id(doctor), self._user_id(specialist))
        self._save(specialty, stored, group, principal, f"by hand, by {principal.label}")

    def overview(
        self, principal: Principal, specialty_code: str | None = None
    ) -> list[dict[str, Any]]:
        require_role(principal, Role.SUPERVISOR, Role.ADMIN)
        rows = [self._specialty(specialty_code)] if specialty_code else self.specialties()
        return [self._describe(s, self.group(s)[0]) for s in rows]

    def shortfall(self) -> dict[str, int]:
        return {s.code: self.group(s)[0].shortfall for s in self.specialties()}

    # -- internals ---------------------------------------------------------------------------
    def _describe(self, specialty: Specialty, group: SupervisionGroup) -> dict[str, Any]:
        def ref(uid: int) -> dict[str, Any] | None:
            return user_ref(self.session.get(User, uid))

        missing = group.shortfall
        return {
            "specialty": specialty.code,
            "ratio": group.ratio,
            "groups": [
                {"specialist": ref(sid), "supervisees": [ref(d) for d in doctors]}
                for sid, doctors in group.supervisees.items()
            ],
            "unsupervised": [ref(d) for d in group.unsupervised],
            "shortfall": missing,
            "shortfall_text": (
                f"{missing} specialist{'s' if missing != 1 else ''} missing in "
                f"{specialty.name.lower()}"
                if missing
                else ""
            ),
        }

    def _save(
        self,
        specialty: Specialty,
        stored: dict[int, int],
        group: SupervisionGroup,
        principal: Principal,
        reason: str,
    ) -> int:
        wanted = group.links()
        moves = [
            (doctor, stored.get(doctor), wanted.get(doctor))
            for doctor in sorted(set(stored) | set(wanted))
            if stored.get(doctor) != wanted.get(doctor)
        ]
        if not moves:
            return 0
        links = {
            link.doctor_id: link
            for link in self.session.scalars(
                select(SupervisionLink).where(SupervisionLink.specialty_id == specialty.id)
            )
        }
        now = self.clock.now()
        for doctor, old, new in moves:
            if new is None:
                self.session.delete(links[doctor])
            elif old is None:
                self.session.add(
                    SupervisionLink(
                        specialty_id=specialty.id,
                        specialist_id=new,
                        doctor_id=doctor,
                        created_at=now,
                    )
                )
            else:
                links[doctor].specialist_id = new
            self._record(specialty, doctor, old, new, principal, reason)
        self.session.flush()
        return len(moves)

    def _record(
        self,
        specialty: Specialty,
        doctor: int,
        old: int | None,
        new: int | None,
        principal: Principal,
        reason: str,
    ) -> None:
        audit(
            self.session,
            self.clock,
            principal,
            "supervise",
            "supervision",
            f"{specialty.code}:{doctor}",
            self.remote_addr,
            specialist=new,
            previous=old,
            reason=reason,
        )
        if not self.emit_events:
            return
        data = {
            "specialty": specialty.code,
            "doctor": user_ref(self.session.get(User, doctor)),
            "specialist": user_ref(self.session.get(User, new)) if new else None,
            "previous": user_ref(self.session.get(User, old)) if old else None,
            "reason": reason,
        }
        record_staff_event(
            self.session, self.clock, protocol.SUPERVISION_CHANGED, [doctor, old, new], data
        )

    def _specialty(self, code: str) -> Specialty:
        specialty = self.session.scalar(
            select(Specialty).where(Specialty.code == code, Specialty.active)
        )
        if specialty is None:
            raise NotFound(f"No specialty {code!r}.")
        return specialty

    def _user_id(self, username: str) -> int:
        uid = self.session.scalar(select(User.id).where(User.username == username, User.active))
        if uid is None:
            raise NotFound(f"No active user {username!r}.")
        return uid
