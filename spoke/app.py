"""The spoke's application factory: pages for clinic doctors, a small REST API, health."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from config.settings import Settings, load_settings
from shared.clock import Clock, SystemClock
from shared.errors import TeleconsultError
from spoke.accounts import Accounts
from spoke.context import Spoke, spoke
from spoke.hub_api import HubApi
from spoke.hub_client import HubClient
from spoke.outbox import OutboxWorker
from spoke.store import CaseStore
from spoke.uploads import UploadService, build_worker
from teleconsult.db import Database, default_url
from teleconsult.files import private_dir
from teleconsult.i18n import init_babel
from teleconsult.localtime import local_time, zone
from teleconsult.runtime import deid_profile, secret_key
from teleconsult.websecurity import harden, throttle_sign_in, trust_proxies

log = logging.getLogger(__name__)
csrf = CSRFProtect()


def build_spoke(settings: Settings, clock: Clock | None = None) -> Spoke:
    """The spoke's services wired together; the workers are not started."""
    clock = clock or SystemClock()
    private_dir(Path(settings.data_dir))
    db = Database(default_url(settings))
    hub_api = HubApi(settings.hub_url, settings.spoke_token, settings.hub_timeout_s)
    store = CaseStore(db, clock, settings.spoke_code)
    uploads = build_worker(
        settings.data_dir,
        store,
        settings.hub_url,
        settings.spoke_token,
        settings.hub_timeout_s,
        settings.sync_interval_s,
    )
    outbox = OutboxWorker(store, hub_api, settings.sync_interval_s)

    def link_back() -> None:
        outbox.wake()
        uploads.wake()

    return Spoke(
        settings=settings,
        db=db,
        clock=clock,
        hub_api=hub_api,
        store=store,
        accounts=Accounts(
            db,
            hub_api,
            clock,
            settings.spoke_code,
            ttl=timedelta(seconds=int(settings.session_ttl_s)),
            recheck_s=float(settings.doctor_recheck_s),
        ),
        outbox=outbox,
        hub_client=HubClient(
            settings.hub_url,
            settings.spoke_token,
            store,
            hub_api,
            settings.hub_timeout_s,
            on_link_back=link_back,
        ),
        uploads=uploads,
        upload_service=UploadService(
            uploads.queue, uploads.wake, deid_profile(settings, Path(settings.data_dir))
        ),
    )


def create_app(
    settings: Settings | None = None,
    test_config: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> Flask:
    """A spoke app; ``app.extensions["spoke"].start()`` starts the outbox and the hub client."""
    settings = settings or load_settings("spoke", overrides=test_config)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A form may stay open a whole consultation, not longer than the session itself.
        WTF_CSRF_TIME_LIMIT=int(settings.session_ttl_s),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=int(settings.session_ttl_s)),
    )
    from spoke.uploads.convert import MAX_REQUEST_BYTES

    # Small bodies everywhere; only the upload form takes images (checked before reading).
    harden(app, settings, large_bodies={"uploads.upload": MAX_REQUEST_BYTES})
    app.extensions["spoke"] = build_spoke(settings, clock)

    from spoke.api import bp as api_bp
    from spoke.pages import bp as pages_bp
    from spoke.pages import user_language
    from spoke.progress import bp as progress_bp
    from spoke.upload_page import bp as uploads_bp
    from teleconsult.assets import bp as assets_bp

    init_babel(app, user_language)  # the doctor's choice (session), else the browser's languages
    tz = zone(settings.timezone)
    app.jinja_env.filters["local_time"] = lambda value, fmt="%d %b %Y, %H:%M": local_time(
        value, tz, fmt
    )
    app.jinja_env.globals["hub_name"] = settings.hub_name
    csrf.init_app(app)
    csrf.exempt(api_bp)  # bearer tokens, no cookies: nothing to forge
    app.register_blueprint(api_bp)
    app.register_blueprint(assets_bp)  # the pages' shared scripts (alerts.js)
    app.register_blueprint(pages_bp)
    app.register_blueprint(progress_bp)
    app.register_blueprint(uploads_bp)
    app.add_url_rule("/healthz", "healthz", _healthz)
    app.after_request(_security_headers)
    _register_error_handlers(app)
    throttle_sign_in(app, settings, ["api.issue_token", "pages.sign_in"])
    trust_proxies(app, settings)
    return app


# Scripts, styles and images of the spoke itself only: no inline code, no CDN.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src "
    "'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def _healthz() -> ResponseReturnValue:
    s = spoke()
    return jsonify(
        status="ok", hub_reachable=s.outbox.hub_reachable, outbox_pending=s.store.count_pending()
    )


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TeleconsultError)
    def _domain_error(exc: TeleconsultError) -> ResponseReturnValue:
        if _wants_json():
            return jsonify(exc.to_dict()), exc.http_status
        return render_template("error.html", message=exc.message), exc.http_status

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> ResponseReturnValue:
        message = gettext(
            "This form has expired or did not come from this page: go back, reload and try again."
        )
        return render_template("error.html", message=message), 400

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": exc.description}}), exc.code or 500
