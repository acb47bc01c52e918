"""REST about real-time delivery: who is online, and advice no spoke has acknowledged yet."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from hub.context import current_principal, db_session, hub
from hub.realtime.namespace import HubNamespace
from hub.services.access import require_role
from hub.services.realtime import RealtimeService
from hub.services.serialize import user_ref
from shared.enums import Role

bp = Blueprint("realtime", __name__, url_prefix="/api/v1")


def _namespace() -> HubNamespace:
    namespace: HubNamespace = current_app.extensions["teleconsult.realtime"]
    return namespace


@bp.get("/presence")
def presence() -> ResponseReturnValue:
    """Specialists and spokes with at least one live connection to any hub process."""
    require_role(current_principal(), Role.SUPERVISOR, Role.ADMIN)
    users, spokes = _service().online(_namespace().presence.online())
    return jsonify(specialists=[user_ref(u) for u in users], spokes=spokes)


@bp.get("/advice/undelivered")
def undelivered_advice() -> ResponseReturnValue:
    """Advice its clinic has not acknowledged yet: a specialist's own, or all for a supervisor."""
    principal = current_principal()
    require_role(principal, Role.SPECIALIST, Role.SUPERVISOR)
    return jsonify(_service().undelivered_advice(principal))


def _service() -> RealtimeService:
    return RealtimeService(db_session(), hub().clock)
