"""REST API of the hub under /api/v1 (DESIGN.md, "REST"). Thin: parse, call a service, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from hub.context import bearer_token, current_principal, db_session, hub, remote_addr
from hub.persistence.models import Specialty
from hub.services.auth import login, revoke
from hub.services.cases import CaseService
from hub.services.images import ImageService
from hub.services.serialize import advice_dict, message_dict, study_dict, user_dict
from shared.schemas import (
    AdviceCreateSchema,
    CaseCreateSchema,
    CaseListQuerySchema,
    MessageCreateSchema,
    TokenRequestSchema,
    load_or_raise,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _cases() -> CaseService:
    return CaseService(db_session(), hub().clock, remote_addr())


def _json() -> Any:
    return request.get_json(silent=True)


@bp.post("/auth/token")
def issue_token() -> ResponseReturnValue:
    data = load_or_raise(TokenRequestSchema(), _json())
    session = db_session()
    ttl = hub().settings.token_ttl_s
    token, user = login(session, data["username"], data["password"], hub().clock, ttl)
    session.commit()
    return jsonify(access_token=token, token_type="Bearer", expires_in=ttl, user=user_dict(user))


@bp.post("/auth/logout")
def logout() -> ResponseReturnValue:
    current_principal()
    revoke(db_session(), bearer_token(), hub().clock)
    db_session().commit()
    return "", 204


@bp.get("/me")
def me() -> ResponseReturnValue:
    principal = current_principal()
    if principal.user is not None:
        return jsonify(user_dict(principal.user))
    assert principal.spoke_service is not None
    return jsonify(spoke={"code": principal.spoke_service.code, "name": principal.spoke_service.name})


@bp.get("/specialties")
def specialties() -> ResponseReturnValue:
    current_principal()
    rows = db_session().scalars(select(Specialty).where(Specialty.active).order_by(Specialty.code))
    return jsonify([{"code": s.code, "name": s.name} for s in rows])


@bp.post("/cases")
def raise_case() -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(CaseCreateSchema(), _json())
    service = _cases()
    case, created = service.raise_case(principal, data, request.headers.get("Idempotency-Key"))
    return jsonify(service.to_dict(case)), 201 if created else 200


@bp.get("/cases")
def list_cases() -> ResponseReturnValue:
    principal = current_principal()
    filters = load_or_raise(CaseListQuerySchema(), request.args.to_dict())
    service = _cases()
    rows, total = service.list(principal, filters)
    return jsonify(
        items=[service.to_dict(c) for c in rows], total=total, page=filters["page"], per_page=filters["per_page"]
    )


@bp.get("/cases/<int:case_id>")
def get_case(case_id: int) -> ResponseReturnValue:
    service = _cases()
    return jsonify(service.to_dict(service.get(current_principal(), case_id)))


@bp.post("/cases/<int:case_id>/advice")
def issue_advice(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(AdviceCreateSchema(), _json())
    return jsonify(advice_dict(_cases().issue_advice(principal, case_id, data))), 201


@bp.get("/cases/<int:case_id>/advice")
def list_advice(case_id: int) -> ResponseReturnValue:
    return jsonify([advice_dict(a) for a in _cases().advice_for(current_principal(), case_id)])


@bp.get("/cases/<int:case_id>/messages")
def list_messages(case_id: int) -> ResponseReturnValue:
    return jsonify([message_dict(m) for m in _cases().messages(current_principal(), case_id)])


@bp.post("/cases/<int:case_id>/messages")
def post_message(case_id: int) -> ResponseReturnValue:
    principal = current_principal()
    data = load_or_raise(MessageCreateSchema(), _json())
    message = _cases().post_message(principal, case_id, data["text"])
    return jsonify(message_dict(message, principal.label)), 201


@bp.get("/cases/<int:case_id>/studies")
def case_studies(case_id: int) -> ResponseReturnValue:
    h = hub()
    service = ImageService(db_session(), h.clock, h.image_dir, remote_addr())
    return jsonify([study_dict(s) for s in service.studies_of_case(current_principal(), case_id)])
