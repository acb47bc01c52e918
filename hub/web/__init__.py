"""The hub's pages for specialists, supervisors and admins: one blueprint per audience.

Pages are rendered on the server (Jinja escapes every free text); their scripts (``hub/static``,
no inline code, so the Content-Security-Policy holds) call the REST and DICOMweb endpoints with
the session cookie and the CSRF token, and listen to Socket.IO to stay current.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import gettext

from hub.web.security import init_security
from teleconsult.i18n import init_babel
from teleconsult.localtime import local_time, zone


def init_web(app: Flask) -> None:
    """Register the pages, sign-in, CSRF, the security headers and the languages."""
    from hub.web.admin import bp as admin_bp
    from hub.web.auth import bp as auth_bp
    from hub.web.specialist import bp as specialist_bp
    from hub.web.supervisor import bp as supervisor_bp
    from hub.web.verify import bp as verify_bp

    init_security(app)
    init_babel(app, user_language)
    app.jinja_env.filters.update(when=when, duration=duration, iso=iso)
    settings = app.extensions["teleconsult"].settings
    tz = zone(settings.timezone)
    app.jinja_env.filters["local_time"] = lambda value, fmt="%d %b %Y, %H:%M": local_time(
        value, tz, fmt
    )
    # Every time on a page in the hub's zone (config ``timezone``), never bare UTC.
    app.jinja_env.filters["when"] = lambda value: local_time(value, tz, "%Y-%m-%d %H:%M")
    app.jinja_env.globals["hub_name"] = settings.hub_name
    app.jinja_env.globals["page_user"] = _page_user
    # The lifecycle's named sets, for templates: ``case.status in states.RELEASABLE``.
    app.jinja_env.globals["states"] = _lifecycle_states()
    for bp in (auth_bp, specialist_bp, supervisor_bp, admin_bp, verify_bp):
        app.register_blueprint(bp)


def _lifecycle_states() -> dict[str, list[str]]:
    from hub.domain import lifecycle

    names: tuple[str, ...] = ("WAITING", "OPEN", "ACTIVE", "HANDLED", "CLAIMABLE", "RELEASABLE")
    names += ("ADVISABLE",)
    names += ("REFERABLE", "REASSIGNABLE", "CANCELLABLE")
    return {name: lifecycle.values(getattr(lifecycle, name)) for name in names}


def _page_user() -> object:
    from hub.web.pages import signed_in_user

    return signed_in_user()


def user_language() -> str | None:
    from hub.web.pages import signed_in_user

    user = signed_in_user()
    return user.language if user is not None else None


def when(value: object) -> str:
    """A time as the pages show it: 2026-03-01 14:05 (UTC)."""
    if value is None:
        return "—"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:16].replace("T", " ")


def duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    minutes = int(seconds // 60)
    if minutes >= 60:
        return str(gettext("%(h)s h %(m)s min", h=minutes // 60, m=f"{minutes % 60:02d}"))
    return str(gettext("%(m)s min", m=minutes))


def iso(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else ""
