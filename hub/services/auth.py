"""Passwords, bearer tokens and spoke service tokens: who is calling."""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.persistence.models import ApiToken, Spoke, User
from shared.clock import Clock
from shared.enums import Role
from shared.errors import Forbidden, NotAuthenticated

_hasher = PasswordHasher()
# Checked against when the username is unknown, so that both answers take the same time.
_DUMMY_HASH = _hasher.hash("not-a-password")
T = TypeVar("T")


class DoctorInactive(Forbidden):
    """A spoke acted for a doctor the hub does not (or no longer) let in: the spoke signs them
    out."""

    code = "doctor_inactive"


def off_event_loop(work: Callable[..., T], *args: object) -> T:
    """Run CPU-heavy ``work`` (argon2: tens of milliseconds) in eventlet's thread pool when the
    hub runs monkey-patched under eventlet, so the one event loop keeps serving everyone else;
    directly otherwise (threads: argon2 releases the GIL)."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        from eventlet import tpool

        return tpool.execute(work, *args)  # type: ignore[no-any-return]
    return work(*args)


def hash_password(password: str) -> str:
    return off_event_loop(_hasher.hash, password)


def verify_password(stored_hash: str, password: str) -> bool:
    return off_event_loop(_verify, stored_hash, password)


def _verify(stored_hash: str, password: str) -> bool:
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
    def acting_doctor(self) -> bool:
        """A spoke's service acting for one of its clinic doctors (``user``)."""
        return self.spoke_service is not None and self.user is not None

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


def check_password(session: Session, username: str, password: str) -> User:
    """The active user with this password; a wrong name, password or a deactivated account is
    one answer, in the same time."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise NotAuthenticated("Wrong username or password.")
    if not verify_password(user.password_hash, password) or not user.active:
        raise NotAuthenticated("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def login(
    session: Session, username: str, password: str, clock: Clock, ttl_s: int
) -> tuple[str, User]:
    """Check the password and issue a bearer token; a wrong name or password is one answer."""
    user = check_password(session, username, password)
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


def acting_for(session: Session, principal: Principal, username: str) -> Principal:
    """The spoke's service acting for its clinic doctor ``username``: trusted only from a spoke's
    service token and only for an active clinic doctor of that spoke."""
    spoke = principal.spoke_service
    if spoke is None:
        return principal  # a person's token speaks for that person only
    doctor = session.scalar(select(User).where(User.username == username))
    if (
        doctor is None
        or not doctor.active
        or doctor.role != Role.SPOKE_DOCTOR.value
        or doctor.spoke_id != spoke.id
    ):
        raise DoctorInactive(f"{username!r} is not an active clinic doctor of {spoke.code}.")
    return Principal(user=doctor, spoke_service=spoke)


def revoke_all(session: Session, user: User, clock: Clock) -> int:
    """End every login of ``user`` (password change or reset, deactivation)."""
    now = clock.now()
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def purge_tokens(session: Session, clock: Clock, keep: timedelta = timedelta(days=1)) -> int:
    """Forget login tokens that expired or were revoked more than ``keep`` ago: no pile of dead
    credentials (their sign-ins stay in the audit log)."""
    cutoff = clock.now() - keep
    result = session.execute(
        delete(ApiToken).where((ApiToken.expires_at < cutoff) | (ApiToken.revoked_at < cutoff))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revoke(session: Session, raw_token: str, clock: Clock) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(raw_token)))
    if token is not None and token.revoked_at is None:
        token.revoked_at = clock.now()
