"""A case as a FHIR R4 Bundle (DESIGN.md, "Documents and exchange"), so that a hospital system
can take the consult in: the pseudonymous Patient, the consult request (ServiceRequest), its
progress (Task, status mapped from the lifecycle), the thread (Communication), the images
(ImagingStudy with an Endpoint to the hub's WADO-RS), the prescription (MedicationRequest) and
each advice version (ClinicalImpression).

Resources are plain FHIR JSON; ids are stable (derived from the case's uid), references are
``urn:uuid:`` full URLs within the bundle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.lifecycle import Action
from hub.persistence.models import Advice, Case, CaseHistory, Message, Study
from hub.services.access import require_read
from hub.services.audit import audit
from hub.services.auth import Principal
from shared.clock import Clock
from shared.enums import CaseStatus, Priority

# FHIR Task.status for each state of the case lifecycle (every state has one: a test checks).
TASK_STATUS: dict[CaseStatus, str] = {
    CaseStatus.DRAFT: "draft",
    CaseStatus.SUBMITTED: "requested",
    CaseStatus.QUEUED: "ready",
    CaseStatus.ASSIGNED: "accepted",
    CaseStatus.IN_REVIEW: "in-progress",
    CaseStatus.NEEDS_INFO: "on-hold",
    CaseStatus.ADVISED: "completed",
    CaseStatus.REFERRED: "completed",
    CaseStatus.CLOSED: "completed",
    CaseStatus.CANCELLED: "cancelled",
}
# ServiceRequest.status: the request stays active until the case is closed or cancelled.
REQUEST_STATUS: dict[CaseStatus, str] = {
    **{status: "active" for status in CaseStatus},
    CaseStatus.DRAFT: "draft",
    CaseStatus.CLOSED: "completed",
    CaseStatus.CANCELLED: "revoked",
}
PRIORITY: dict[Priority, str] = {
    Priority.EMERGENCY: "stat",
    Priority.URGENT: "urgent",
    Priority.ROUTINE: "routine",
}
SYSTEM = "urn:teleconsult"
DICOM_UID = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_NS = uuid.UUID("6d7e0f5c-3a57-4b8e-9a51-2f1f8f0c7a11")


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def _ref(resource_id: str, display: str | None = None) -> dict[str, str]:
    ref = {"reference": f"urn:uuid:{resource_id}"}
    if display:
        ref["display"] = display
    return ref


def _when(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class FhirExport:
    session: Session
    clock: Clock
    remote_addr: str = ""

    def bundle(self, principal: Principal, case_id: int, base_url: str) -> dict[str, Any]:
        """The Bundle (type ``collection``) of a case the caller may read; the read is audited."""
        case = require_read(principal, self.session.get(Case, case_id))
        audit(
            self.session, self.clock, principal, "read", "case", case.uid, self.remote_addr, fhir=1
        )
        self.session.commit()
        return CaseBundle(case, base_url.rstrip("/"), self._parts(case)).build(self.clock.now())

    def _parts(self, case: Case) -> dict[str, list[Any]]:
        def rows(model: Any, *order: Any) -> list[Any]:
            return list(
                self.session.scalars(select(model).where(model.case_id == case.id).order_by(*order))
            )

        # Thread items kept as history steps (questions and answers are Messages).
        noted = {Action.REFER.value, Action.REASSIGN.value}
        referrals = [h for h in rows(CaseHistory, CaseHistory.id) if h.action in noted]
        return {
            "messages": rows(Message, Message.id),
            "advice": rows(Advice, Advice.version),
            "studies": rows(Study, Study.id),
            "referrals": referrals,
        }


class CaseBundle:
    """Builds the resources of one case."""

    def __init__(self, case: Case, base_url: str, parts: dict[str, list[Any]]) -> None:
        self.case = case
        self.base_url = base_url
        self.parts = parts
        self.patient_id = _id(case.uid, "patient")
        self.request_id = _id(case.uid, "request")
        self.endpoint_id = _id(case.uid, "wado-rs")

    def build(self, now: datetime) -> dict[str, Any]:
        resources = [self.patient(), self.service_request(), self.task()]
        resources += [self.message(m) for m in self.parts["messages"]]
        resources += [self.referral(h) for h in self.parts["referrals"]]
        if self.parts["studies"]:
            resources.append(self.endpoint())
            resources += [self.imaging_study(s) for s in self.parts["studies"]]
        advice: list[Advice] = self.parts["advice"]
        newest = advice[-1].version if advice else None
        for a in advice:
            resources.append(self.impression(a))
            resources += [
                self.medication(a, n, item, a.version == newest)
                for n, item in enumerate(a.prescriptions or [], 1)
            ]
        return {
            "resourceType": "Bundle",
            "id": _id(self.case.uid, "bundle"),
            "identifier": {"system": f"{SYSTEM}:case", "value": self.case.uid},
            "type": "collection",
            "timestamp": now.isoformat(),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": _prune(r)} for r in resources],
        }

    # -- who and what was asked ---------------------------------------------------------------
    def patient(self) -> dict[str, Any]:
        case = self.case
        return {
            "resourceType": "Patient",
            "id": self.patient_id,
            # Pseudonymised: the clinic's pseudonym only, no name, no date of birth.
            "meta": {
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                        "code": "PSEUDED",
                        "display": "pseudonymized",
                    }
                ]
            },
            "identifier": [
                {
                    "system": f"{SYSTEM}:spoke:{case.spoke.code}:pseudonym",
                    "value": case.patient_pseudonym,
                }
            ],
            "gender": case.patient_sex,
            "managingOrganization": {"display": case.spoke.name or case.spoke.code},
        }

    def service_request(self) -> dict[str, Any]:
        case = self.case
        notes = [f"Patient age: {case.patient_age} years", f"Question: {case.question}"]
        if case.history:
            notes.append(f"History: {case.history}")
        if case.vitals:
            notes.append("Vitals: " + ", ".join(f"{k} {v}" for k, v in case.vitals.items()))
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "id": self.request_id,
            "identifier": [
                {"system": f"{SYSTEM}:accession", "value": case.accession_number},
                {"system": f"{SYSTEM}:case", "value": case.uid},
            ],
            "requisition": {"system": f"{SYSTEM}:token", "value": case.token or case.uid},
            "status": REQUEST_STATUS[CaseStatus(case.status)],
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "11429006",
                            "display": "Consultation",
                        }
                    ],
                    "text": "Teleconsultation",
                }
            ],
            "priority": PRIORITY[Priority(case.priority)],
            "code": {"text": f"Teleconsultation: {case.specialty.name}"},
            "subject": _ref(self.patient_id),
            "authoredOn": _when(case.submitted_at or case.created_at),
            "performerType": {
                "coding": [
                    {
                        "system": f"{SYSTEM}:specialty",
                        "code": case.specialty.code,
                        "display": case.specialty.name,
                    }
                ]
            },
            "reasonCode": [{"text": case.complaint}],
            "note": [{"text": n} for n in notes],
        }
        if case.raised_by is not None:
            resource["requester"] = {"display": case.raised_by.name}
        return resource

    def task(self) -> dict[str, Any]:
        case = self.case
        resource: dict[str, Any] = {
            "resourceType": "Task",
            "id": _id(case.uid, "task"),
            "identifier": [{"system": f"{SYSTEM}:token", "value": case.token or case.uid}],
            "basedOn": [_ref(self.request_id)],
            "status": TASK_STATUS[CaseStatus(case.status)],
            "businessStatus": {"text": case.status},
            "intent": "order",
            "priority": PRIORITY[Priority(case.priority)],
            "focus": _ref(self.request_id),
            "for": _ref(self.patient_id),
            "authoredOn": _when(case.submitted_at or case.created_at),
            "lastModified": _when(case.updated_at),
        }
        if case.assigned_to is not None:
            resource["owner"] = {"display": case.assigned_to.name}
        return resource

    # -- the thread ---------------------------------------------------------------------------
    def _communication(
        self, rid: str, sent: datetime, sender: str, text: str, kind: str
    ) -> dict[str, Any]:
        return {
            "resourceType": "Communication",
            "id": rid,
            "basedOn": [_ref(self.request_id)],
            "status": "completed",
            "category": [{"coding": [{"system": f"{SYSTEM}:thread-kind", "code": kind}]}],
            "subject": _ref(self.patient_id),
            "sent": _when(sent),
            "sender": {"display": sender},
            "payload": [{"contentString": text}],
        }

    def message(self, message: Message) -> dict[str, Any]:
        author = message.author
        sender = author.name if author is not None else f"clinic {self.case.spoke.code}"
        return self._communication(
            _id(self.case.uid, "message", message.id),
            message.created_at,
            sender,
            message.text,
            "message",
        )

    def referral(self, step: CaseHistory) -> dict[str, Any]:
        """A referral or a reassignment, as the clinic's thread shows it."""
        kind = "referral" if step.action == Action.REFER.value else "reassigned"
        return self._communication(
            _id(self.case.uid, kind, step.id), step.at, step.actor_label, step.reason or kind, kind
        )

    # -- images -------------------------------------------------------------------------------
    def endpoint(self) -> dict[str, Any]:
        return {
            "resourceType": "Endpoint",
            "id": self.endpoint_id,
            "status": "active",
            "connectionType": {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                "code": "dicom-wado-rs",
            },
            "name": "Teleconsult hub DICOMweb (WADO-RS)",
            "payloadType": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                            "code": "DICOM WADO-RS",
                        }
                    ]
                }
            ],
            "payloadMimeType": ["application/dicom"],
            "address": f"{self.base_url}/dicomweb",
        }

    def imaging_study(self, study: Study) -> dict[str, Any]:
        series = [
            {
                "uid": s.series_uid,
                "number": s.number,
                "modality": {"system": DCM, "code": s.modality or "OT"},
                "description": s.description or None,
                "numberOfInstances": len(s.instances),
                "endpoint": [_ref(self.endpoint_id)],
                "instance": [
                    {
                        "uid": i.sop_uid,
                        "sopClass": {
                            "system": "urn:ietf:rfc:3986",
                            "code": f"urn:oid:{i.sop_class_uid}",
                        },
                        "number": i.number,
                    }
                    for i in s.instances
                ],
            }
            for s in study.series
        ]
        modalities = sorted({s.modality or "OT" for s in study.series})
        return {
            "resourceType": "ImagingStudy",
            "id": _id(self.case.uid, "study", study.study_uid),
            "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{study.study_uid}"}],
            "status": "available",
            "modality": [{"system": DCM, "code": m} for m in modalities],
            "subject": _ref(self.patient_id),
            "basedOn": [_ref(self.request_id)],
            "endpoint": [_ref(self.endpoint_id)],
            "numberOfSeries": len(series),
            "numberOfInstances": sum(len(s.instances) for s in study.series),
            "description": study.description or None,
            "series": series,
        }

    # -- the advice ---------------------------------------------------------------------------
    def impression(self, advice: Advice) -> dict[str, Any]:
        notes = [
            f"Recommendations: {advice.recommendations}",
            f"Disposition: {advice.disposition}",
        ]
        if advice.investigations:
            notes.append(f"Investigations: {advice.investigations}")
        if advice.follow_up_date:
            notes.append(f"Follow-up: {advice.follow_up_date.isoformat()}")
        resource: dict[str, Any] = {
            "resourceType": "ClinicalImpression",
            "id": _id(self.case.uid, "advice", advice.version),
            "identifier": [{"system": f"{SYSTEM}:advice", "value": advice.uid}],
            "status": "completed",
            "description": f"Teleconsult advice version {advice.version}",
            "subject": _ref(self.patient_id),
            "date": _when(advice.issued_at),
            "assessor": {"display": _signed_by(advice)},
            "summary": advice.assessment,
            "note": [{"text": n} for n in notes],
        }
        if advice.version > 1:
            resource["previous"] = _ref(_id(self.case.uid, "advice", advice.version - 1))
        return resource

    def medication(
        self, advice: Advice, n: int, item: dict[str, Any], current: bool
    ) -> dict[str, Any]:
        drug = " ".join(str(item.get(k) or "") for k in ("drug", "strength")).strip()
        dosage = ", ".join(
            str(item[k]) for k in ("dose", "route", "frequency", "duration") if item.get(k)
        )
        instruction: dict[str, Any] = {"sequence": n, "text": dosage}
        if item.get("route"):
            instruction["route"] = {"text": item["route"]}
        if item.get("instructions"):
            instruction["patientInstruction"] = item["instructions"]
        return {
            "resourceType": "MedicationRequest",
            "id": _id(self.case.uid, "advice", advice.version, "rx", n),
            "groupIdentifier": {"system": f"{SYSTEM}:advice", "value": advice.uid},
            # A corrected advice replaces the prescription of the version before it.
            "status": "active" if current else "cancelled",
            "intent": "order",
            "medicationCodeableConcept": {"text": drug},
            "subject": _ref(self.patient_id),
            "authoredOn": _when(advice.issued_at),
            "requester": {"display": _signed_by(advice)},
            "basedOn": [_ref(self.request_id)],
            "dosageInstruction": [instruction],
        }


def _signed_by(advice: Advice) -> str:
    parts = [advice.specialist_name, advice.qualification]
    if advice.registration_number:
        parts.append(f"Reg. no. {advice.registration_number}")
    return ", ".join(p for p in parts if p)


def _prune(value: Any) -> Any:
    """Drop empty values: FHIR forbids ``null`` and empty strings."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
