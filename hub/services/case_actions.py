"""What specialists, clinics and supervisors do to a case after it is raised: claim, release,
ask for and give more information, refer, close, cancel, reassign. Owns the commits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hub.domain.lifecycle import Action
from hub.persistence.models import Case, Message, User
from hub.services.access import require_read
from hub.services.auth import Principal
from hub.services.serialize import message_dict, user_ref
from hub.services.workflow import WorkflowService
from shared.enums import CaseStatus as S
from shared.enums import Role
from shared.errors import InvalidInput


@dataclass
class CaseActions(WorkflowService):
    def _case(self, principal: Principal, case_id: int, action: Action) -> Case:
        """The case, locked until this action commits (PostgreSQL's row lock; SQLite has one
        writer): two hub processes acting on one case at once act one after the other, and the
        second finds the state the first left (a claim raced from two processes: one 409)."""
        found = self.session.get(Case, case_id, with_for_update=True, populate_existing=True)
        case = require_read(principal, found)
        self.flow.authorize(principal, case, action)
        return case

    def _done(self, case: Case) -> Case:
        self.flow.finish()
        self.session.commit()
        return case

    def claim(self, principal: Principal, case_id: int) -> Case:
        """Start review: take a case from the pool, or open one's own waiting case."""
        case = self._case(principal, case_id, Action.CLAIM)
        self.flow.check_turn(case)
        now = self.clock.now()
        case.first_response_at = case.first_response_at or now
        case.started_at = case.started_at or now
        self.flow.move(
            case,
            Action.CLAIM,
            S.IN_REVIEW,
            principal,
            assign_to=principal.user_id,
            reason="claimed" if case.status == S.QUEUED.value else "review started",
        )
        return self._done(case)

    def release(self, principal: Principal, case_id: int, reason: str = "") -> Case:
        """Give a case back: it goes to another specialist with room, else to the pool."""
        case = self._case(principal, case_id, Action.RELEASE)
        releaser = principal.user_id
        assert releaser is not None
        case.started_at = None
        self.flow.route(case, Action.RELEASE, principal, exclude=(releaser,))
        self._note_reason(case, reason)
        return self._done(case)

    def request_info(self, principal: Principal, case_id: int, text: str) -> Case:
        """The specialist asks the clinic for more; the case stays theirs."""
        case = self._case(principal, case_id, Action.REQUEST_INFO)
        case.first_response_at = case.first_response_at or self.clock.now()
        message = self._message(principal, case, text)
        self.flow.move(
            case,
            Action.REQUEST_INFO,
            S.NEEDS_INFO,
            principal,
            reason=text,
            message=message_dict(message, principal.label),
        )
        return self._done(case)

    def provide_info(self, principal: Principal, case_id: int, text: str) -> Case:
        """The clinic answers (new images arrive by STOW-RS as usual): back to the same
        specialist if they are on duty, else routed again."""
        case = self._case(principal, case_id, Action.PROVIDE_INFO)
        message = self._message(principal, case, text)
        specialist = self.session.get(User, case.assigned_to_id) if case.assigned_to_id else None
        if specialist is not None and self.flow.router.on_duty(specialist):
            self.flow.move(
                case,
                Action.PROVIDE_INFO,
                S.ASSIGNED,
                principal,
                reason="information given; back to the same specialist",
                message=message_dict(message, principal.label),
            )
        else:
            self.flow.route(
                case, Action.PROVIDE_INFO, principal, message=message_dict(message, principal.label)
            )
        return self._done(case)

    def refer(
        self, principal: Principal, case_id: int, reason: str, instructions: str = ""
    ) -> Case:
        """The patient is to be transferred: the reason and the instructions go to the clinic."""
        case = self._case(principal, case_id, Action.REFER)
        now = self.clock.now()
        case.first_response_at = case.first_response_at or now
        case.started_at = case.started_at or case.assigned_at or now
        case.finished_at = case.finished_at or now
        author = user_ref(principal.user) or {"username": principal.label, "name": principal.label}
        referral = {"reason": reason, "instructions": instructions, "author": author}
        history = f"{reason}\nInstructions: {instructions}" if instructions else reason
        self.flow.move(case, Action.REFER, S.REFERRED, principal, reason=history, referral=referral)
        return self._done(case)

    def close(self, principal: Principal, case_id: int, reason: str = "") -> Case:
        case = self._case(principal, case_id, Action.CLOSE)
        case.closed_at = self.clock.now()
        self.flow.move(case, Action.CLOSE, S.CLOSED, principal, reason=reason)
        return self._done(case)

    def cancel(self, principal: Principal, case_id: int, reason: str = "") -> Case:
        case = self._case(principal, case_id, Action.CANCEL)
        case.closed_at = self.clock.now()
        self.flow.move(case, Action.CANCEL, S.CANCELLED, principal, reason=reason)
        return self._done(case)

    def reassign(self, principal: Principal, case_id: int, username: str, reason: str = "") -> Case:
        """A supervisor hands the case to a named specialist of its specialty."""
        case = self._case(principal, case_id, Action.REASSIGN)
        target = self._specialist_for(case, username)
        why = f"reassigned by {principal.label} to {target.username}" + (
            f": {reason}" if reason else ""
        )
        case.started_at = None
        case.routing_reason = why
        self.flow.move(
            case,
            Action.REASSIGN,
            S.ASSIGNED,
            principal,
            assign_to=target.id,
            reason=why,
            routing_reason=why,
        )
        return self._done(case)

    def _specialist_for(self, case: Case, username: str) -> User:
        user = self.session.scalar(select(User).where(User.username == username))
        ok = (
            user is not None
            and user.active
            and user.role == Role.SPECIALIST.value
            and case.specialty_id in {s.id for s in user.specialties}
        )
        if not ok or user is None:
            raise InvalidInput(
                "Reassign to an active specialist of the case's specialty.",
                fields={
                    "specialist": [
                        f"{username!r} is not an active {case.specialty.code} specialist."
                    ]
                },
            )
        return user

    def _message(self, principal: Principal, case: Case, text: str) -> Message:
        message = Message(
            case_id=case.id, author=principal.user, text=text, created_at=self.clock.now()
        )
        self.session.add(message)
        self.session.flush()
        return message

    def _note_reason(self, case: Case, reason: str) -> None:
        if reason:
            case.routing_reason = f"{case.routing_reason} (released: {reason})"
