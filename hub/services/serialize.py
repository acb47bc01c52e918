"""Hub objects as the JSON of the public contract (DESIGN.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hub.domain.lifecycle import WAITING, Party, actions_of
from hub.persistence.models import Advice, Case, CaseHistory, Message, Study, User
from shared.enums import CaseStatus
from shared.eta import Eta


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def user_ref(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "name": user.name}


def user_dict(user: User) -> dict[str, Any]:
    return {
        **(user_ref(user) or {}),
        "role": user.role,
        "spoke": user.spoke.code if user.spoke else None,
        "specialties": [s.code for s in user.specialties],
        "qualification": user.qualification,
        "registration_number": user.registration_number,
        "language": user.language,
    }


_STORED: Any = object()


def case_dict(
    case: Case, queue_position: int | None = _STORED, eta: Eta | None = None
) -> dict[str, Any]:
    """The case as the contract shows it; ``queue_position`` defaults to the live place the
    hub keeps on the case (None once review has started); ``eta`` is the queue's honest ETA
    (``QueueBoard.eta``), else the stored estimate."""
    if queue_position is _STORED:
        waiting = CaseStatus(case.status) in WAITING
        queue_position = case.queue_position if waiting else None
    return {
        "id": case.id,
        "uid": case.uid,
        "token": case.token,
        "accession_number": case.accession_number,
        "status": case.status,
        "priority": case.priority,
        "specialty": case.specialty.code,
        "spoke": case.spoke.code,
        "patient": {
            "pseudonym": case.patient_pseudonym,
            "age": case.patient_age,
            "sex": case.patient_sex,
        },
        "complaint": case.complaint,
        "history": case.history,
        "vitals": case.vitals,
        "question": case.question,
        "raised_by": user_ref(case.raised_by),
        "assigned_to": user_ref(case.assigned_to),
        "queue_position": queue_position,
        "created_at": _iso(case.created_at),
        "submitted_at": _iso(case.submitted_at),
        "updated_at": _iso(case.updated_at),
        "version": case.version,
        "eta": _iso(eta.at if eta else case.eta_at) if queue_position is not None else None,
        "eta_not_before": _iso(eta.not_before) if eta and queue_position is not None else None,
        "sla_due_at": _iso(case.sla_due_at),
        "sla_breached": case.sla_breached_at is not None,
        "first_response_at": _iso(case.first_response_at),
        "routing_reason": case.routing_reason,
        # What the clinic may do now (the lifecycle decides; the clinic's pages offer these).
        "clinic_actions": [a.value for a in actions_of(Party.CLINIC, CaseStatus(case.status))],
    }


def history_dict(step: CaseHistory) -> dict[str, Any]:
    return {
        "at": _iso(step.at),
        "action": step.action,
        "from_status": step.from_status,
        "to_status": step.to_status,
        "actor": step.actor_label,
        "assigned_to": user_ref(step.assigned_to),
        "reason": step.reason,
    }


def advice_dict(advice: Advice) -> dict[str, Any]:
    case = advice.case
    return {
        "id": advice.id,
        "uid": advice.uid,
        "case_id": case.id,
        "case_uid": case.uid,
        "case_token": case.token,
        "spoke": {"code": case.spoke.code, "name": case.spoke.name},
        "patient": {
            "pseudonym": case.patient_pseudonym,
            "age": case.patient_age,
            "sex": case.patient_sex,
        },
        "version": advice.version,
        "supersedes_id": advice.supersedes_id,
        "specialist": {
            "username": advice.specialist.username,
            "name": advice.specialist_name,
            "qualification": advice.qualification,
            "registration_number": advice.registration_number,
        },
        "assessment": advice.assessment,
        "recommendations": advice.recommendations,
        "disposition": advice.disposition,
        "prescriptions": advice.prescriptions,
        "investigations": advice.investigations,
        "follow_up_date": _iso(advice.follow_up_date),
        "issued_at": _iso(advice.issued_at),
        # The code of the public verification URL printed as a QR code on the e-prescription.
        "verification_code": advice.verification_code,
    }


def message_dict(message: Message, author_label: str | None = None) -> dict[str, Any]:
    return {
        "id": message.id,
        "case_id": message.case_id,
        "author": user_ref(message.author)
        if message.author
        else {"username": author_label, "name": author_label},
        "text": message.text,
        "created_at": _iso(message.created_at),
    }


def study_dict(study: Study) -> dict[str, Any]:
    return {
        "study_uid": study.study_uid,
        "accession_number": study.accession_number,
        "patient_id": study.patient_id,
        "study_date": study.study_date,
        "description": study.description,
        "series": [
            {
                "series_uid": s.series_uid,
                "modality": s.modality,
                "number": s.number,
                "description": s.description,
                "instances": len(s.instances),
            }
            for s in study.series
        ],
    }
