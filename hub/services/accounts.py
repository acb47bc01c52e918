"""Users, spokes and specialties: what an administrator sets up (and what the demo seeds)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.passwords import password_problems
from hub.domain.policy import WorkflowPolicy
from hub.persistence.models import Specialty, Spoke, User
from hub.services.auth import digest, hash_password, new_secret
from hub.services.supervision import SupervisionService
from shared.clock import Clock, SystemClock
from shared.enums import DEFAULT_SPECIALTIES, Role
from shared.errors import Conflict, InvalidInput, NotFound


def ensure_specialties(
    session: Session, specialties: Iterable[tuple[str, str]] = DEFAULT_SPECIALTIES
) -> None:
    """Add the specialties that are missing; never renames or removes one."""
    have = set(session.scalars(select(Specialty.code)))
    for code, name in specialties:
        if code not in have:
            session.add(Specialty(code=code, name=name))
    session.flush()


def find_spoke(session: Session, code: str) -> Spoke:
    spoke = session.scalar(select(Spoke).where(Spoke.code == code))
    if spoke is None:
        raise NotFound(f"No spoke with code {code!r}.")
    return spoke


def register_spoke(
    session: Session, code: str, name: str, ae_titles: list[str] | None = None
) -> tuple[Spoke, str]:
    """Create the spoke, or give an existing one a new service token (the old one stops working).

    Returns the spoke and its token; only its digest is kept, so the token is shown this once.
    """
    token = new_secret()
    spoke = session.scalar(select(Spoke).where(Spoke.code == code))
    if spoke is None:
        spoke = Spoke(code=code, name=name or code, ae_titles=list(ae_titles or []))
        session.add(spoke)
    elif ae_titles:
        spoke.ae_titles = list(ae_titles)
    spoke.token_hash = digest(token)
    session.flush()
    return spoke, token


def add_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    name: str = "",
    spoke_code: str | None = None,
    specialties: Iterable[str] = (),
    qualification: str = "",
    registration_number: str = "",
    password_hash: str | None = None,
    supervise: WorkflowPolicy | None = None,
    clock: Clock | None = None,
) -> User:
    """Create a user; a clinic doctor needs a spoke, a specialist at least one specialty.

    With ``supervise`` (the hub's policy: its configured ratio) a new clinic doctor is placed in
    each specialty's supervision group and a new specialist takes unsupervised doctors (the
    hub's REST API does this itself, with events)."""
    try:
        role_ = Role(role)
    except ValueError:
        raise InvalidInput(
            f"Unknown role {role!r}: use one of {', '.join(r.value for r in Role)}."
        ) from None
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"The username {username!r} is taken.")
    spoke = find_spoke(session, spoke_code) if spoke_code else None
    if role_ is Role.SPOKE_DOCTOR and spoke is None:
        raise InvalidInput("A clinic doctor belongs to a spoke: give --spoke.")
    wanted = list(specialties)
    found = list(session.scalars(select(Specialty).where(Specialty.code.in_(wanted))))
    missing = set(wanted) - {s.code for s in found}
    if missing:
        raise InvalidInput(f"Unknown specialties: {', '.join(sorted(missing))}.")
    if role_ is Role.SPECIALIST and not found:
        raise InvalidInput("A specialist needs at least one specialty.")
    if password_hash is None:
        problems = password_problems(password, role_, username)
        if problems:
            raise InvalidInput("The password is too weak.", fields={"password": problems})
    user = User(
        username=username,
        name=name or username,
        password_hash=password_hash or hash_password(password),
        role=role_.value,
        spoke=spoke,
        specialties=found,
        qualification=qualification,
        registration_number=registration_number,
    )
    session.add(user)
    session.flush()
    if supervise is not None and role_ in (Role.SPOKE_DOCTOR, Role.SPECIALIST):
        place_in_supervision(session, supervise, clock)
    return user


def place_in_supervision(
    session: Session, policy: WorkflowPolicy, clock: Clock | None = None
) -> int:
    """Set-up outside a running hub: rebalance the supervision groups under the configured
    ratio (``policy``, from the hub's settings), audited, no events."""
    service = SupervisionService(session, clock or SystemClock(), policy, emit_events=False)
    return service.rebalance(reason="user set-up")


DEMO_PASSWORD = "demo"


def seed_demo(session: Session, policy: WorkflowPolicy) -> dict[str, str]:
    """The demo hub of DESIGN.md: specialties, spokes PHC-1 and PHC-2, the demo users,
    supervised under the hub's configured ratio (``policy``).

    Idempotent for users; returns the fresh service tokens of both spokes.
    """
    ensure_specialties(session)
    tokens = {}
    for code, name, aes in (
        ("PHC-1", "Primary Health Centre 1", ["SPOKE1"]),
        ("PHC-2", "Primary Health Centre 2", ["SPOKE2"]),
    ):
        _, tokens[code] = register_spoke(session, code, name, aes)
    people: list[tuple[str, str, str, str | None, list[str], str]] = [
        ("admin", "Hub Administrator", Role.ADMIN, None, [], ""),
        ("sup1", "Dr. Supervisor One", Role.SUPERVISOR, None, [], "MD"),
    ]
    for code, _name in DEFAULT_SPECIALTIES:
        people.append(
            (f"{code}1", f"Dr. {code.title()} Specialist", Role.SPECIALIST, None, [code], "MD, MS")
        )
    for n in range(1, 6):
        people.append(
            (
                f"clinic{n}",
                f"Dr. Clinic {n}",
                Role.SPOKE_DOCTOR,
                "PHC-1" if n <= 3 else "PHC-2",
                [],
                "MBBS",
            )
        )
    existing = set(session.scalars(select(User.username)))
    shared_hash = hash_password(DEMO_PASSWORD)  # one hash for all: demo accounts only
    for username, name, role, spoke, specs, qual in people:
        if username in existing:
            continue
        add_user(
            session,
            username,
            DEMO_PASSWORD,
            role,
            name=name,
            spoke_code=spoke,
            specialties=specs,
            qualification=qual,
            registration_number=f"REG-{username.upper()}" if role == Role.SPECIALIST else "",
            password_hash=shared_hash,
        )
    place_in_supervision(session, policy)
    return tokens
