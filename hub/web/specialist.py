"""The specialist's pages: the worklist (own cases, then the specialty pool) and the case page with
history, vitals, the image viewer, the thread, request for information, advice and referral."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue

from hub.domain.lifecycle import ADVISABLE, CLAIMABLE
from hub.services import page_reads as queries
from hub.services.audit import audit_cases
from hub.services.cases import CaseService
from hub.web.pages import page, page_errors, principal, services
from shared.enums import CaseStatus, Disposition, Role

bp = Blueprint("specialist", __name__)
page_errors(bp)


def _worklist() -> dict[str, object]:
    kw, me = services(), principal()
    session = kw["session"]
    mine, pool = queries.worklist(session, me)
    handled = queries.recently_handled(session, me)
    fresh = queries.images_after_advice(session, [c.id for c in handled])
    audit_cases(session, kw["clock"], me, "worklist", [*mine, *pool, *handled], kw["remote_addr"])
    session.commit()
    return {"mine": mine, "pool": pool, "handled": handled, "new_images": fresh}


@bp.get("/worklist")
@page(Role.SPECIALIST)
def worklist() -> ResponseReturnValue:
    return render_template("worklist.html", **_worklist())


@bp.get("/worklist/rows")
@page(Role.SPECIALIST)
def worklist_rows() -> ResponseReturnValue:
    """The worklist's tables alone: the page script swaps them in when an event arrives."""
    return render_template("_worklist_tables.html", **_worklist())


def _case_context(case_id: int) -> dict[str, object]:
    cases = CaseService(**services())
    me = principal()
    case = cases.get(me, case_id)
    mine = case.assigned_to_id == me.user_id
    return {
        "case": case,
        "history": cases.history(me, case_id),
        "messages": cases.messages(me, case_id),
        "advice": list(reversed(cases.advice_for(me, case_id))),
        "is_mine": mine,
        "can_claim": me.role is Role.SPECIALIST
        and CaseStatus(case.status) in CLAIMABLE
        and (case.assigned_to_id in (None, me.user_id)),
        "can_act": mine and CaseStatus(case.status) in ADVISABLE,
        "can_write": mine,  # roles table: a colleague of the specialty reads, the assignee writes
        "dispositions": [d.value for d in Disposition],
        "foreign_patient_ids": queries.foreign_patient_ids(services()["session"], case),
        "new_images": queries.images_after_advice(services()["session"], [case.id]).get(case.id, 0),
    }


@bp.get("/cases/<int:case_id>")
@page(Role.SPECIALIST, Role.SUPERVISOR)
def case_page(case_id: int) -> ResponseReturnValue:
    return render_template("case.html", **_case_context(case_id))


@bp.get("/cases/<int:case_id>/live")
@page(Role.SPECIALIST, Role.SUPERVISOR)
def case_live(case_id: int) -> ResponseReturnValue:
    """Status, thread and advice of the case: swapped in by the page script on an event."""
    return render_template("_case_live.html", **_case_context(case_id))


@bp.get("/cases/<int:case_id>/images")
@page(Role.SPECIALIST, Role.SUPERVISOR)
def case_images(case_id: int) -> ResponseReturnValue:
    """The viewer's index: series in order with their instances in slice order and frame counts."""
    CaseService(**services()).get(principal(), case_id)  # scope check, audited
    return jsonify(series=queries.viewer_series(services()["session"], case_id))
