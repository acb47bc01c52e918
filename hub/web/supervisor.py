"""The supervisor's live dashboard: cases by status and specialty, waits, SLA breaches, each
specialist's load and supervisees against the ratio, the shortfall, volumes per spoke per day,
routing decisions with reasons, and reassigning a case."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from hub.services import page_reads as queries
from hub.services.audit import AuditFilter, AuditLog, audit_cases
from hub.services.dashboard import DashboardService
from hub.services.staff import StaffService
from hub.web import charts
from hub.web.pages import page, page_errors, principal, services
from shared.enums import CaseStatus, Role
from shared.errors import TeleconsultError
from shared.schemas import AuditQuerySchema, load_or_raise

bp = Blueprint("supervisor", __name__)
page_errors(bp)


def _dashboard() -> dict[str, Any]:
    kw = services()
    session = kw["session"]
    summary = DashboardService(session, kw["clock"], kw["policy"]).summary(principal())
    now = kw["clock"].now().astimezone(kw["policy"].timezone)
    labels, volumes = queries.volumes_per_spoke(
        session, now.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    open_cases = queries.open_cases(session)
    audit_cases(session, kw["clock"], principal(), "dashboard", open_cases, kw["remote_addr"])
    session.commit()
    specialists = StaffService(**kw).specialists(principal())
    by_code: dict[str, list[str]] = {}
    for user in specialists:
        if user.active:
            for s in user.specialties:
                by_code.setdefault(s.code, []).append(user.username)
    return {
        "summary": summary,
        "status_chart": charts.horizontal_bars(
            {s.value: summary["by_status"].get(s.value, 0) for s in CaseStatus}
        ),
        "by_specialty": queries.by_specialty_status(session),
        "statuses": [s.value for s in CaseStatus],
        "volume_chart": charts.grouped_bars(labels, volumes),
        "decisions": queries.routing_decisions(session),
        "open_cases": open_cases,
        "breached_cases": queries.breached_cases(session),
        "specialists_by_specialty": by_code,
    }


@bp.get("/dashboard")
@page(Role.SUPERVISOR)
def dashboard() -> ResponseReturnValue:
    return render_template("dashboard.html", **_dashboard())


@bp.get("/dashboard/live")
@page(Role.SUPERVISOR)
def dashboard_live() -> ResponseReturnValue:
    return render_template("_dashboard_body.html", **_dashboard())


@bp.get("/audit")
@page(Role.SUPERVISOR)
def audit() -> ResponseReturnValue:
    """The audit log with the API's filters; the same filters export it as CSV or FHIR."""
    error: str | None = None
    try:
        query = load_or_raise(AuditQuerySchema(), request.args.to_dict())
    except TeleconsultError as exc:
        query, error = {"limit": 200}, exc.message
    wanted = AuditFilter(
        user=query.get("user") or None,
        case=query.get("case"),
        since=query.get("since"),
        until=query.get("until"),
        limit=min(int(query.get("limit", 200)), 500),
    )
    rows = AuditLog(services()["session"]).search(principal(), wanted)
    filters = {k: request.args.get(k, "") for k in ("user", "case", "from", "to")}
    return render_template("audit.html", rows=rows, filters=filters, error=error)
