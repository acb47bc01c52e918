"""REST about real-time delivery: who is online, and advice no spoke has acknowledged yet."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from hub.context import current_principal, db_session
from hub.persistence.models import Advice, AdviceDelivery, Case, Spoke, User
from hub.realtime.namespace import HubNamespace
from hub.services.access import require_role
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
    online = _namespace().presence.online()
    user_ids = [int(k.split(":")[1]) for k in online if k.startswith("user:")]
    spoke_ids = [int(k.split(":")[1]) for k in online if k.startswith("spoke:")]
    session = db_session()
    users = session.scalars(
        select(User).where(User.id.in_(user_ids), User.role == Role.SPECIALIST.value)
    )
    spokes = session.scalars(select(Spoke.code).where(Spoke.id.in_(spoke_ids)))
    return jsonify(specialists=[user_ref(u) for u in users], spokes=sorted(spokes))


@bp.get("/advice/undelivered")
def undelivered_advice() -> ResponseReturnValue:
    """Advice its clinic has not acknowledged yet: a specialist's own, or all for a supervisor."""
    principal = current_principal()
    require_role(principal, Role.SPECIALIST, Role.SUPERVISOR)
    query = (
        select(Advice, Case)
        .join(Case, Case.id == Advice.case_id)
        .outerjoin(
            AdviceDelivery,
            (AdviceDelivery.advice_id == Advice.id) & (AdviceDelivery.spoke_id == Case.spoke_id),
        )
        .where(AdviceDelivery.advice_id.is_(None))
        .order_by(Advice.issued_at)
    )
    if principal.role is Role.SPECIALIST:
        query = query.where(Advice.specialist_id == principal.user_id)
    rows = db_session().execute(query).all()
    return jsonify(
        [
            {
                "advice_id": a.id,
                "case_id": c.id,
                "case_token": c.token,
                "spoke": c.spoke.code,
                "version": a.version,
                "issued_at": a.issued_at.isoformat(),
            }
            for a, c in rows
        ]
    )
