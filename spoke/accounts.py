"""Who may use this spoke: clinic doctors of this spoke, checked at the hub when it answers and
against the argon2 hash of their last verified password when it does not (offline sign-in).

Every sign-in (page or API) is a server-side session row (``LocalToken``): signing out revokes
it at once, it ends after ``session_ttl_s``, and while the hub answers the doctor's standing is
checked there every ``doctor_recheck_s``: a doctor deactivated at the hub is signed out here, and
their cached password stops working offline too. Offline, a session lives until it expires."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.clock import Clock
from shared.enums import Role
from shared.errors import Forbidden, NotAuthenticated
from spoke.hub_api import HubApi, HubRefused, HubUnavailable
from spoke.persistence.models import LocalToken, LocalUser
from teleconsult.db import Database

log = logging.getLogger(__name__)

TOKEN_TTL = timedelta(hours=12)
_STATUS_TIMEOUT_S = 3.0  # a page waits at most this long for the hub's word on its doctor
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-password")
_WRONG = "Wrong username or password."


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ClinicDoctor:
    """The signed-in user as the spoke knows them."""

    username: str
    name: str
    # The pages' language this doctor chose (remembered at the spoke; first from the hub).
    language: str | None = None


class Accounts:
    """Sign-in, local bearer tokens and the cache of clinic doctors."""

    def __init__(
        self,
        db: Database,
        hub_api: HubApi,
        clock: Clock,
        spoke_code: str,
        ttl: timedelta = TOKEN_TTL,
        recheck_s: float = 60.0,
    ) -> None:
        self.db = db
        self.hub_api = hub_api
        self.clock = clock
        self.spoke_code = spoke_code
        self.ttl = ttl
        self.recheck_s = recheck_s
        self._checked: dict[str, float] = {}  # username -> monotonic time of the hub's last word
        self._lock = threading.Lock()

    def sign_in(self, username: str, password: str) -> ClinicDoctor:
        """Check the password at the hub, or offline against the cached hash; only clinic
        doctors of this spoke get in. Every refusal is the same 401: whether the password was
        right for a specialist or another clinic's doctor is nobody's business here."""
        try:
            user = self.hub_api.verify_doctor(username, password)
        except HubUnavailable as exc:
            log.warning("hub unreachable for sign-in of %s (%s): checking offline", username, exc)
            return self._sign_in_offline(username, password)
        except HubRefused as exc:
            if exc.status in (400, 401, 403):
                self._forget_password(username)
                raise NotAuthenticated(_WRONG) from None
            log.error("hub refused sign-in of %s: %s", username, exc)
            raise NotAuthenticated(_WRONG) from None
        try:
            return self._remember(user, password)
        except Forbidden:
            raise NotAuthenticated(_WRONG) from None

    def _remember(self, user: dict[str, Any], password: str) -> ClinicDoctor:
        username = str(user.get("username") or "")
        self._check_belongs_here(str(user.get("role")), user.get("spoke"))
        now = self.clock.now()
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            if row is None:
                row = LocalUser(username=username, updated_at=now)
                session.add(row)
            row.name = str(user.get("name") or username)
            row.role, row.spoke_code = str(user.get("role")), user.get("spoke")
            row.password_hash, row.verified_at, row.updated_at = _hasher.hash(password), now, now
            if row.language is None and user.get("language"):
                row.language = str(user["language"])[:8]
            return ClinicDoctor(row.username, row.name, row.language)

    def _sign_in_offline(self, username: str, password: str) -> ClinicDoctor:
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            stored = row.password_hash if row is not None and row.password_hash else None
            if not _verify(stored or _DUMMY_HASH, password) or row is None or stored is None:
                raise NotAuthenticated(
                    "The hub cannot be reached and this username and password have not been "
                    "confirmed here before: check them, or try again when the link is up."
                )
            if row.role != Role.SPOKE_DOCTOR.value or row.spoke_code != self.spoke_code:
                raise NotAuthenticated(_WRONG)
            return ClinicDoctor(row.username, row.name, row.language)

    def _check_belongs_here(self, role: str, spoke: Any) -> None:
        if role != Role.SPOKE_DOCTOR.value or spoke != self.spoke_code:
            raise Forbidden(f"Only clinic doctors of {self.spoke_code} can sign in here.")

    def _forget_password(self, username: str) -> None:
        """The hub says the password is wrong: the cached one must not work offline either."""
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            if row is not None:
                row.password_hash = None

    # -- sessions and bearer tokens (server-side, revocable) ----------------------------------
    def issue_token(self, doctor: ClinicDoctor) -> tuple[str, int]:
        """A new session for ``doctor`` (a page cookie's or a bearer token) and its lifetime in
        seconds; only its sha256 is kept."""
        raw = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.db.session() as session:
            user = self._user(session, doctor.username)
            session.add(
                LocalToken(
                    token_hash=digest(raw),
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        with self._lock:
            self._checked[doctor.username] = time.monotonic()  # the hub just vouched for them
        return raw, int(self.ttl.total_seconds())

    def authenticate(self, raw_token: str) -> ClinicDoctor:
        """The doctor of a live session; revoked, expired, or deactivated at the hub: 401."""
        if not raw_token:
            raise NotAuthenticated("Sign in first: send 'Authorization: Bearer <token>'.")
        with self.db.session() as session:
            token = session.scalar(
                select(LocalToken).where(LocalToken.token_hash == digest(raw_token))
            )
            if token is None or token.revoked_at is not None:
                raise NotAuthenticated("The token is not valid.")
            if token.expires_at <= self.clock.now():
                raise NotAuthenticated("Your session has expired: sign in again.")
            user = session.get_one(LocalUser, token.user_id)
            doctor = ClinicDoctor(user.username, user.name, user.language)
        self._recheck_at_hub(doctor.username)
        return doctor

    def revoke(self, raw_token: str) -> None:
        """Sign-out: this session stops working at once."""
        with self.db.session() as session:
            session.execute(
                update(LocalToken)
                .where(LocalToken.token_hash == digest(raw_token), LocalToken.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )

    def _recheck_at_hub(self, username: str) -> None:
        """Ask the hub, at most every ``recheck_s``, whether the doctor may still work here."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked.get(username, float("-inf")) < self.recheck_s:
                return
            self._checked[username] = now  # also when the hub is down: no page waits twice
        try:
            self.hub_api.doctor_status(username, _STATUS_TIMEOUT_S)
        except HubUnavailable:
            return  # offline: the session holds until it expires
        except HubRefused as exc:
            if exc.status in (401, 403) and exc.code in ("doctor_inactive", "forbidden"):
                self.sign_out_everywhere(username)
                raise NotAuthenticated("This account is no longer active: ask the hub.") from None
            log.warning("hub refused the status of %s: %s", username, exc)

    def sign_out_everywhere(self, username: str) -> None:
        """The hub no longer lets this doctor in: every session ends, and the cached password
        no longer signs in offline."""
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            if row is None:
                return
            row.password_hash = None
            session.execute(
                update(LocalToken)
                .where(LocalToken.user_id == row.id, LocalToken.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
        log.warning("%s is no longer active at the hub: signed out of this spoke", username)

    def doctor(self, username: str) -> ClinicDoctor | None:
        """The cached clinic doctor ``username`` (for a page session), if still allowed here."""
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            if (
                row is None
                or row.role != Role.SPOKE_DOCTOR.value
                or row.spoke_code != self.spoke_code
            ):
                return None
            return ClinicDoctor(row.username, row.name, row.language)

    def set_language(self, username: str, language: str) -> None:
        """Remember the doctor's choice of language for their next sign-in, on any browser."""
        with self.db.session() as session:
            row = session.scalar(select(LocalUser).where(LocalUser.username == username))
            if row is not None:
                row.language = language

    def _user(self, session: Session, username: str) -> LocalUser:
        row = session.scalar(select(LocalUser).where(LocalUser.username == username))
        if row is None:
            raise NotAuthenticated("Unknown user.")
        return row


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
