"""Fuzzing the hub's REST API from its own OpenAPI document with schemathesis (in CI, bounded):
whatever it sends, the hub never answers 5xx and every answer it documents matches its schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

from hub.app import create_app
from hub.persistence.models import ApiToken, User
from hub.services.auth import digest, new_secret
from shared.clock import FrozenClock
from tests.support.hub import prepare_hub_db

pytestmark = pytest.mark.fuzz

# A bounded run: examples per operation (about 50 operations); raise it locally to dig deeper.
EXAMPLES = 20


def _app(tmp: Path) -> Any:
    url = f"sqlite:///{tmp / 'fuzz.sqlite'}"
    prepare_hub_db(url)
    app = create_app(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp / "hub"),
            "database_url": url,
            "sign_in_limit_address": "100000 per minute",
            "sign_in_limit_account": "100000 per minute",
        },
        clock=FrozenClock(),
    )
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = _app(tmp_path_factory.mktemp("fuzz"))
    yield app
    app.extensions["teleconsult"].db.dispose()


def _bearer(app: Any, username: str) -> str:
    answer = app.test_client().post(
        "/api/v1/auth/token", json={"username": username, "password": "demo"}
    )
    return str(answer.json["access_token"])


class Accounts:
    """The fuzzer may deactivate users, reset their passwords or sign out: before each example
    the accounts are put back as they were and the caller signs in afresh."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.db = app.extensions["teleconsult"].db
        with self.db.session() as s:
            self.saved = {u.id: u.password_hash for u in s.scalars(select(User))}

    def fresh_token(self, username: str) -> str:
        """Accounts as they were, and a new login token (made directly: no argon2 per call)."""
        raw = new_secret()
        with self.db.session() as s:
            for user in s.scalars(select(User)):
                user.active = True
                user.password_hash = self.saved.get(user.id, user.password_hash)
            user = s.scalars(select(User).where(User.username == username)).one()
            now = datetime.now(UTC)
            s.add(
                ApiToken(
                    token_hash=digest(raw),
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
        return raw


def _fuzz(operation: Any, accounts: Accounts, who: str, counter: list[int]) -> Any:
    """A hypothesis test of one operation, called as ``who``."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        counter[0] += 1
        token = accounts.fresh_token(who)
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    return run


def test_no_server_error_and_answers_match_the_schema(hub_app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", hub_app)
    accounts = Accounts(hub_app)
    callers = ("sup1", "ortho1", "admin")
    failures: list[str] = []
    counter = [0]
    operations = [result.ok() for result in schema.get_all_operations()]
    for n, operation in enumerate(operations):
        # Operations in turn as a supervisor, a specialist and an admin: past authentication,
        # into validation and the services.
        who = callers[n % len(callers)]
        run = _fuzz(operation, accounts, who, counter)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation is fuzzed, all told
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    calls = counter[0]
    FIGURES.update(operations=len(operations), calls=calls, failures=len(failures))
    print(f"schemathesis: {len(operations)} operations, {calls} requests, {len(failures)} failing")
    assert len(operations) >= 30
    assert not failures, "\n\n".join(failures)


FIGURES: dict[str, int] = {}
