"""What a request of the hub works with: settings, database, clock, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, g, request, session
from flask_socketio import SocketIO
from sqlalchemy.orm import Session

from config.settings import Settings
from hub.services.auth import Principal, authenticate
from shared.clock import Clock
from shared.errors import Forbidden, NotAuthenticated
from teleconsult.db import Database


@dataclass
class Hub:
    settings: Settings
    db: Database
    clock: Clock
    image_dir: Path


def socketio_of(app: Flask) -> SocketIO:
    sio: SocketIO = app.extensions["teleconsult.socketio"]
    return sio


def hub() -> Hub:
    ext: Hub = current_app.extensions["teleconsult"]
    return ext


def db_session() -> Session:
    if "db" not in g:
        g.db = hub().db.sessions()
    session: Session = g.db
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Sign in first: send 'Authorization: Bearer <token>'.")
    return token.strip()


SESSION_TOKEN = "hub_token"  # the page sign-in's login token, in the signed HttpOnly session
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_token() -> str:
    """The bearer token of the request, else the page session's token (state-changing requests
    authenticated by the session cookie must carry the CSRF token)."""
    if request.headers.get("Authorization") or not session.get(SESSION_TOKEN):
        return bearer_token()
    if request.method not in _SAFE_METHODS:
        check_csrf()
    return str(session[SESSION_TOKEN])


def check_csrf() -> None:
    from flask_wtf.csrf import ValidationError, validate_csrf

    sent = request.headers.get("X-CSRFToken") or request.form.get("csrf_token") or ""
    try:
        validate_csrf(sent)
    except ValidationError:
        raise Forbidden(
            "This page is out of date (CSRF check failed): reload it and try again."
        ) from None


def current_principal() -> Principal:
    if "principal" not in g:
        g.principal = authenticate(db_session(), request_token(), hub().clock)
    principal: Principal = g.principal
    return principal


def remote_addr() -> str:
    return request.remote_addr or ""
