"""Passwords, bearer tokens and spoke service tokens: who is calling."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.persistence.models import ApiToken, Spoke, User
from shared.clock import Clock
from shared.enums import Role
from shared.errors import NotAuthenticated

_hasher = PasswordHasher()
# Checked against when the username is unknown, so that both answers take the same time.
_DUMMY_HASH = _hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    """A random secret for a token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """Tokens are stored as sha256: they are random, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller: a user (with a role) or a spoke's service."""

    user: User | None = None
    spoke_service: Spoke | None = None

    @property
    def role(self) -> Role | None:
        return Role(self.user.role) if self.user else None

    @property
    def spoke_id(self) -> int | None:
        if self.spoke_service is not None:
            return self.spoke_service.id
        return self.user.spoke_id if self.user else None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def label(self) -> str:
        if self.user:
            return self.user.username
        assert self.spoke_service is not None
        return f"spoke:{self.spoke_service.code}"


def login(
    session: Session, username: str, password: str, clock: Clock, ttl_s: int
) -> tuple[str, User]:
    """Check the password and issue a bearer token; a wrong name or password is one answer."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise NotAuthenticated("Wrong username or password.")
    if not verify_password(user.password_hash, password) or not user.active:
        raise NotAuthenticated("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    raw = new_secret()
    now = clock.now()
    session.add(
        ApiToken(
            token_hash=digest(raw),
            user=user,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    return raw, user


def authenticate(session: Session, raw_token: str, clock: Clock) -> Principal:
    """The principal a bearer token stands for: a user's login token or a spoke service token."""
    if not raw_token:
        raise NotAuthenticated("Sign in first: this needs a bearer token.")
    hashed = digest(raw_token)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hashed))
    if token is not None:
        if token.revoked_at is not None or token.expires_at <= clock.now():
            raise NotAuthenticated("Your session has expired: sign in again.")
        if not token.user.active:
            raise NotAuthenticated("This account is deactivated.")
        return Principal(user=token.user)
    spoke = session.scalar(select(Spoke).where(Spoke.token_hash == hashed))
    if spoke is not None and spoke.active:
        return Principal(spoke_service=spoke)
    raise NotAuthenticated("The token is not valid.")


def revoke(session: Session, raw_token: str, clock: Clock) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(raw_token)))
    if token is not None and token.revoked_at is None:
        token.revoked_at = clock.now()
