"""REST API of the spoke under /api/v1, for clinic software and tests. Thin: parse, call the
store or accounts, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from shared.errors import InvalidInput
from shared.schemas import CaseCreateSchema, TokenRequestSchema, load_or_raise
from spoke.context import bearer_doctor, bearer_service, spoke
from spoke.hub_api import HubRefused, HubUnavailable
from spoke.inbox import Inbox
from spoke.progress import with_images
from spoke.replies import send_to_specialist

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


@bp.post("/auth/logout")
def logout() -> ResponseReturnValue:
    """End the caller's session: the token stops working at once."""
    bearer_doctor()
    spoke().accounts.revoke(request.headers.get("Authorization", "").partition(" ")[2].strip())
    return "", 204


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
    return jsonify(items=with_images(spoke().store.list_cases()))


@bp.get("/cases/<uid>")
def get_case(uid: str) -> ResponseReturnValue:
    bearer_doctor()
    return jsonify(with_images([spoke().store.get_case(uid)])[0])


@bp.post("/cases/<uid>/cancel")
def cancel_case(uid: str) -> ResponseReturnValue:
    """The clinic cancels a case: stored here at once, sent to the hub by the outbox (202)."""
    doctor = bearer_doctor()
    body = _json() or {}
    reason = body.get("reason", "") if isinstance(body, dict) else None
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidInput(
            "The reason must be text of at most 2000 characters.",
            fields={"reason": ["Not a valid string."]},
        )
    s = spoke()
    case = s.store.request_cancel(uid, reason.strip(), doctor.name)
    s.outbox.wake()
    return jsonify(case), 202


@bp.post("/cases/<uid>/messages")
def post_message(uid: str) -> ResponseReturnValue:
    """Words to the specialist, sent to the hub now; while they wait for information, the
    answer. 201 ``{"sent_as": "answer"|"message"}``; 503 when the hub cannot be reached."""
    doctor = bearer_doctor()
    body = _json()
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise InvalidInput('Send {"text": ...}.', fields={"text": ["Missing data."]})
    s = spoke()
    try:
        sent_as = send_to_specialist(s.store, s.hub_api, uid, doctor.name, text, doctor.username)
    except HubUnavailable:
        error = {"code": "hub_unreachable", "message": "The hub cannot be reached now: retry."}
        return jsonify(error=error), 503
    except HubRefused as exc:
        return jsonify(error={"code": exc.code, "message": exc.message}), exc.status
    return jsonify(sent_as=sent_as), 201


@bp.get("/worklist")
def worklist() -> ResponseReturnValue:
    """Open cases for the DICOM bridge's Modality Worklist (service token only)."""
    bearer_service()
    return jsonify(items=spoke().store.open_cases())


@bp.get("/inbox")
def inbox() -> ResponseReturnValue:
    """Studies that reached the hub without a matching case, waiting to be attached by hand."""
    bearer_doctor()
    return jsonify(items=Inbox(spoke().hub_api).studies())


@bp.post("/inbox/<study_uid>/attach")
def attach(study_uid: str) -> ResponseReturnValue:
    doctor = bearer_doctor()
    case_uid = str((_json() or {}).get("case_uid") or "").strip()
    if not case_uid:
        raise InvalidInput(
            "Name the case to attach the study to.", fields={"case_uid": ["required"]}
        )
    s = spoke()
    s.store.get_case(case_uid)  # 404 unless the case is this clinic's
    return jsonify(Inbox(s.hub_api).attach(study_uid, case_uid, doctor.username))
