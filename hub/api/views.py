"""REST API of the hub under /api/v1 (DESIGN.md, "REST"). Thin: parse, call a service, answer.

Roles and scope are checked by the services (``hub.services.access`` and the lifecycle's
``authorize``); every view declares its contract for ``/openapi.json`` with ``@documented``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from hub.api.openapi import build_spec, documented
from hub.context import (
    bearer_token,
    current_principal,
    db_session,
    hub,
    remote_addr,
    request_token,
)
from hub.domain.policy import WorkflowPolicy
from hub.services.audit import AuditFilter, AuditLog, as_csv, as_fhir_bundle, audit
from hub.services.case_actions import CaseActions
from hub.services.cases import CaseService
from hub.services.dashboard import DashboardService
from hub.services.images import ImageService
from hub.services.serialize import advice_dict, history_dict, message_dict, study_dict, user_dict
from hub.services.signin import SignIn
from hub.services.staff import StaffService
from hub.services.supervision import SupervisionService
from shared import wire
from shared.schemas import (
    AdviceCreateSchema,
    AuditQuerySchema,
    CaseCreateSchema,
    CaseListQuerySchema,
    HoursSchema,
    InfoSchema,
    MessageCreateSchema,
    PasswordChangeSchema,
    PasswordResetSchema,
    ReasonSchema,
    ReassignSchema,
    ReferSchema,
    SpecialistQuerySchema,
    SpecialistUpdateSchema,
    SupervisionQuerySchema,
    SupervisionReassignSchema,
    TokenRequestSchema,
    UserCreateSchema,
    UserUpdateSchema,
    load_or_raise,
)

if TYPE_CHECKING:  # annotations only: the edge gets models from services
    from hub.persistence.models import Case

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_CONFLICT = (400, 401, 403, 404, 409)


def policy() -> WorkflowPolicy:
    """The workflow settings of this hub, read once."""
    ext = current_app.extensions
    if "teleconsult.policy" not in ext:
        ext["teleconsult.policy"] = WorkflowPolicy.from_settings(hub().settings)
    found: WorkflowPolicy = ext["teleconsult.policy"]
    return found


def _cases() -> CaseService:
    return CaseService(db_session(), hub().clock, remote_addr(), policy())


def _actions() -> CaseActions:
    return CaseActions(db_session(), hub().clock, remote_addr(), policy())


def _staff() -> StaffService:
    return StaffService(db_session(), hub().clock, remote_addr(), policy())


def _sign_in() -> SignIn:
    return SignIn(db_session(), hub().clock, remote_addr())


def _json() -> Any:
    return request.get_json(silent=True)


def _json_or_empty() -> Any:
    body = _json()
    return {} if body is None and not request.get_data() else body


def _case_answer(case: Case) -> ResponseReturnValue:
    return jsonify(_cases().to_dict(case))


# -- sign-in and reference data ---------------------------------------------------------------


@bp.post("/auth/token")
@documented(
    "Sign in: a bearer token (rate-limited per address and per account: 429 with Retry-After)",
    body=TokenRequestSchema,
    answer=wire.TokenResponseSchema,
    errors=(400, 401, 429),
    tag="auth",
)
def issue_token() -> ResponseReturnValue:
    data = load_or_raise(TokenRequestSchema(), _json())
    ttl = hub().settings.token_ttl_s
    token, user = _sign_in().sign_in(data["username"], data["password"], ttl, via="api")
    return jsonify(access_token=token, token_type="Bearer", expires_in=ttl, user=user_dict(user))


@bp.post("/auth/verify")
@documented(
    "A spoke checks one of its clinic doctors' password (no token is made); anything else: 401",
    roles="spoke",
    body=TokenRequestSchema,
    answer=wire.UserSchema,
    errors=(400, 401, 403, 429),
    tag="auth",
)
def verify_doctor() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(TokenRequestSchema(), _json())
    return jsonify(
        user_dict(_sign_in().verify_doctor(principal, data["username"], data["password"]))
    )


@bp.post("/auth/logout")
@documented("Revoke the caller's token", status=204, errors=(401,), tag="auth")
def logout() -> ResponseReturnValue:
    _sign_in().sign_out(current_principal(), bearer_token(), via="api")
    return "", 204


@bp.post("/me/password")
@documented(
    "Change one's own password (the rule: docs/security.md); other logins end",
    body=PasswordChangeSchema,
    status=204,
    errors=(400, 401, 403),
    tag="auth",
)
def change_password() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(PasswordChangeSchema(), _json())
    _sign_in().change_password(
        principal, data["current_password"], data["new_password"], request_token()
    )
    return "", 204


@bp.get("/me")
@documented("Who the caller is", answer=wire.UserSchema, errors=(401,), tag="auth")
def me() -> ResponseReturnValue:
    principal = current_principal()
    if principal.user is not None:
        return jsonify(user_dict(principal.user))
    assert principal.spoke_service is not None
    return jsonify(
        spoke={"code": principal.spoke_service.code, "name": principal.spoke_service.name}
    )


@bp.get("/specialties")
@documented(
    "The hub's specialties", answer=wire.SpecialtySchema, many=True, errors=(401,), tag="hub"
)
def specialties() -> ResponseReturnValue:
    current_principal()
    return jsonify([{"code": s.code, "name": s.name} for s in _staff().active_specialties()])


@bp.get("/specialties/<code>/hours")
@documented(
    "A specialty's operating hours and whether it is open now",
    answer=wire.SpecialtyHoursSchema,
    errors=(401, 404),
    tag="hub",
)
def specialty_hours(code: str) -> ResponseReturnValue:
    current_principal()
    return jsonify(_staff().hours_by_code(code))


@bp.put("/specialties/<code>/hours")
@documented(
    "Set a specialty's operating hours ('mon-fri 09:00-12:00' or '24h')",
    roles="admin",
    body=HoursSchema,
    answer=wire.SpecialtyHoursSchema,
    tag="hub",
)
def set_specialty_hours(code: str) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(HoursSchema(), _json())
    staff = _staff()
    return jsonify(staff.hours_of(staff.set_hours(principal, code, data["hours"])))


# -- cases ------------------------------------------------------------------------------------


@bp.post("/cases")
@documented(
    "Raise a case (Idempotency-Key header or uid: same key, same case)",
    roles="spoke_doctor, spoke",
    body=CaseCreateSchema,
    answer=wire.CaseSchema,
    status=201,
    errors=_CONFLICT,
)
def raise_case() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(CaseCreateSchema(), _json())
    service = _cases()
    case, created = service.raise_case(principal, data, request.headers.get("Idempotency-Key"))
    return jsonify(service.to_dict(case)), 201 if created else 200


@bp.get("/cases")
@documented(
    "Cases the caller may see, filtered and paginated",
    query=CaseListQuerySchema,
    answer=wire.CasePageSchema,
    errors=(400, 401, 403),
)
def list_cases() -> ResponseReturnValue:
    principal = current_principal()
    filters = load_or_raise(CaseListQuerySchema(), request.args.to_dict())
    service = _cases()
    rows, total = service.list(principal, filters)
    return jsonify(
        items=[service.to_dict(c) for c in rows],
        total=total,
        page=filters["page"],
        per_page=filters["per_page"],
    )


@bp.get("/cases/<int:case_id>")
@documented("One case (the read is audited)", answer=wire.CaseSchema, errors=(401, 404))
def get_case(case_id: int) -> ResponseReturnValue:
    service = _cases()
    return jsonify(service.to_dict(service.get(current_principal(), case_id)))


@bp.get("/cases/<int:case_id>/history")
@documented(
    "Who did what to the case, when, and why (routing reasons included)",
    answer=wire.HistoryStepSchema,
    many=True,
    errors=(401, 404),
)
def case_history(case_id: int) -> ResponseReturnValue:
    return jsonify([history_dict(h) for h in _cases().history(current_principal(), case_id)])


@bp.post("/cases/<int:case_id>/claim")
@documented(
    "Start review: claim from the pool, or open one's own waiting case",
    roles="specialist",
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def claim_case(case_id: int) -> ResponseReturnValue:
    return _case_answer(_actions().claim(current_principal(), case_id))


@bp.post("/cases/<int:case_id>/release")
@documented(
    "Give the case back: to another specialist with room, else the pool",
    roles="specialist (assignee)",
    body=ReasonSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def release_case(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(ReasonSchema(), _json_or_empty())
    return _case_answer(_actions().release(principal, case_id, data["reason"]))


@bp.post("/cases/<int:case_id>/request-info")
@documented(
    "Ask the clinic for more (the case becomes needs_info)",
    roles="specialist (assignee)",
    body=InfoSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def request_info(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(InfoSchema(), _json())
    return _case_answer(_actions().request_info(principal, case_id, data["text"]))


@bp.post("/cases/<int:case_id>/provide-info")
@documented(
    "Answer the specialist's question; the case returns to the same specialist",
    roles="spoke_doctor, spoke",
    body=InfoSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def provide_info(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(InfoSchema(), _json())
    return _case_answer(_actions().provide_info(principal, case_id, data["text"]))


@bp.post("/cases/<int:case_id>/refer")
@documented(
    "Refer the patient for physical transfer",
    roles="specialist (assignee)",
    body=ReferSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def refer_case(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(ReferSchema(), _json())
    return _case_answer(_actions().refer(principal, case_id, data["reason"], data["instructions"]))


@bp.post("/cases/<int:case_id>/close")
@documented(
    "Close an advised or referred case",
    roles="spoke_doctor, spoke, specialist (assignee)",
    body=ReasonSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def close_case(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(ReasonSchema(), _json_or_empty())
    return _case_answer(_actions().close(principal, case_id, data["reason"]))


@bp.post("/cases/<int:case_id>/cancel")
@documented(
    "Cancel a case before review has started",
    roles="spoke_doctor, spoke",
    body=ReasonSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def cancel_case(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(ReasonSchema(), _json_or_empty())
    return _case_answer(_actions().cancel(principal, case_id, data["reason"]))


@bp.post("/cases/<int:case_id>/reassign")
@documented(
    "Hand the case to a named specialist of its specialty",
    roles="supervisor",
    body=ReassignSchema,
    answer=wire.CaseSchema,
    errors=_CONFLICT,
)
def reassign_case(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(ReassignSchema(), _json())
    return _case_answer(_actions().reassign(principal, case_id, data["specialist"], data["reason"]))


@bp.post("/cases/<int:case_id>/advice")
@documented(
    "Issue advice (a second one is a new version superseding the first)",
    roles="specialist (assignee)",
    body=AdviceCreateSchema,
    answer=wire.AdviceSchema,
    status=201,
    errors=_CONFLICT,
)
def issue_advice(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(AdviceCreateSchema(), _json())
    return jsonify(advice_dict(_cases().issue_advice(principal, case_id, data))), 201


@bp.get("/cases/<int:case_id>/advice")
@documented(
    "Every version of the case's advice", answer=wire.AdviceSchema, many=True, errors=(401, 404)
)
def list_advice(case_id: int) -> ResponseReturnValue:
    return jsonify([advice_dict(a) for a in _cases().advice_for(current_principal(), case_id)])


@bp.get("/cases/<int:case_id>/messages")
@documented("The case's messages", answer=wire.MessageSchema, many=True, errors=(401, 404))
def list_messages(case_id: int) -> ResponseReturnValue:
    return jsonify([message_dict(m) for m in _cases().messages(current_principal(), case_id)])


@bp.post("/cases/<int:case_id>/messages")
@documented(
    "Write to the other side", body=MessageCreateSchema, answer=wire.MessageSchema, status=201
)
def post_message(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(MessageCreateSchema(), _json())
    message = _cases().post_message(principal, case_id, data["text"])
    return jsonify(message_dict(message, principal.label)), 201


@bp.get("/cases/<int:case_id>/studies")
@documented("The case's imaging studies", answer=wire.StudySchema, many=True, errors=(401, 404))
def case_studies(case_id: int) -> ResponseReturnValue:
    h = hub()
    service = ImageService(db_session(), h.clock, h.image_dir, remote_addr())
    return jsonify([study_dict(s) for s in service.studies_of_case(current_principal(), case_id)])


# -- staff, supervision, dashboard -------------------------------------------------------------


@bp.post("/users")
@documented(
    "Add a user; clinic doctors and specialists are placed in supervision groups",
    roles="admin",
    body=UserCreateSchema,
    answer=wire.UserSchema,
    status=201,
    errors=_CONFLICT,
    tag="staff",
)
def create_user() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(UserCreateSchema(), _json())
    return jsonify(user_dict(_staff().create_user(principal, data))), 201


@bp.patch("/users/<int:user_id>")
@documented(
    "Deactivate or reactivate a user of any role (not oneself); their logins stop at once",
    roles="admin",
    body=UserUpdateSchema,
    answer=wire.UserStatusSchema,
    tag="staff",
)
def update_user(user_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(UserUpdateSchema(), _json())
    user = _staff().set_active(principal, user_id, data["active"])
    return jsonify(
        user_id=user.id,
        id=user.id,
        username=user.username,
        name=user.name,
        role=user.role,
        active=user.active,
    )


@bp.post("/users/<int:user_id>/password")
@documented(
    "Reset a user's password (the rule: docs/security.md); every login of theirs ends",
    roles="admin",
    body=PasswordResetSchema,
    status=204,
    tag="staff",
)
def reset_password(user_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(PasswordResetSchema(), _json())
    _sign_in().reset_password(principal, user_id, data["new_password"])
    return "", 204


@bp.get("/audit")
@documented(
    "The audit log, newest first (filters user, case, from, to); format=csv or fhir to export",
    roles="supervisor",
    query=AuditQuerySchema,
    answer=wire.AuditEntrySchema,
    many=True,
    errors=(400, 401, 403),
    tag="hub",
)
def audit_log() -> ResponseReturnValue:
    principal = current_principal()
    query = load_or_raise(AuditQuerySchema(), request.args.to_dict())
    wanted = AuditFilter(
        user=query.get("user"),
        case=query.get("case"),
        since=query.get("since"),
        until=query.get("until"),
        limit=query["limit"],
    )
    rows = AuditLog(db_session()).search(principal, wanted)
    if query["format"] == "csv":
        return Response(
            as_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    if query["format"] == "fhir":
        answer = jsonify(as_fhir_bundle(rows, request.host_url))
        answer.content_type = "application/fhir+json"
        return answer
    return jsonify(rows)


@bp.get("/specialists")
@documented(
    "Specialists with duty, on-call and presence",
    roles="supervisor, admin, specialist",
    query=SpecialistQuerySchema,
    answer=wire.SpecialistSchema,
    many=True,
    tag="staff",
)
def list_specialists() -> ResponseReturnValue:
    principal = current_principal()
    query = load_or_raise(SpecialistQuerySchema(), request.args.to_dict())
    staff = _staff()
    return jsonify(
        [staff.describe(u) for u in staff.specialists(principal, query.get("specialty"))]
    )


@bp.patch("/specialists/<int:user_id>")
@documented(
    "Duty (the specialist, a supervisor), on-call, schedule, case limit, active (admin); "
    "going off duty or being deactivated reroutes unstarted cases",
    body=SpecialistUpdateSchema,
    answer=wire.SpecialistSchema,
    tag="staff",
)
def update_specialist(user_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(SpecialistUpdateSchema(), _json())
    staff = _staff()
    return jsonify(staff.describe(staff.update_specialist(principal, user_id, data)))


@bp.get("/supervision")
@documented(
    "Supervision groups per specialty, the unsupervised and the shortfall",
    roles="supervisor, admin",
    query=SupervisionQuerySchema,
    answer=wire.SupervisionGroupSchema,
    many=True,
    tag="staff",
)
def supervision() -> ResponseReturnValue:
    principal = current_principal()
    query = load_or_raise(SupervisionQuerySchema(), request.args.to_dict())
    service = SupervisionService(db_session(), hub().clock, policy(), remote_addr())
    return jsonify(service.overview(principal, query.get("specialty")))


@bp.post("/supervision/reassign")
@documented(
    "Move a clinic doctor to another supervising specialist (never beyond the ratio)",
    roles="supervisor",
    body=SupervisionReassignSchema,
    answer=wire.SupervisionGroupSchema,
    many=True,
    errors=_CONFLICT,
    tag="staff",
)
def supervision_reassign() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(SupervisionReassignSchema(), _json())
    service = SupervisionService(db_session(), hub().clock, policy(), remote_addr())
    service.reassign(principal, data["specialty"], data["doctor"], data["specialist"])
    db_session().commit()
    return jsonify(service.overview(principal, data["specialty"]))


@bp.get("/dashboard/summary")
@documented(
    "Counts, waits, SLA breaches, specialists, shortfall, spokes",
    roles="supervisor, admin",
    answer=wire.DashboardSummarySchema,
    errors=(401, 403),
    tag="hub",
)
def dashboard_summary() -> ResponseReturnValue:
    principal = current_principal()
    summary = DashboardService(db_session(), hub().clock, policy()).summary(principal)
    audit(db_session(), hub().clock, principal, "read", "dashboard", "summary", remote_addr())
    db_session().commit()
    return jsonify(summary)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI document of this API, generated from the schemas (public)."""
    if "teleconsult.openapi" not in current_app.extensions:
        current_app.extensions["teleconsult.openapi"] = build_spec(current_app)
    return jsonify(current_app.extensions["teleconsult.openapi"])
