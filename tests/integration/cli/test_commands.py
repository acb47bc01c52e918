"""The administrator's commands against a real database file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.persistence.models import Spoke, User
from hub.services.auth import digest, verify_password
from teleconsult.cli import main
from teleconsult.db import Database


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    monkeypatch.setenv("TELECONSULT_HUB_DATABASE_URL", url)
    monkeypatch.setenv("TELECONSULT_HUB_DATA_DIR", str(tmp_path))
    return url


def _run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(main, list(args), input=input)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_db_upgrade_then_spoke_register_then_user_add(hub_env: str) -> None:
    assert "newest schema" in _run("db", "upgrade")
    assert "newest schema" in _run("db", "upgrade")  # twice is harmless
    out = _run("spoke", "register", "PHC-7", "--name", "PHC Rampur", "--ae", "SPOKE7")
    token = out.splitlines()[1].strip()
    _run(
        "user",
        "add",
        "drrao",
        "--role",
        "spoke_doctor",
        "--spoke",
        "PHC-7",
        "--name",
        "Dr. A. Rao",
        input="s3cret-passphrase\ns3cret-passphrase\n",
    )
    db = Database(hub_env)
    with db.session() as s:
        spoke = s.scalars(select(Spoke)).one()
        assert (spoke.code, spoke.ae_titles, spoke.token_hash) == (
            "PHC-7",
            ["SPOKE7"],
            digest(token),
        )
        user = s.scalars(select(User)).one()
        assert (user.role, user.spoke_id, user.name) == ("spoke_doctor", spoke.id, "Dr. A. Rao")
        assert verify_password(user.password_hash, "s3cret-passphrase")
    db.dispose()


def test_registering_again_replaces_the_token(hub_env: str) -> None:
    _run("db", "upgrade")
    first = _run("spoke", "register", "PHC-7").splitlines()[1]
    second = _run("spoke", "register", "PHC-7").splitlines()[1]
    assert first != second
    db = Database(hub_env)
    with db.session() as s:
        assert s.scalars(select(Spoke.token_hash)).one() == digest(second.strip())
    db.dispose()


def test_bad_user_input_is_a_clear_message_and_stores_nothing(hub_env: str) -> None:
    _run("db", "upgrade")
    runner = CliRunner()
    cases = [
        (
            ["user", "add", "x", "--role", "spoke_doctor", "--password", "longenough"],
            "belongs to a spoke",
        ),
        (
            ["user", "add", "x", "--role", "specialist", "--password", "longenough"],
            "at least one specialty",
        ),
        (
            [
                "user",
                "add",
                "x",
                "--role",
                "specialist",
                "--specialty",
                "cardio",
                "--password",
                "longenough",
            ],
            "Unknown specialties: cardio",
        ),
        (
            [
                "user",
                "add",
                "x",
                "--role",
                "spoke_doctor",
                "--spoke",
                "NOPE",
                "--password",
                "longenough",
            ],
            "No spoke with code 'NOPE'",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1 and message in result.output, result.output
    db = Database(hub_env)
    with db.session() as s:
        assert s.scalars(select(User)).all() == []
    db.dispose()


def test_the_hub_refuses_to_start_on_an_old_schema(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        "TELECONSULT_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}",
        "TELECONSULT_HUB_DATA_DIR": str(tmp_path),
        "TELECONSULT_HUB_ASYNC_MODE": "threading",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "hub"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "teleconsult db upgrade" in result.stderr


def test_bridge_without_an_allow_list_says_what_to_set_and_stops(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TELECONSULT_BRIDGE_ALLOWED_AES": "",
        "TELECONSULT_BRIDGE_ACCEPT_ANY_AE": "false",
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "TELECONSULT_BRIDGE_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from teleconsult.cli import main; main()", "bridge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "TELECONSULT_BRIDGE_ALLOWED_AES" in result.stderr
    assert "Traceback" not in result.stderr


def _supervisees(url: str) -> dict[str, int]:
    from sqlalchemy import func

    from hub.persistence.models import SupervisionLink

    db = Database(url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(User.username, func.count(func.distinct(SupervisionLink.doctor_id)))
                .join(SupervisionLink, SupervisionLink.specialist_id == User.id)
                .group_by(User.username)
            ).all()
            return {name: int(n) for name, n in rows}
    finally:
        db.dispose()


def test_user_add_keeps_the_configured_ratio(hub_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECONSULT_HUB_RATIO", "2")
    _run("db", "upgrade")
    _run("spoke", "register", "PHC-7", "--name", "PHC Rampur")
    _run(
        "user",
        "add",
        "ortho9",
        "--role",
        "specialist",
        "--specialty",
        "ortho",
        "--password",
        "s3cret-passphrase",
    )
    for n in range(4):
        _run(
            "user",
            "add",
            f"doc{n}",
            "--role",
            "spoke_doctor",
            "--spoke",
            "PHC-7",
            "--password",
            "s3cret-passphrase",
        )
    assert _supervisees(hub_env) == {"ortho9": 2}  # two more doctors wait: the shortfall


def test_the_demo_seed_keeps_the_configured_ratio(
    hub_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import load_settings
    from hub.domain.policy import WorkflowPolicy
    from hub.services.accounts import seed_demo
    from teleconsult.migrations import upgrade

    monkeypatch.setenv("TELECONSULT_HUB_RATIO", "2")
    upgrade("hub", hub_env)
    db = Database(hub_env)
    try:
        with db.session() as s:
            seed_demo(s, WorkflowPolicy.from_settings(load_settings("hub")))
    finally:
        db.dispose()
    counts = _supervisees(hub_env)
    assert counts and max(counts.values()) == 2  # five clinic doctors, one specialist each
