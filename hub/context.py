"""What a request of the hub works with: settings, database, clock, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, g, request, session
from flask_socketio import SocketIO
from sqlalchemy.orm import Session

from config.settings import Settings
from hub.services.auth import Principal, acting_for, authenticate
from shared.clock import Clock
from shared.errors import Forbidden, NotAuthenticated, TeleconsultError
from shared.protocol import ACTING_DOCTOR_HEADER
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
    """The caller; a spoke's service token with ``X-Acting-Doctor`` stands for that doctor."""
    if "principal" not in g:
        principal = authenticate(db_session(), request_token(), hub().clock)
        acting = request.headers.get(ACTING_DOCTOR_HEADER, "").strip()
        if acting:
            principal = acting_for(db_session(), principal, acting)
        g.principal = principal
    principal_: Principal = g.principal
    return principal_


def spoke_caller() -> bool:
    """A spoke's own machine checking a doctor's password (many doctors, one address)."""
    if request.endpoint != "api.verify_doctor":
        return False
    try:
        return current_principal().spoke_service is not None
    except TeleconsultError:
        return False


def remote_addr() -> str:
    return request.remote_addr or ""
