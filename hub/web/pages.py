"""What every hub page shares: who is signed in, the role check, and the services it reads."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from hub.context import SESSION_TOKEN, current_principal, db_session, hub, remote_addr
from hub.services.auth import Principal
from shared.enums import Role
from shared.errors import NotAuthenticated, TeleconsultError

if TYPE_CHECKING:  # annotations only: the edge gets models from services
    from hub.persistence.models import User

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

HOME = {
    Role.SPECIALIST: "specialist.worklist",
    Role.SUPERVISOR: "supervisor.dashboard",
    Role.ADMIN: "admin.users",
}


def signed_in_principal() -> Principal | None:
    """The user of the page session, or None (expired, revoked, or never signed in)."""
    if "page_principal" not in g:
        g.page_principal = None
        if session.get(SESSION_TOKEN) and not request.headers.get("Authorization"):
            try:
                g.page_principal = current_principal()
            except NotAuthenticated:
                session.pop(SESSION_TOKEN, None)
    principal: Principal | None = g.page_principal
    return principal


def signed_in_user() -> User | None:
    principal = signed_in_principal()
    return principal.user if principal is not None else None


def page(*roles: Role) -> Callable[[F], F]:
    """A page for these roles: sign-in first, 403 for any other role."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            principal = signed_in_principal()
            if principal is None or principal.user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if principal.role not in roles:
                abort(403)
            g.principal = principal
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def principal() -> Principal:
    found: Principal = g.principal
    return found


def services() -> dict[str, Any]:
    """Keyword arguments shared by the hub's services: session, clock, caller's address, policy."""
    from hub.api.views import policy

    return {
        "session": db_session(),
        "clock": hub().clock,
        "remote_addr": remote_addr(),
        "policy": policy(),
    }


def home_of(role: Role | None) -> str:
    endpoint = HOME.get(role) if role else None
    return url_for(endpoint) if endpoint else url_for("auth.clinic_hint")


def page_errors(bp: Blueprint) -> None:
    """Errors on a page as a page, in the user's words (the API keeps its JSON errors)."""

    @bp.errorhandler(TeleconsultError)
    def _domain(exc: TeleconsultError) -> ResponseReturnValue:
        return render_template("error.html", message=exc.message), exc.http_status

    @bp.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> ResponseReturnValue:
        return render_template(
            "error.html", message=_("This form has expired: go back, reload and try again.")
        ), 400

    @bp.errorhandler(403)
    def _forbidden(_exc: Exception) -> ResponseReturnValue:
        return render_template("error.html", message=_("Your role may not open this page.")), 403
