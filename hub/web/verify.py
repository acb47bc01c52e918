"""The public check of a printed e-prescription (DESIGN.md, "Documents and exchange"):
``GET /verify/<code>`` with no sign-in, as HTML or JSON (by Accept). It shows only whether the
prescription is valid or superseded, its case token, date, specialist and hub: no clinical
content, so a leaked code tells nothing about the patient."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from hub.context import db_session, hub, remote_addr
from hub.services.documents import DocumentService
from shared.errors import NotFound

bp = Blueprint("verify", __name__)
# The answer changes when a correction is issued: never cached; not for search engines.
_FRESH = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Vary": "Accept"}

# Rate limited per address in the app factory (``verify_limit``); the codes themselves are 192
# random bits, so guessing is hopeless anyway.


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


@bp.get("/verify/<code>")
def verify(code: str) -> ResponseReturnValue:
    service = DocumentService(db_session(), hub().clock, remote_addr())
    try:
        found = service.verify(code[:100], hub().settings.hub_name)
    except NotFound as exc:
        if _wants_json():
            return jsonify(error={"code": "not_found", "message": exc.message}), 404, _FRESH
        return render_template("verify.html", found=None), 404, _FRESH
    answer = jsonify(found) if _wants_json() else render_template("verify.html", found=found)
    return answer, 200, _FRESH
