"""Raising, reading and advising cases. Owns the commits of these changes."""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.domain.assignment import format_case_token
from hub.domain.lifecycle import Action
from hub.persistence.models import (
    Advice,
    Case,
    CaseHistory,
    Message,
    Specialty,
    Spoke,
    TokenCounter,
    User,
)
from hub.services.access import case_scope, require_read, require_role
from hub.services.audit import audit, audit_cases
from hub.services.auth import Principal
from hub.services.queueing import queue_order
from hub.services.serialize import advice_dict, case_dict, message_dict
from hub.services.workflow import WorkflowService
from shared import protocol
from shared.accession import make_accession_number
from shared.enums import CaseStatus, Role
from shared.errors import Conflict, Forbidden, InvalidInput


@dataclass
class CaseService(WorkflowService):
    # -- raising ---------------------------------------------------------------------------
    def raise_case(
        self, principal: Principal, data: dict[str, Any], idempotency_key: str | None
    ) -> tuple[Case, bool]:
        """Store a submitted case and route it. Returns ``(case, created)``; the same key again
        returns the same case (``created`` False), a different body under it is a 409."""
        require_role(principal, Role.SPOKE_DOCTOR, spoke_service=True)
        spoke_id = principal.spoke_id
        assert spoke_id is not None
        uid = str(data["uid"]) if data.get("uid") else None
        key = idempotency_key or uid or str(uuid.uuid4())
        body_digest = _digest(data)
        existing = self.session.scalar(
            select(Case).where(Case.spoke_id == spoke_id, Case.idempotency_key == key)
        )
        if existing is not None:
            if existing.request_digest != body_digest:
                raise Conflict("This Idempotency-Key was already used for a different case.")
            return existing, False
        if uid and self.session.scalar(select(Case.id).where(Case.uid == uid)) is not None:
            raise Conflict("A case with this uid exists already.")
        case = self._new_case(principal, data, uid or str(uuid.uuid4()), key, body_digest)
        # Through a spoke's outbox the raising doctor is the individual (raised_by, checked above).
        who = principal if principal.user else Principal(case.raised_by, principal.spoke_service)
        audit(
            self.session,
            self.clock,
            who,
            "create",
            "case",
            case.uid,
            self.remote_addr,
            case_id=case.id,
        )
        self.flow.note(case, Action.SUBMIT.value, principal, "raised by the clinic")
        self.flow.route(case, Action.ROUTE)
        self.flow.finish()
        self.session.commit()
        return case, True

    def _new_case(
        self, principal: Principal, data: dict[str, Any], uid: str, key: str, body_digest: str
    ) -> Case:
        specialty = self.session.scalar(
            select(Specialty).where(Specialty.code == data["specialty"], Specialty.active)
        )
        if specialty is None:
            raise InvalidInput(
                "Unknown specialty.", fields={"specialty": [f"No specialty {data['specialty']!r}."]}
            )
        now = self.clock.now()
        accession = data.get("accession_number") or self._new_accession(principal, now.date())
        if self.session.scalar(select(Case.id).where(Case.accession_number == accession)):
            raise Conflict(
                "This accession number belongs to another case.",
                fields={"accession_number": [accession]},
            )
        patient = data["patient"]
        case = Case(
            uid=uid,
            accession_number=accession,
            spoke_id=principal.spoke_id,
            raised_by=self._raiser(principal, data.get("raised_by")),
            specialty=specialty,
            priority=data["priority"],
            status=CaseStatus.SUBMITTED.value,
            patient_pseudonym=patient["pseudonym"],
            patient_age=patient["age"],
            patient_sex=patient["sex"],
            complaint=data["complaint"],
            history=data.get("history", ""),
            vitals={k: v for k, v in data.get("vitals", {}).items() if v is not None},
            question=data["question"],
            idempotency_key=key,
            request_digest=body_digest,
            created_at=now,
            submitted_at=now,
            updated_at=now,
        )
        case.token = format_case_token(
            specialty.code, self._next_token_number(specialty.id, now.date())
        )
        self.session.add(case)
        self.session.flush()
        return case

    def _raiser(self, principal: Principal, username: str | None) -> User | None:
        if principal.user is not None:
            return principal.user
        if not username:
            return None
        user = self.session.scalar(select(User).where(User.username == username))
        if user is None or user.role != Role.SPOKE_DOCTOR or user.spoke_id != principal.spoke_id:
            raise InvalidInput(
                "raised_by is not a clinic doctor of this spoke.",
                fields={"raised_by": [f"{username!r} is not a clinic doctor of this spoke."]},
            )
        return user

    def _new_accession(self, principal: Principal, day: date) -> str:
        prefix = principal.spoke_service.code if principal.spoke_service else "TC"
        while True:
            candidate = make_accession_number(prefix, day)
            if (
                self.session.scalar(select(Case.id).where(Case.accession_number == candidate))
                is None
            ):
                return candidate

    def _next_token_number(self, specialty_id: int, day: date) -> int:
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(TokenCounter)
            .values(specialty_id=specialty_id, day=day, last=1)
            .on_conflict_do_update(
                index_elements=[TokenCounter.specialty_id, TokenCounter.day],
                set_={"last": TokenCounter.last + 1},
            )
            .returning(TokenCounter.last)
        )
        return int(self.session.execute(stmt).scalar_one())

    # -- reading ---------------------------------------------------------------------------
    def get(self, principal: Principal, case_id: int) -> Case:
        case = require_read(principal, self.session.get(Case, case_id))
        audit(
            self.session,
            self.clock,
            principal,
            "read",
            "case",
            case.uid,
            self.remote_addr,
            case_id=case.id,
        )
        self.session.commit()
        return case

    def list(self, principal: Principal, filters: dict[str, Any]) -> tuple[list[Case], int]:
        require_role(
            principal, Role.SPOKE_DOCTOR, Role.SPECIALIST, Role.SUPERVISOR, spoke_service=True
        )
        query = select(Case).where(case_scope(principal))
        if filters.get("status"):
            query = query.where(Case.status == filters["status"])
        if filters.get("priority"):
            query = query.where(Case.priority == filters["priority"])
        if filters.get("specialty"):
            query = query.join(Specialty).where(Specialty.code == filters["specialty"])
        if filters.get("spoke"):
            query = query.join(Spoke, Spoke.id == Case.spoke_id).where(
                Spoke.code == filters["spoke"]
            )
        if filters.get("assigned_to"):
            query = query.where(self._assignee_filter(principal, filters["assigned_to"]))
        if "sla_breached" in filters:
            breached = Case.sla_breached_at.is_not(None)
            query = query.where(breached if filters["sla_breached"] else ~breached)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page, per_page = filters.get("page", 1), filters.get("per_page", 50)
        if filters.get("order") == "queue":
            order: tuple[Any, ...] = queue_order()
        else:
            order = (Case.id.desc(),)
        rows = list(
            self.session.scalars(
                query.order_by(*order).offset((page - 1) * per_page).limit(per_page)
            ).all()
        )
        audit_cases(self.session, self.clock, principal, "cases", rows, self.remote_addr)
        self.session.commit()
        return rows, total

    def _assignee_filter(self, principal: Principal, who: str) -> Any:
        if who == "none":
            return Case.assigned_to_id.is_(None)
        if who == "me":
            return Case.assigned_to_id == principal.user_id
        user_id = self.session.scalar(select(User.id).where(User.username == who))
        return Case.assigned_to_id == (user_id or -1)

    def to_dict(self, case: Case) -> dict[str, Any]:
        return case_dict(case, eta=self.flow.board.eta(case))

    def history(self, principal: Principal, case_id: int) -> builtins.list[CaseHistory]:
        case = require_read(principal, self.session.get(Case, case_id))
        rows = list(
            self.session.scalars(
                select(CaseHistory).where(CaseHistory.case_id == case.id).order_by(CaseHistory.id)
            )
        )
        self._audit_read(principal, case, "history")
        return rows

    # -- advice and messages --------------------------------------------------------------
    def issue_advice(self, principal: Principal, case_id: int, data: dict[str, Any]) -> Advice:
        require_role(principal, Role.SPECIALIST)
        user = principal.user
        assert user is not None
        case = require_read(principal, self.session.get(Case, case_id))
        if case.assigned_to_id != user.id:
            raise Forbidden("Only the specialist the case is assigned to may advise it.")
        self.flow.authorize(principal, case, Action.ADVISE)
        previous = self.session.scalar(
            select(Advice).where(Advice.case_id == case.id).order_by(Advice.version.desc()).limit(1)
        )
        now = self.clock.now()
        advice = Advice(
            uid=str(uuid.uuid4()),
            case=case,
            version=(previous.version + 1) if previous else 1,
            supersedes_id=previous.id if previous else None,
            specialist_id=user.id,
            specialist_name=user.name,
            qualification=user.qualification,
            registration_number=user.registration_number,
            issued_at=now,
            **{
                k: data[k]
                for k in (
                    "assessment",
                    "recommendations",
                    "disposition",
                    "investigations",
                    "follow_up_date",
                )
            },
            prescriptions=data.get("prescriptions", []),
        )
        case.first_response_at = case.first_response_at or now
        case.started_at = case.started_at or case.assigned_at or now
        case.finished_at = case.finished_at or now
        self.session.add(advice)
        self.session.flush()
        reason = f"advice version {advice.version}" + (
            f" corrects version {previous.version}" if previous else ""
        )
        # The advice event is this transition's event: it carries the case, now advised.
        self.flow.move(
            case,
            Action.ADVISE,
            CaseStatus.ADVISED,
            principal,
            reason=reason,
            event=protocol.ADVICE_ISSUED,
            advice=advice_dict(advice),
        )
        self.flow.finish()
        audit(
            self.session,
            self.clock,
            principal,
            "create",
            "advice",
            advice.uid,
            self.remote_addr,
            case_id=case.id,
        )
        self.session.commit()
        return advice

    def advice_for(self, principal: Principal, case_id: int) -> builtins.list[Advice]:
        case = require_read(principal, self.session.get(Case, case_id))
        rows = list(
            self.session.scalars(
                select(Advice).where(Advice.case_id == case.id).order_by(Advice.version)
            )
        )
        audit(
            self.session,
            self.clock,
            principal,
            "read",
            "advice",
            case.uid,
            self.remote_addr,
            case_id=case.id,
        )
        self.session.commit()
        return rows

    def post_message(self, principal: Principal, case_id: int, text: str) -> Message:
        case = require_read(principal, self.session.get(Case, case_id))
        self.flow.authorize(principal, case, Action.MESSAGE)
        now = self.clock.now()
        message = Message(case_id=case.id, author=principal.user, text=text, created_at=now)
        self.session.add(message)
        if principal.role is Role.SPECIALIST and case.first_response_at is None:
            case.first_response_at = now  # a specialist's question is a first response
        self.session.flush()
        self.flow.emit(
            protocol.MESSAGE_POSTED, case, message=message_dict(message, principal.label)
        )
        audit(
            self.session,
            self.clock,
            principal,
            "create",
            "message",
            message.id,
            self.remote_addr,
            case_id=case.id,
            case=case.uid,
        )
        self.session.commit()
        return message

    def messages(self, principal: Principal, case_id: int) -> builtins.list[Message]:
        case = require_read(principal, self.session.get(Case, case_id))
        rows = list(
            self.session.scalars(
                select(Message).where(Message.case_id == case.id).order_by(Message.id)
            )
        )
        self._audit_read(principal, case, "messages")
        return rows

    def _audit_read(self, principal: Principal, case: Case, what: str) -> None:
        audit(
            self.session,
            self.clock,
            principal,
            "read",
            what,
            case.uid,
            self.remote_addr,
            case_id=case.id,
        )
        self.session.commit()


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
