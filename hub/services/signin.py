"""Accounts in use: signing in and out (audited, failures too), a spoke checking its doctor's
password, password change and reset under the password rule, and deactivation of any role.
Owns the commits of these changes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.passwords import password_problems
from hub.persistence.models import ApiToken, User
from hub.services.access import require_role
from hub.services.audit import audit, audit_sign_in
from hub.services.auth import (
    Principal,
    check_password,
    digest,
    hash_password,
    login,
    revoke,
    revoke_all,
    verify_password,
)
from shared.clock import Clock
from shared.enums import Role
from shared.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound


def require_good_password(password: str, role: Role, username: str) -> None:
    problems = password_problems(password, role, username)
    if problems:
        raise InvalidInput("The password is too weak.", fields={"password": problems})


@dataclass
class SignIn:
    session: Session
    clock: Clock
    remote_addr: str = ""

    def sign_in(self, username: str, password: str, ttl_s: int, via: str) -> tuple[str, User]:
        """A login token; the attempt, right or wrong, is in the audit log."""
        try:
            token, user = login(self.session, username, password, self.clock, ttl_s)
        except NotAuthenticated:
            self._failed(username, via)
            raise
        audit_sign_in(
            self.session, self.clock, "sign_in", username, user, self.remote_addr, via=via
        )
        self.session.commit()
        return token, user

    def sign_out(self, principal: Principal, raw_token: str, via: str) -> None:
        revoke(self.session, raw_token, self.clock)
        if principal.user is not None:
            audit_sign_in(
                self.session,
                self.clock,
                "sign_out",
                principal.user.username,
                principal.user,
                self.remote_addr,
                via=via,
            )
        self.session.commit()

    def verify_doctor(self, spoke: Principal, username: str, password: str) -> User:
        """A spoke checks a clinic doctor's password without a hub token being made. Anything
        but an active doctor of that very spoke with that password is the same 401."""
        require_role(spoke, spoke_service=True)
        assert spoke.spoke_service is not None
        try:
            user = check_password(self.session, username, password)
            if user.role != Role.SPOKE_DOCTOR.value or user.spoke_id != spoke.spoke_service.id:
                raise NotAuthenticated("Wrong username or password.")
        except NotAuthenticated:
            self._failed(username, "spoke", spoke)
            raise
        audit_sign_in(
            self.session,
            self.clock,
            "sign_in",
            username,
            user,
            self.remote_addr,
            spoke.spoke_service,
            via="spoke",
        )
        self.session.commit()
        return user

    def _failed(self, username: str, via: str, spoke: Principal | None = None) -> None:
        self.session.rollback()
        known = self.session.scalar(select(User).where(User.username == username))
        audit_sign_in(
            self.session,
            self.clock,
            "sign_in_failed",
            username,
            known,
            self.remote_addr,
            spoke.spoke_service if spoke else None,
            via=via,
        )
        self.session.commit()

    # -- passwords and deactivation ----------------------------------------------------------
    def change_password(
        self, principal: Principal, current: str, new: str, raw_token: str | None
    ) -> None:
        """The user's own change: the current password first; every other login ends."""
        user = principal.user
        if user is None or principal.spoke_service is not None:
            raise Forbidden("Only a signed-in person changes their own password.")
        if not verify_password(user.password_hash, current):
            raise InvalidInput(
                "The current password is wrong.", fields={"current_password": ["wrong"]}
            )
        self._set_password(user, new)
        keep = digest(raw_token) if raw_token else None
        for token in self._live_tokens(user):
            if token.token_hash != keep:
                token.revoked_at = self.clock.now()
        audit(
            self.session,
            self.clock,
            principal,
            "password_change",
            "user",
            user.username,
            self.remote_addr,
        )
        self.session.commit()

    def reset_password(self, principal: Principal, user_id: int, new: str) -> User:
        """An admin sets a new password; every login of the user ends."""
        require_role(principal, Role.ADMIN)
        user = self._user(user_id)
        self._set_password(user, new)
        revoke_all(self.session, user, self.clock)
        audit(
            self.session,
            self.clock,
            principal,
            "password_reset",
            "user",
            user.username,
            self.remote_addr,
        )
        self.session.commit()
        return user

    def _set_password(self, user: User, new: str) -> None:
        require_good_password(new, Role(user.role), user.username)
        user.password_hash = hash_password(new)

    def _live_tokens(self, user: User) -> list[ApiToken]:
        return list(
            self.session.scalars(
                select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            )
        )

    def _user(self, user_id: int) -> User:
        user = self.session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user
