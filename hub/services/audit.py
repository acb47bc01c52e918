"""The audit log (DESIGN.md, "Security rules"): the one owner of recording and reading who read or
changed what, when and from where: every read of patient data (lists included), every change,
every sign-in, failed sign-in and sign-out, with the individual user (also behind a spoke)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.persistence.models import AuditEntry, Case, Spoke, User
from hub.services.access import require_role
from hub.services.auth import Principal
from shared.clock import Clock
from shared.enums import Role


def audit(
    session: Session,
    clock: Clock,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: object,
    remote_addr: str = "",
    case_id: int | None = None,
    **detail: Any,
) -> None:
    """Add one entry in the caller's transaction (it is kept when that commits)."""
    if case_id is None and object_type == "case" and isinstance(object_id, int):
        case_id = object_id
    session.add(
        AuditEntry(
            at=clock.now(),
            user_id=principal.user_id,
            spoke_id=principal.spoke_service.id if principal.spoke_service else None,
            case_id=case_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id)[:64],
            remote_addr=(remote_addr or "")[:64],
            detail=detail,
        )
    )


def audit_sign_in(
    session: Session,
    clock: Clock,
    action: str,
    username: str,
    user: User | None,
    remote_addr: str,
    spoke: Spoke | None = None,
    **detail: Any,
) -> None:
    """A sign-in (``sign_in``), a refused one (``sign_in_failed``: the name tried is kept) or a
    sign-out; through a spoke, ``spoke`` is the clinic the doctor used."""
    audit(
        session,
        clock,
        Principal(user=user, spoke_service=spoke),
        action,
        "account",
        username[:64],
        remote_addr,
        **detail,
    )


def audit_cases(
    session: Session,
    clock: Clock,
    principal: Principal,
    what: str,
    cases: list[Case],
    remote_addr: str,
    **detail: Any,
) -> None:
    """A list read (cases, worklist, dashboard): one entry naming every case it showed."""
    audit(
        session,
        clock,
        principal,
        "list",
        what,
        len(cases),
        remote_addr,
        cases=[c.uid for c in cases],
        **detail,
    )


# -- reading the log ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    user: str | None = None
    case: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000


class AuditLog:
    """What supervisors read and export (``GET /api/v1/audit``, the audit page)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def search(self, principal: Principal, wanted: AuditFilter) -> list[dict[str, Any]]:
        require_role(principal, Role.SUPERVISOR)
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        if wanted.user:
            user_id = self.session.scalar(select(User.id).where(User.username == wanted.user))
            query = query.where(AuditEntry.user_id == (user_id or -1))
        if wanted.case is not None:
            query = query.where(AuditEntry.case_id == wanted.case)
        if wanted.since is not None:
            query = query.where(AuditEntry.at >= wanted.since)
        if wanted.until is not None:
            query = query.where(AuditEntry.at < wanted.until)
        rows = self.session.scalars(query.limit(wanted.limit)).all()
        return [self._row(r) for r in rows]

    def _row(self, entry: AuditEntry) -> dict[str, Any]:
        user = self.session.get(User, entry.user_id) if entry.user_id else None
        spoke = self.session.get(Spoke, entry.spoke_id) if entry.spoke_id else None
        return {
            "id": entry.id,
            "at": entry.at.isoformat(),
            "user": user.username if user else None,
            "role": user.role if user else ("spoke" if spoke else None),
            "spoke": spoke.code if spoke else None,
            "action": entry.action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "case_id": entry.case_id,
            "remote_addr": entry.remote_addr,
            "detail": entry.detail,
        }


CSV_COLUMNS = (
    "id",
    "at",
    "user",
    "role",
    "spoke",
    "action",
    "object_type",
    "object_id",
    "case_id",
    "remote_addr",
)


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_FHIR_ACTION = {"create": "C", "read": "R", "list": "R", "search": "E", "update": "U"}


def as_fhir_bundle(rows: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """The entries as a FHIR R4 Bundle of AuditEvent resources."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": audit_event(row, base_url)} for row in rows],
    }


def audit_event(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    action = str(row["action"])
    failed = action.endswith("_failed")
    login = action.startswith("sign_")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row["id"]),
        "type": (
            {
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "110114",
                "display": "User Authentication",
            }
            if login
            else {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            }
        ),
        "action": _FHIR_ACTION.get(action.split("_")[0], "E"),
        "recorded": row["at"],
        "outcome": "4" if failed else "0",
        "agent": [
            {
                "who": {"display": row["user"] or row["spoke"] or "unknown"},
                "requestor": True,
                "network": {"address": row["remote_addr"] or "unknown", "type": "2"},
            }
        ],
        "source": {"observer": {"display": base_url or "teleconsult hub"}},
        "entity": [
            {"what": {"display": f"{row['object_type']}/{row['object_id']}"}, "description": action}
        ],
    }
    if row["case_id"] is not None:
        event["entity"].append({"what": {"reference": f"ServiceRequest/{row['case_id']}"}})
    if row["spoke"]:
        event["agent"][0]["location"] = {"display": f"spoke {row['spoke']}"}
    return event
