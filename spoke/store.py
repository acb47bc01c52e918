"""The spoke's local case store: the outbox of cases raised here and the mirror of what the hub
says about this spoke's cases. Every method owns its transaction, so what it returns is committed.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import protocol
from shared.accession import make_accession_number
from shared.clock import Clock, parse_instant
from shared.enums import DEFAULT_SPECIALTIES, HANDLED_STATUSES, OPEN_STATUSES, CaseStatus
from shared.errors import Conflict, NotFound
from spoke.persistence.models import (
    CancelState,
    LocalAdvice,
    LocalCase,
    ReceivedEvent,
    Specialty,
    State,
    SyncState,
)
from spoke.thread import SPOKEN, CaseThread, advice_item, items_from_event
from teleconsult.db import Database

log = logging.getLogger(__name__)

LAST_SEQ = "last_seq"
IMAGE_FIELDS = ("received", "at_hub", "rejected")
_IMAGES_KEY = "images:"
# A case is on the modality worklist from when it is raised until it is advised or ends.
WORKLIST_STATUSES = sorted({CaseStatus.DRAFT.value, *OPEN_STATUSES})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def case_dict(case: LocalCase) -> dict[str, Any]:
    """A local case as JSON: the hub's fields plus where it stands in the outbox."""
    return {
        "uid": case.uid,
        "accession_number": case.accession_number,
        "hub_id": case.hub_id,
        "token": case.token,
        "status": case.status,
        "priority": case.priority,
        "specialty": case.specialty,
        "patient": {
            "pseudonym": case.patient_pseudonym,
            "age": case.patient_age,
            "sex": case.patient_sex,
        },
        "complaint": case.complaint,
        "history": case.history,
        "vitals": case.vitals,
        "question": case.question,
        "raised_by": case.raised_by,
        "assigned_to_name": case.assigned_to_name,
        "queue_position": case.queue_position,
        # A breached case has no honest ETA: the page says what to do instead.
        "eta": None if case.sla_breached else _iso(case.eta_at),
        "eta_not_before": None if case.sla_breached else _iso(case.eta_not_before),
        "sla_breached": case.sla_breached,
        "hub_version": case.hub_version,
        "cancel": _cancel_dict(case),
        "clinic_actions": clinic_actions(case),
        "sync_state": case.sync_state,
        "sync_error": case.sync_error,
        "attempts": case.attempts,
        "created_at": _iso(case.created_at),
        "synced_at": _iso(case.synced_at),
        "updated_at": _iso(case.updated_at),
    }


def clinic_actions(case: LocalCase) -> list[str]:
    """What the clinic may do now, as the hub's lifecycle said; a case the hub has not seen
    yet may only be cancelled (it is then withdrawn before or right after it reaches the hub)."""
    if case.cancel_state in (CancelState.PENDING, CancelState.DONE):
        return []
    if case.hub_id is None:
        return ["cancel"] if case.sync_state == SyncState.PENDING else []
    return [str(a) for a in case.clinic_actions or []]


def _cancel_dict(case: LocalCase) -> dict[str, Any] | None:
    if case.cancel_state is None:
        return None
    return {
        "state": case.cancel_state,
        "reason": case.cancel_reason or "",
        "error": case.cancel_error,
        "requested_at": _iso(case.cancel_requested_at),
    }


def hub_body(case: LocalCase) -> dict[str, Any]:
    """The body of ``POST /api/v1/cases`` for a local case (always built the same way, so a
    resend under the same idempotency key carries the same body)."""
    return {
        "uid": case.uid,
        "patient": {
            "pseudonym": case.patient_pseudonym,
            "age": case.patient_age,
            "sex": case.patient_sex,
        },
        "complaint": case.complaint,
        "history": case.history,
        "vitals": dict(case.vitals),
        "question": case.question,
        "specialty": case.specialty,
        "priority": case.priority,
        "accession_number": case.accession_number,
        "raised_by": case.raised_by,
    }


