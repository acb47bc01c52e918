"""Read-only views of the hub's data that the pages need and the REST API has no single call
for (the pages' read service: they never query models themselves)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from hub.domain.lifecycle import ACTIVE, HANDLED, OPEN, values
from hub.persistence.models import (
    Advice,
    Case,
    CaseHistory,
    Instance,
    Series,
    Specialty,
    Spoke,
    Study,
    User,
)
from hub.services.access import case_scope
from hub.services.auth import Principal
from hub.services.queueing import queue_order
from shared.enums import CaseStatus
from shared.sop_classes import DOCUMENT_CLASSES


def _with_refs(query: Any) -> Any:
    return query.options(
        selectinload(Case.specialty),
        selectinload(Case.spoke),
        selectinload(Case.assigned_to),
        selectinload(Case.raised_by),
    )


def worklist(
    session: Session, principal: Principal, limit: int = 200
) -> tuple[list[Case], list[Case]]:
    """The specialist's own open cases, then their specialties' pool; by priority, then wait."""
    user = principal.user
    assert user is not None
    mine = session.scalars(
        _with_refs(
            select(Case)
            .where(Case.assigned_to_id == user.id, Case.status.in_(values(ACTIVE)))
            .order_by(*queue_order())
        ).limit(limit)
    ).all()
    pool = session.scalars(
        _with_refs(
            select(Case)
            .where(
                case_scope(principal),
                Case.status == CaseStatus.QUEUED.value,
                Case.assigned_to_id.is_(None),
            )
            .order_by(*queue_order())
        ).limit(limit)
    ).all()
    return list(mine), list(pool)


def recently_handled(session: Session, principal: Principal, limit: int = 20) -> list[Case]:
    """The specialist's own cases already advised, referred or closed, newest first: to get back
    to a case just handled (a correction, a clinic's question)."""
    assert principal.user is not None
    return list(
        session.scalars(
            _with_refs(
                select(Case)
                .where(Case.assigned_to_id == principal.user.id, Case.status.in_(values(HANDLED)))
                .order_by(Case.updated_at.desc(), Case.id.desc())
            ).limit(limit)
        ).all()
    )


def open_cases(session: Session, limit: int = 300) -> list[Case]:
    """Every open case of the hub (the supervisor's reassign list), by priority then wait."""
    return list(
        session.scalars(
            _with_refs(
                select(Case).where(Case.status.in_(values(OPEN))).order_by(*queue_order())
            ).limit(limit)
        ).all()
    )


def breached_cases(session: Session, limit: int = 100) -> list[Case]:
    """Open cases past their SLA without a first response yet, the longest overdue first: the
    dashboard lists them apart so none hides in a long list."""
    return list(
        session.scalars(
            _with_refs(
                select(Case)
                .where(
                    Case.sla_breached_at.is_not(None),
                    Case.first_response_at.is_(None),
                    Case.status.in_(values(OPEN)),
                )
                .order_by(Case.sla_due_at, *queue_order())
            ).limit(limit)
        ).all()
    )


def foreign_patient_ids(session: Session, case: Case) -> list[str]:
    """Patient IDs in the case's studies that are not the case's pseudonym: images linked by
    accession number may belong to someone else, and the specialist must be told. De-identified
    studies (``ANON-...``, made by the clinic's bridge) are not flagged."""
    ids = session.scalars(select(Study.patient_id).where(Study.case_id == case.id).distinct())
    return sorted(p for p in ids if p and p != case.patient_pseudonym and not p.startswith("ANON-"))


def viewer_series(session: Session, case_id: int) -> list[dict[str, Any]]:
    """The case's series with their instances in slice order and frame counts (the viewer's
    index)."""
    studies = session.scalars(
        select(Study)
        .where(Study.case_id == case_id)
        .options(selectinload(Study.series).selectinload(Series.instances))
        .order_by(Study.id)
    ).all()
    out = []
    for study in studies:
        for series in study.series:
            instances = sorted(
                series.instances,
                key=lambda i: (i.number if i.number is not None else 1 << 30, i.id),
            )
            out.append(
                {
                    "study_uid": study.study_uid,
                    "series_uid": series.series_uid,
                    "modality": series.modality,
                    "number": series.number,
                    "description": series.description or study.description,
                    # A series of documents (PDF reports) is opened, not shown as slices.
                    "kind": "document"
                    if instances and all(i.sop_class_uid in DOCUMENT_CLASSES for i in instances)
                    else "image",
                    "instances": [
                        {"sop_uid": i.sop_uid, "number": i.number, "frames": i.frames}
                        for i in instances
                    ],
                }
            )
    return out


def by_specialty_status(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(Specialty.code, Case.status, func.count(Case.id))
        .join(Specialty, Specialty.id == Case.specialty_id)
        .group_by(Specialty.code, Case.status)
    ).all()
    table: dict[str, dict[str, int]] = {}
    for code, status, n in rows:
        table.setdefault(code, {})[status] = int(n)
    return table


def volumes_per_spoke(
    session: Session, today: datetime, days: int = 7
) -> tuple[list[str], dict[str, list[int]]]:
    """Cases submitted per spoke on each of the last ``days`` days (oldest first)."""
    start = today - timedelta(days=days - 1)
    labels = [(start + timedelta(days=i)).date().isoformat() for i in range(days)]
    rows = session.execute(
        select(Spoke.code, Case.submitted_at)
        .join(Spoke, Spoke.id == Case.spoke_id)
        .where(Case.submitted_at >= start)
    ).all()
    volumes = {
        code: [0] * days for code in session.scalars(select(Spoke.code).order_by(Spoke.code))
    }
    for code, at in rows:
        if at is None:
            continue
        index = (
            at.astimezone(today.tzinfo) if at.tzinfo else at
        ).date().toordinal() - start.date().toordinal()
        if 0 <= index < days:
            volumes.setdefault(code, [0] * days)[index] += 1
    return labels, volumes


def routing_decisions(session: Session, limit: int = 15) -> list[CaseHistory]:
    """The latest routing steps with their reasons."""
    return list(
        session.scalars(
            select(CaseHistory)
            .where(CaseHistory.action.in_(("route", "reroute", "reassign", "release", "escalate")))
            .options(selectinload(CaseHistory.assigned_to))
            .order_by(CaseHistory.id.desc())
            .limit(limit)
        ).all()
    )


def instance_count(session: Session, case_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(Instance.id)).join(Series).join(Study).where(Study.case_id == case_id)
        )
        or 0
    )


def spokes(session: Session) -> list[Spoke]:
    return list(session.scalars(select(Spoke).order_by(Spoke.code)))


def specialties(session: Session) -> list[Specialty]:
    return list(session.scalars(select(Specialty).order_by(Specialty.code)))


def users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def images_after_advice(session: Session, case_ids: list[int]) -> dict[int, int]:
    """Per case among ``case_ids`` that has advice: how many instances reached the hub after its
    newest advice (the specialist is told: they may change the advice)."""
    if not case_ids:
        return {}
    newest = (
        select(Advice.case_id, func.max(Advice.issued_at).label("issued_at"))
        .where(Advice.case_id.in_(case_ids))
        .group_by(Advice.case_id)
        .subquery()
    )
    rows = session.execute(
        select(Study.case_id, func.count(Instance.id))
        .join(Series, Series.study_id == Study.id)
        .join(Instance, Instance.series_id == Series.id)
        .join(newest, newest.c.case_id == Study.case_id)
        .where(Instance.created_at > newest.c.issued_at)
        .group_by(Study.case_id)
    ).all()
    return {int(case_id): int(n) for case_id, n in rows if case_id is not None}
