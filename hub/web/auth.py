"""Sign-in, sign-out and the language chooser of the hub's pages.

Signing in issues a login token exactly as ``POST /api/v1/auth/token`` does and keeps it in the
signed, HttpOnly, SameSite=Lax session; the REST, DICOMweb and Socket.IO calls of the page
scripts authenticate with it (hub.context.request_token).
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from hub.context import SESSION_TOKEN, db_session, hub, remote_addr
from hub.services.auth import digest, revoke
from hub.services.signin import SignIn
from hub.web.pages import home_of, page_errors, signed_in_principal, signed_in_user
from shared.enums import Role
from shared.errors import NotAuthenticated
from teleconsult.i18n import LANGUAGES, SESSION_KEY
from teleconsult.websecurity import safe_next

bp = Blueprint("auth", __name__)
page_errors(bp)


@bp.get("/")
def home() -> ResponseReturnValue:
    principal = signed_in_principal()
    if principal is None:
        return redirect(url_for("auth.login"))
    return redirect(home_of(principal.role))


@bp.route("/login", methods=["GET", "POST"], endpoint="login")
def login_page() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        try:
            token, user = _sign_in().sign_in(
                request.form.get("username", "").strip(),
                request.form.get("password", ""),
                hub().settings.token_ttl_s,
                via="page",
            )
        except NotAuthenticated:
            error = _("Wrong username or password.")
        else:
            lang = session.get(SESSION_KEY)
            if lang in LANGUAGES:  # chosen on the sign-in page: the user's choice from now on
                user.language = lang
            db_session().commit()
            session.clear()
            session[SESSION_TOKEN] = token
            if lang:
                session[SESSION_KEY] = lang
            return redirect(safe_next(request.args.get("next"), home_of(Role(user.role))))
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = session.get(SESSION_TOKEN)
    if token:
        principal = signed_in_principal()
        if principal is not None:
            _sign_in().sign_out(principal, token, via="page")
        else:
            revoke(db_session(), token, hub().clock)
            db_session().commit()
        current_app.extensions["teleconsult.realtime"].disconnect_token(digest(token))
    session.clear()
    return redirect(url_for("auth.login"))


def _sign_in() -> SignIn:
    return SignIn(db_session(), hub().clock, remote_addr())


@bp.post("/language")
def language() -> ResponseReturnValue:
    """Choose the pages' language; a signed-in user keeps it (users.language)."""
    lang = request.form.get("language", "")
    if lang in LANGUAGES:
        session[SESSION_KEY] = lang
        user = signed_in_user()
        if user is not None:
            user.language = lang
            db_session().commit()
    return redirect(safe_next(request.form.get("next"), url_for("auth.home")))


@bp.get("/clinic")
def clinic_hint() -> ResponseReturnValue:
    """Clinic doctors use their clinic's own pages (the spoke), not the hub's."""
    return render_template("clinic_hint.html")