class CaseStore:
    """Local cases, advice, messages and the event cursor of one spoke."""

    def __init__(self, db: Database, clock: Clock, spoke_code: str) -> None:
        self.db = db
        self.clock = clock
        self.spoke_code = spoke_code
        self.thread = CaseThread()
        # Socket.IO handlers run on several threads: one event at a time keeps seq handling simple.
        self._event_lock = threading.Lock()

    # -- the outbox --------------------------------------------------------------------------
    def raise_case(self, data: dict[str, Any], raised_by: str | None) -> dict[str, Any]:
        """Store a validated case (``CaseCreateSchema``) as pending; the same uid again returns
        it."""
        uid = str(data.get("uid") or uuid.uuid4())
        now = self.clock.now()
        with self.db.session() as session:
            existing = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
            if existing is not None:
                return case_dict(existing)
            accession = data.get("accession_number") or self._new_accession(session, now)
            if session.scalar(select(LocalCase.id).where(LocalCase.accession_number == accession)):
                raise Conflict(
                    "This accession number belongs to another case.",
                    fields={"accession_number": [accession]},
                )
            case = self._new_case(data, uid, accession, raised_by, now)
            session.add(case)
            session.flush()
            log.info("case %s raised locally by %s (accession %s)", uid, raised_by, accession)
            return case_dict(case)

    def _new_case(
        self, data: dict[str, Any], uid: str, accession: str, raised_by: str | None, now: datetime
    ) -> LocalCase:
        patient = data["patient"]
        return LocalCase(
            uid=uid,
            accession_number=accession,
            status=CaseStatus.SUBMITTED.value,
            priority=data["priority"],
            specialty=data["specialty"],
            patient_pseudonym=patient["pseudonym"],
            patient_age=patient["age"],
            patient_sex=patient["sex"],
            complaint=data["complaint"],
            history=data.get("history") or "",
            vitals={k: v for k, v in (data.get("vitals") or {}).items() if v is not None},
            question=data["question"],
            raised_by=raised_by,
            sync_state=SyncState.PENDING,
            attempts=0,
            created_at=now,
            updated_at=now,
        )

    def _new_accession(self, session: Session, now: datetime) -> str:
        while True:
            candidate = make_accession_number(self.spoke_code, now.date())
            if (
                session.scalar(select(LocalCase.id).where(LocalCase.accession_number == candidate))
                is None
            ):
                return candidate

    def pending(self, limit: int = 20) -> list[dict[str, Any]]:
        """Bodies of the cases waiting to be sent, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(
                select(LocalCase)
                .where(LocalCase.sync_state == SyncState.PENDING)
                .order_by(LocalCase.created_at, LocalCase.id)
                .limit(limit)
            )
            return [hub_body(c) for c in rows]

    def cases_stamp(self) -> str:
        """Changes whenever a case is added or changed: the count and the latest change."""
        with self.db.session() as session:
            count, stamp = session.execute(
                select(func.count(LocalCase.id), func.max(LocalCase.updated_at))
            ).one()
        return f"{count}:{stamp}"

    def count_pending(self) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.count(LocalCase.id)).where(
                        LocalCase.sync_state == SyncState.PENDING
                    )
                )
                or 0
            )

    def mark_synced(self, uid: str, hub_case: dict[str, Any]) -> None:
        """The hub has the case: keep its id, token, status and queue place."""
        with self.db.session() as session:
            case = self._get(session, uid)
            case.attempts += 1
            case.last_attempt_at = self.clock.now()
            self._mirror_into(case, hub_case)

    def mark_rejected(self, uid: str, message: str) -> None:
        """The hub refused the case for good: the doctor sees why and may raise it again."""
        with self.db.session() as session:
            case = self._get(session, uid)
            now = self.clock.now()
            case.sync_state, case.sync_error = SyncState.REJECTED, message
            case.attempts += 1
            case.last_attempt_at = case.updated_at = now

    def record_failure(self, uid: str, message: str) -> None:
        """A send failed for a passing reason: the case stays pending."""
        with self.db.session() as session:
            case = self._get(session, uid)
            case.sync_error = message
            case.attempts += 1
            case.last_attempt_at = self.clock.now()

    # -- the clinic's cancellations (outbox too) ------------------------------------------------
    def request_cancel(self, uid: str, reason: str, by: str | None) -> dict[str, Any]:
        """Store the clinic's cancellation; the outbox sends it to the hub (after the case itself
        if that is still waiting). Asking twice keeps the first; 409 if the case is past it."""
        with self.db.session() as session:
            case = self._get(session, uid)
            if case.cancel_state in (CancelState.PENDING, CancelState.DONE):
                return case_dict(case)
            if "cancel" not in clinic_actions(case):
                raise Conflict(
                    f"A case that is {case.status.replace('_', ' ')} cannot be cancelled.",
                    fields={"status": case.status},
                )
            now = self.clock.now()
            case.cancel_state, case.cancel_error = CancelState.PENDING, None
            case.cancel_reason = f"{by}: {reason}" if by and reason else reason or f"by {by}"
            case.cancel_requested_at = case.updated_at = now
            if case.hub_id is None:  # the hub never confirmed it: it is not sent at all
                case.sync_state, case.sync_error = SyncState.WITHDRAWN, None
                case.status, case.cancel_state = CaseStatus.CANCELLED.value, CancelState.DONE
            session.flush()
            log.info("case %s: cancellation by %s stored (%s)", uid, by, case.cancel_state)
            return case_dict(case)

    def pending_cancels(self) -> list[tuple[str, int, str]]:
        """(uid, hub id, reason) of cancellations waiting to reach the hub, oldest first."""
        with self.db.session() as session:
            rows = session.execute(
                select(LocalCase.uid, LocalCase.hub_id, LocalCase.cancel_reason)
                .where(LocalCase.cancel_state == CancelState.PENDING, LocalCase.hub_id.is_not(None))
                .order_by(LocalCase.cancel_requested_at, LocalCase.id)
            ).all()
            return [(uid, int(hub_id or 0), reason or "") for uid, hub_id, reason in rows]

    def cancel_settled(self, uid: str, hub_case: dict[str, Any] | None, error: str = "") -> None:
        """The hub answered the cancellation: done (with its case), or refused with ``error``."""
        with self.db.session() as session:
            case = self._get(session, uid)
            if hub_case is not None:
                self._mirror_into(case, hub_case)
            if error:
                case.cancel_state, case.cancel_error = CancelState.REFUSED, error
            else:
                case.cancel_state, case.cancel_error = CancelState.DONE, None
                case.status = CaseStatus.CANCELLED.value
            case.updated_at = self.clock.now()

    # -- reading ------------------------------------------------------------------------------
    def list_cases(self, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(LocalCase)
                .order_by(LocalCase.created_at.desc(), LocalCase.id.desc())
                .limit(limit)
            )
            return [case_dict(c) for c in rows]

    def get_case(self, uid: str) -> dict[str, Any]:
        """One case with its advice (newest version first), its thread (oldest first) and, as
        before the thread existed, its messages."""
        with self.db.session() as session:
            case = self._get(session, uid)
            advice = session.scalars(
                select(LocalAdvice)
                .where(LocalAdvice.case_uid == uid)
                .order_by(LocalAdvice.version.desc())
            )
            thread = self.thread.read(session, uid)
            return {
                **case_dict(case),
                "advice": [
                    {**a.payload, "received_at": _iso(a.received_at), "acked_at": _iso(a.acked_at)}
                    for a in advice
                ],
                "thread": thread,
                "messages": [
                    {
                        "id": item.get("message_id"),
                        "kind": item["kind"],
                        "author": item["author"],
                        "text": item["text"],
                        "created_at": item["at"],
                    }
                    for item in thread
                    if item["kind"] in SPOKEN
                ],
            }

    def latest_alert(self) -> dict[str, Any] | None:
        """The newest question, advice, referral or SLA warning of any case (pages alert)."""
        with self.db.session() as session:
            return self.thread.latest_alert(session)

    def open_cases(self, limit: int = 500) -> list[dict[str, Any]]:
        """Cases still waiting for images or advice: the modality worklist, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(
                select(LocalCase)
                .where(
                    LocalCase.status.in_(WORKLIST_STATUSES),
                    LocalCase.sync_state != SyncState.REJECTED,
                    LocalCase.cancel_state.is_(None)
                    | (LocalCase.cancel_state == CancelState.REFUSED),
                )
                .order_by(LocalCase.created_at, LocalCase.id)
                .limit(limit)
            )
            return [case_dict(c) for c in rows]

    def _get(self, session: Session, uid: str) -> LocalCase:
        case = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
        if case is None:
            raise NotFound("No such case at this clinic.")
        return case

    # -- the mirror of the hub ---------------------------------------------------------------
    def mirror_cases(self, items: Iterable[dict[str, Any]]) -> list[str]:
        """Bring local copies in line with the hub's case JSON; returns the uids seen."""
        uids = []
        with self.db.session() as session:
            for item in items:
                self._mirror(session, item)
                uids.append(str(item["uid"]))
        return uids

    def _mirror(self, session: Session, hub_case: dict[str, Any]) -> LocalCase:
        uid = str(hub_case["uid"])
        case = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
        if case is None:
            case = self._case_from_hub(hub_case)
            session.add(case)
        self._mirror_into(case, hub_case)
        session.flush()
        return case

    def _case_from_hub(self, hub_case: dict[str, Any]) -> LocalCase:
        """A case raised at the hub, seen here for the first time."""
        patient = hub_case.get("patient") or {}
        raiser = hub_case.get("raised_by")
        now = self.clock.now()
        return LocalCase(
            uid=str(hub_case["uid"]),
            accession_number=hub_case["accession_number"],
            status=hub_case.get("status") or CaseStatus.SUBMITTED.value,
            priority=hub_case.get("priority") or "routine",
            specialty=hub_case.get("specialty") or "",
            patient_pseudonym=patient.get("pseudonym") or "",
            patient_age=int(patient.get("age") or 0),
            patient_sex=patient.get("sex") or "unknown",
            complaint=hub_case.get("complaint") or "",
            history=hub_case.get("history") or "",
            vitals=hub_case.get("vitals") or {},
            question=hub_case.get("question") or "",
            raised_by=raiser.get("username") if isinstance(raiser, dict) else None,
            sync_state=SyncState.SYNCED,
            attempts=0,
            created_at=parse_instant(hub_case.get("created_at")) or now,
            updated_at=now,
        )

    def _mirror_into(self, case: LocalCase, hub_case: dict[str, Any]) -> bool:
        """Apply the hub's snapshot of the case unless it is older than what is here (by the
        hub's ``version``; a hub without versions is always applied). True if applied."""
        incoming = hub_case.get("version")
        stale = isinstance(incoming, int) and case.hub_version is not None
        if stale and incoming < case.hub_version:  # type: ignore[operator]
            log.info(
                "case %s: hub version %s is older than %s here, not applied",
                case.uid,
                incoming,
                case.hub_version,
            )
            return False
        assigned = hub_case.get("assigned_to")
        now = self.clock.now()
        case.hub_version = incoming if isinstance(incoming, int) else case.hub_version
        case.hub_id = hub_case.get("id", case.hub_id)
        case.token = hub_case.get("token") or case.token
        case.status = hub_case.get("status") or case.status
        case.queue_position = hub_case.get("queue_position")
        case.eta_at = parse_instant(hub_case.get("eta"))
        case.eta_not_before = parse_instant(hub_case.get("eta_not_before"))
        case.sla_breached = bool(hub_case.get("sla_breached", case.sla_breached))
        actions = hub_case.get("clinic_actions")
        case.clinic_actions = list(actions) if isinstance(actions, list) else case.clinic_actions
        case.assigned_to_name = assigned.get("name") if isinstance(assigned, dict) else None
        if case.sync_state == SyncState.WITHDRAWN:  # it reached the hub after all: cancel there
            case.cancel_state = CancelState.PENDING
        if case.sync_state != SyncState.SYNCED:
            case.sync_state, case.sync_error, case.synced_at = SyncState.SYNCED, None, now
        if case.cancel_state == CancelState.PENDING and case.status == CaseStatus.CANCELLED.value:
            case.cancel_state, case.cancel_error = CancelState.DONE, None
        case.updated_at = now
        return True

    # -- events from the hub -----------------------------------------------------------------
    def handle_event(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Store one hub event, once per ``seq``; returns the advice to acknowledge, if any.

        The case of the event is mirrored, its advice or message stored, and the cursor moved,
        all in one committed transaction.
        """
        seq = event.get("seq")
        if not isinstance(seq, int):
            raise ValueError("an event without an integer seq")
        with self._event_lock, self.db.session() as session:
            if session.get(ReceivedEvent, seq) is not None:
                return _advice_to_ack(event)  # already stored: ack again, the first ack may be lost
            case = (
                self._mirror(session, event["case"])
                if isinstance(event.get("case"), dict)
                else None
            )
            advice = event.get("advice")
            if event.get("type") == protocol.ADVICE_ISSUED and isinstance(advice, dict) and case:
                self._store_advice(session, case.uid, advice)
            now = self.clock.now()
            if case is not None and self.thread.add(
                session, case.uid, items_from_event(event), now
            ):
                case.updated_at = now  # the pages see something new
            session.add(
                ReceivedEvent(
                    seq=seq,
                    type=str(event.get("type")),
                    case_uid=case.uid if case else None,
                    received_at=now,
                )
            )
            self._advance_seq(session, seq)
        return _advice_to_ack(event)

    def store_advice(self, case_uid: str, items: Iterable[dict[str, Any]]) -> None:
        """Store advice fetched over REST (e.g. when mirroring after a reconnect)."""
        with self._event_lock, self.db.session() as session:
            for item in items:
                self._store_advice(session, case_uid, item)

    def _store_advice(self, session: Session, case_uid: str, advice: dict[str, Any]) -> None:
        if (
            session.scalar(select(LocalAdvice.id).where(LocalAdvice.hub_id == advice["id"]))
            is not None
        ):
            return
        session.add(
            LocalAdvice(
                hub_id=advice["id"],
                uid=str(advice["uid"]),
                case_uid=case_uid,
                version=int(advice.get("version") or 1),
                payload=advice,
                issued_at=parse_instant(advice.get("issued_at")),
                received_at=self.clock.now(),
            )
        )
        session.flush()
        self.thread.add(session, case_uid, [advice_item(advice)], self.clock.now())
        log.info(
            "advice %s (v%s) for case %s stored", advice["id"], advice.get("version"), case_uid
        )

    def mark_acked(self, advice_hub_id: int) -> None:
        with self.db.session() as session:
            advice = session.scalar(select(LocalAdvice).where(LocalAdvice.hub_id == advice_hub_id))
            if advice is not None and advice.acked_at is None:
                advice.acked_at = self.clock.now()

    def unacked_advice(self) -> list[int]:
        """Hub ids of stored advice whose ack the hub has not confirmed (e.g. the link broke)."""
        with self.db.session() as session:
            return [
                int(i)
                for i in session.scalars(
                    select(LocalAdvice.hub_id).where(LocalAdvice.acked_at.is_(None))
                )
            ]

    def cases_missing_advice(self) -> list[tuple[str, int]]:
        """(uid, hub id) of advised cases without any local advice: to fetch over REST."""
        done = sorted(HANDLED_STATUSES)
        with self.db.session() as session:
            have = select(LocalAdvice.case_uid)
            rows = session.execute(
                select(LocalCase.uid, LocalCase.hub_id).where(
                    LocalCase.status.in_(done),
                    LocalCase.hub_id.is_not(None),
                    LocalCase.uid.not_in(have),
                )
            ).all()
            return [(uid, hub_id) for uid, hub_id in rows if hub_id is not None]

    # -- state --------------------------------------------------------------------------------
    # -- how far each case's images got (the bridge's counts, in the key/value state table) ------

    def images_of(self, uids: list[str]) -> dict[str, dict[str, int]]:
        """The last counts pushed for each case in ``uids`` (zeros when none were)."""
        found = {uid: dict.fromkeys(IMAGE_FIELDS, 0) for uid in uids}
        if not uids:
            return found
        with self.db.session() as session:
            keys = [_IMAGES_KEY + uid for uid in uids]
            for row in session.scalars(select(State).where(State.key.in_(keys))):
                found[row.key[len(_IMAGES_KEY) :]] = json.loads(row.value)
        return found

    def save_images_progress(self, uid: str, counts: dict[str, int]) -> None:
        """Keep the bridge's latest counts for a case of this clinic (NotFound otherwise)."""
        self.get_case(uid)
        with self.db.session() as session:
            session.merge(State(key=_IMAGES_KEY + uid, value=json.dumps(counts)))

    def last_seq(self) -> int:
        with self.db.session() as session:
            row = session.get(State, LAST_SEQ)
            return int(row.value) if row else 0

    def _advance_seq(self, session: Session, seq: int) -> None:
        row = session.get(State, LAST_SEQ)
        if row is None:
            session.add(State(key=LAST_SEQ, value=str(seq)))
        elif int(row.value) < seq:
            row.value = str(seq)

    # -- specialties --------------------------------------------------------------------------
    def specialties(self) -> list[tuple[str, str]]:
        """(code, name) of the hub's specialties as last fetched, else the defaults."""
        with self.db.session() as session:
            rows = session.scalars(select(Specialty).order_by(Specialty.code)).all()
            return [(s.code, s.name) for s in rows] or list(DEFAULT_SPECIALTIES)

    def save_specialties(self, items: Iterable[dict[str, Any]]) -> None:
        now = self.clock.now()
        with self.db.session() as session:
            fresh = {str(i["code"]): str(i.get("name") or i["code"]) for i in items}
            for row in session.scalars(select(Specialty)):
                if row.code not in fresh:
                    session.delete(row)
            for code, name in fresh.items():
                session.merge(Specialty(code=code, name=name, updated_at=now))


def _advice_to_ack(event: dict[str, Any]) -> dict[str, Any] | None:
    advice = event.get("advice")
    if event.get("type") == protocol.ADVICE_ISSUED and isinstance(advice, dict):
        return advice
    return None
