"""How far a case's images got: the clinic's DICOM bridge pushes, per case, how many instances it
received, how many the hub confirmed and how many were refused; the case JSON shows them as
``images: {received, at_hub, rejected}``.

``PUT /api/v1/cases/<uid>/images-progress`` (the spoke's service token, as the bridge holds it).
The counts are absolute, so a repeated or late push is harmless; they are kept in the spoke's
small key/value ``state`` table (no migration needed).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from shared.errors import InvalidInput
from spoke.context import bearer_service, spoke
from spoke.store import IMAGE_FIELDS

bp = Blueprint("progress", __name__, url_prefix="/api/v1")

FIELDS = IMAGE_FIELDS


def _exempt_from_csrf(state: BlueprintSetupState) -> None:
    """Bearer tokens, no cookies: nothing to forge."""
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


bp.record_once(_exempt_from_csrf)


def empty() -> dict[str, int]:
    return dict.fromkeys(FIELDS, 0)


def with_images(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases, each with ``images``: how far its images got."""
    images = spoke().store.images_of([str(c["uid"]) for c in cases])
    return [{**c, "images": images[str(c["uid"])]} for c in cases]


def _counts(body: Any) -> dict[str, int]:
    if not isinstance(body, dict):
        raise InvalidInput('Send {"received": n, "at_hub": n, "rejected": n}.')
    bad = {
        name: ["a whole number, 0 or more"]
        for name in FIELDS
        if not isinstance(body.get(name), int) or isinstance(body.get(name), bool) or body[name] < 0
    }
    if bad:
        raise InvalidInput("The counts must be whole numbers, 0 or more.", fields=bad)
    return {name: int(body[name]) for name in FIELDS}


@bp.put("/cases/<uid>/images-progress")
def put_progress(uid: str) -> ResponseReturnValue:
    """The bridge's counts for one case of this clinic."""
    bearer_service()
    counts = _counts(request.get_json(silent=True))
    spoke().store.save_images_progress(uid, counts)  # 404 unless the case is this clinic's
    _changes[0] += 1
    return jsonify(images=counts)


_changes = [0]


def version() -> int:
    """Moves whenever the bridge pushed new counts (the pages redraw then)."""
    return _changes[0]
