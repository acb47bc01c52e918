"""The password rule (DESIGN.md, "Security rules"): long passphrases rather than symbol rules
(NIST SP 800-63B), longer still for the roles that see or manage everything."""

from __future__ import annotations

from shared.enums import Role

DEFAULT_MIN_LENGTH = 12
# Supervisors read every case and admins manage every account: four characters more.
PRIVILEGED = frozenset({Role.SUPERVISOR, Role.ADMIN})
PRIVILEGED_EXTRA = 4
MAX_LENGTH = 256
# Passwords every guessing list starts with; a long one of these is still guessed first.
_COMMON = frozenset(
    {
        "password1234",
        "passwordpassword",
        "123456789012",
        "qwertyuiopas",
        "administrator",
        "letmeinletmein",
        "iloveyou1234",
        "welcome12345",
        "teleconsult123",
        "changeme1234",
    }
)


def min_length(role: Role, base: int = DEFAULT_MIN_LENGTH) -> int:
    return base + (PRIVILEGED_EXTRA if role in PRIVILEGED else 0)


def password_problems(
    password: str, role: Role, username: str = "", base: int = DEFAULT_MIN_LENGTH
) -> list[str]:
    """What is wrong with ``password`` for an account of ``role``; empty when it is acceptable."""
    problems = []
    needed = min_length(role, base)
    if len(password) < needed:
        problems.append(f"At least {needed} characters for a {role.value} (a passphrase works).")
    if len(password) > MAX_LENGTH:
        problems.append(f"At most {MAX_LENGTH} characters.")
    if password and len(set(password)) < 4:
        problems.append("Use more than a few different characters.")
    lowered = password.lower()
    if username and username.lower() in lowered:
        problems.append("The password must not contain the username.")
    if lowered in _COMMON:
        problems.append("This password is on every guessing list.")
    return problems
