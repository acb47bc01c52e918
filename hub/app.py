"""The hub's application factory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, jsonify
from flask_socketio import SocketIO

from config.settings import Settings, load_settings
from hub.api.errors import register_error_handlers
from hub.context import Hub, close_session, spoke_caller
from hub.realtime.namespace import HubNamespace
from hub.realtime.presence import make_presence
from hub.services.events import EventPublisher
from hub.web import init_web
from shared.clock import Clock, SystemClock
from teleconsult.db import Database, default_url
from teleconsult.files import private_dir
from teleconsult.runtime import secret_key
from teleconsult.websecurity import harden, throttle_public, throttle_sign_in, trust_proxies

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    test_config: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> Flask:
    settings = settings or load_settings("hub", overrides=test_config)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A page's CSRF token lives as long as the login it belongs to, not forever.
        WTF_CSRF_TIME_LIMIT=int(settings.token_ttl_s),
    )
    # Small bodies everywhere; only STOW-RS takes images (checked before a byte is read).
    harden(app, settings, large_bodies={"dicomweb.stow": int(settings.max_upload_bytes)})
    image_dir = private_dir(private_dir(Path(settings.data_dir).resolve()) / "images")
    db = Database(default_url(settings))
    app.extensions["teleconsult"] = Hub(settings, db, clock or SystemClock(), image_dir)
    app.teardown_appcontext(close_session)
    register_error_handlers(app)

    from hub.api import documents  # noqa: F401  (its routes join the API blueprint)
    from hub.api.views import bp as api_bp
    from hub.dicomweb.views import bp as dicomweb_bp
    from hub.realtime.views import bp as realtime_bp
    from teleconsult.assets import bp as assets_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(dicomweb_bp)
    app.register_blueprint(realtime_bp)
    app.register_blueprint(assets_bp)
    init_web(app)  # the pages: sign-in, specialist, supervisor, admin; CSRF, CSP, languages
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(status="ok"))
    app.add_url_rule("/favicon.ico", "favicon", lambda: ("", 204))
    throttle_sign_in(
        app, settings, ["api.issue_token", "auth.login", "api.verify_doctor"], spoke_caller
    )
    throttle_public(app, "verify.verify", str(settings.get("verify_limit") or "60 per minute"))

    # One SocketIO per app (not a module global) so that several apps can live in one test run.
    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        message_queue=settings.message_queue or None,
        channel=settings.socketio_channel,
        cors_allowed_origins=origin_check(settings),
        json=None,
    )
    realtime = HubNamespace(make_presence(settings.message_queue, settings.socketio_channel))
    socketio.on_namespace(realtime)
    app.extensions["teleconsult.realtime"] = realtime
    app.extensions["teleconsult.socketio"] = socketio
    EventPublisher(lambda event, msg, rooms: socketio.emit(event, msg, to=rooms)).bind(db.sessions)
    trust_proxies(app, settings)
    return app


def origin_check(settings: Settings) -> Callable[[str | None, dict[str, Any]], bool]:
    """Socket.IO connections from pages of the hub's own origin (the request's own scheme and
    host, and ``public_url``) and of ``allowed_origins`` only: a page elsewhere cannot use a
    signed-in user's cookie to listen in."""
    allowed = {_origin(o) for o in [settings.public_url, *settings.allowed_origins] if o}

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser: spokes and API clients authenticate with a token
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin.rstrip("/") in allowed | {own}

    return check


def _origin(url: str) -> str:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"
