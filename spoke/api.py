"""REST API of the spoke under /api/v1, for clinic software and tests. Thin: parse, call the
store or accounts, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from shared.schemas import CaseCreateSchema, TokenRequestSchema, load_or_raise
from spoke.context import bearer_doctor, spoke

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _json() -> Any:
    return request.get_json(silent=True)


@bp.post("/auth/token")
def issue_token() -> ResponseReturnValue:
    data = load_or_raise(TokenRequestSchema(), _json())
    accounts = spoke().accounts
    doctor = accounts.sign_in(data["username"], data["password"])
    token, ttl = accounts.issue_token(doctor)
    user = {"username": doctor.username, "name": doctor.name, "spoke": spoke().settings.spoke_code}
    return jsonify(access_token=token, token_type="Bearer", expires_in=ttl, user=user)


@bp.post("/cases")
def raise_case() -> ResponseReturnValue:
    doctor = bearer_doctor()
    data = load_or_raise(CaseCreateSchema(), _json())
    s = spoke()
    case = s.store.raise_case(data, doctor.username)
    s.outbox.wake()
    return jsonify(case), 202


@bp.get("/cases")
def list_cases() -> ResponseReturnValue:
    bearer_doctor()
    return jsonify(items=spoke().store.list_cases())


@bp.get("/cases/<uid>")
def get_case(uid: str) -> ResponseReturnValue:
    bearer_doctor()
    return jsonify(spoke().store.get_case(uid))
