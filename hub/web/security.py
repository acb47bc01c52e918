"""CSRF for the pages and the security headers of every answer (CSP, no framing, no sniffing)."""

from __future__ import annotations

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

# Scripts, styles, images and connections from the hub itself only: no inline code, no CDN.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def init_security(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)  # a whole shift, not forever
    # The API and DICOMweb take bearer tokens; with the session cookie instead,
    # hub.context.request_token() demands the CSRF token itself.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)

    @app.before_request
    def _protect_pages() -> None:
        from flask import request

        if request.blueprint in {"auth", "specialist", "supervisor", "admin"}:
            csrf.protect()

    app.after_request(security_headers)


def security_headers(response: Response) -> Response:
    headers = response.headers
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    return response
