"""Web hardening that hub and spoke share (DESIGN.md, "Security rules"): one owner each for safe
redirects, body size limits checked before a byte is read, bounded ids in URLs, JSON that cannot
nest deep enough to crash the parser, HTTPS-only cookies and HSTS, ``no-store`` on patient data,
and the sign-in rate limits (Flask-Limiter, Redis when configured)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

SMALL_BODY_BYTES = 256 * 1024
# Largest id a URL may carry: the databases' 32-bit integer keys. Beyond it: 404, not 500.
MAX_ID = 2**31 - 1
HSTS = "max-age=31536000; includeSubDomains"
# Answers that may be cached: the apps' own scripts, styles and images (no patient data).
_CACHEABLE_ENDPOINTS = frozenset({"static", "assets.asset"})


# -- redirects ------------------------------------------------------------------------------------


def safe_next(target: str | None, fallback: str) -> str:
    """``target`` if it is a path on this site, else ``fallback``.

    Browsers drop tabs and newlines and read a backslash as a slash, so ``/\\t/evil.example`` or
    ``/\\evil.example`` would lead to another host; any of them, or a scheme or host, is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


# -- ids and JSON ---------------------------------------------------------------------------------


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` with at most ten digits and no value above ``MAX_ID``: a longer or larger
    id matches no route (404) instead of overflowing the database driver (500)."""

    regex = r"\d{1,10}"

    def __init__(
        self,
        url_map: Map,
        fixed_digits: int = 0,
        min: int | None = None,  # noqa: A002 (werkzeug's argument names)
        max: int | None = MAX_ID,  # noqa: A002
        signed: bool = False,
    ) -> None:
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class GuardedJSONProvider(DefaultJSONProvider):
    """JSON nested deeper than the parser's recursion limit is bad input (400), not a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("The JSON is nested too deeply.") from None


# -- cookies over HTTPS ----------------------------------------------------------------------------


class _SessionInterface(SecureCookieSessionInterface):
    """Session cookies are ``Secure`` whenever the request came over HTTPS (directly, or through
    a trusted proxy's X-Forwarded-Proto), not only when configured so."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (request and request.is_secure))


# -- the whole set --------------------------------------------------------------------------------


def harden(app: Flask, settings: Mapping[str, Any], large_bodies: Mapping[str, int]) -> None:
    """Install everything above on ``app``. Call right after ``Flask(...)``, before any route.

    ``large_bodies`` maps the endpoints that take uploads to their limit; every other request
    body may have ``max_body_bytes`` at most, and a larger one is refused from its
    Content-Length alone (413), before anything is read.
    """
    app.url_map.converters["int"] = BoundedIntConverter
    app.json = GuardedJSONProvider(app)
    app.json.sort_keys = False
    app.session_interface = _SessionInterface()
    small = int(settings.get("max_body_bytes") or SMALL_BODY_BYTES)
    app.config["MAX_CONTENT_LENGTH"] = small  # the default of every request (flask)
    if str(settings.get("public_url", "")).startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.config["LARGE_BODIES"] = dict(large_bodies)

    def limit_body() -> None:
        limit = app.config["LARGE_BODIES"].get(request.endpoint or "", small)
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge()

    app.before_request_funcs.setdefault(None, []).insert(0, limit_body)
    app.after_request(_transport_headers)


def trust_proxies(app: Flask, settings: Mapping[str, Any]) -> None:
    """Believe X-Forwarded-For/-Proto/-Host from ``trusted_proxies`` proxies (0: none). Call
    last, so that Socket.IO's middleware, inside, sees the client's real scheme and host."""
    proxies = int(settings.get("trusted_proxies") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )


def _transport_headers(response: Response) -> Response:
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint not in _CACHEABLE_ENDPOINTS and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


# -- sign-in rate limits ---------------------------------------------------------------------------


def limit_storage(settings: Mapping[str, Any]) -> str:
    """Where the counters live: ``rate_limit_storage``, else the Redis the hub processes share
    (``message_queue``), else this process's memory."""
    uri = str(settings.get("rate_limit_storage") or settings.get("message_queue") or "")
    return uri or "memory://"


def username_in_request(req: Request | None = None) -> str:
    """The account a sign-in request names (JSON or form), lower-cased; '' when none."""
    req = req or request
    body = req.get_json(silent=True) if req.is_json else None
    name = body.get("username") if isinstance(body, dict) else req.form.get("username")
    return str(name or "").strip().lower()[:64]


def throttle_sign_in(
    app: Flask,
    settings: Mapping[str, Any],
    endpoints: list[str],
    exempt_address: Callable[[], bool] = lambda: False,
) -> Any:
    """Rate-limit the sign-in ``endpoints`` per address (every attempt) and per account (failed
    attempts only: a lockout that a right password does not feed). 429 with Retry-After."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=limit_storage(settings),
        headers_enabled=True,
        # Redis down: count in this process's memory meanwhile rather than refuse every sign-in.
        in_memory_fallback_enabled=True,
        strategy="moving-window",
        key_prefix=f"teleconsult-{getattr(settings, 'component', 'app')}",
        default_limits=[],
    )
    per_address = limiter.limit(
        str(settings.get("sign_in_limit_address") or "30 per minute"),
        key_func=lambda: f"address:{get_remote_address()}",
        methods=["POST"],
        exempt_when=exempt_address,
    )
    per_account = limiter.limit(
        str(settings.get("sign_in_limit_account") or "10 per 15 minutes"),
        key_func=lambda: f"account:{username_in_request() or '-'}",
        methods=["POST"],
        deduct_when=lambda response: response.status_code in (401, 403),
    )
    for endpoint in endpoints:
        view: Any = app.view_functions[endpoint]
        app.view_functions[endpoint] = per_address(per_account(view))
    app.extensions["teleconsult.limiter"] = limiter
    return limiter


def throttle_public(app: Flask, endpoint: str, rate: str) -> None:
    """Rate-limit a page anyone may open without signing in (``rate`` per address, 429 with
    Retry-After), with the limiter ``throttle_sign_in`` made, so processes share the counts."""
    from flask_limiter.util import get_remote_address

    limiter = app.extensions["teleconsult.limiter"]
    limit = limiter.limit(rate, key_func=lambda: f"{endpoint}:{get_remote_address()}")
    app.view_functions[endpoint] = limit(app.view_functions[endpoint])
