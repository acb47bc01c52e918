"""Fresh databases for tests: a SQLite file, or a new PostgreSQL database dropped afterwards;
and copies of a database migrated (and seeded) once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# The server the machine (and CI) provides; override for another one.
POSTGRES_ADMIN_URL = os.environ.get(
    "TELECONSULT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def fresh_postgres() -> Iterator[str]:
    name = f"tc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'hub.sqlite'}"
    else:
        with fresh_postgres() as url:
            yield url


# key -> (template's URL, what building it returned), made once per test session.
_TEMPLATES: dict[str, tuple[str, Any]] = {}


def from_template(url: str, key: str, build: Callable[[str], Any]) -> Any:
    """Make the empty database at ``url`` a copy of a template built once per session by
    ``build(template_url)`` (migrations, seed data), and return what ``build`` returned.

    Migrating and seeding (argon2 password hashes) cost about a second per test; a copy costs a
    few milliseconds: SQLite copies the file, PostgreSQL uses ``CREATE DATABASE ... TEMPLATE``.
    """
    dialect = make_url(url).get_backend_name()
    key = f"{dialect}:{key}"
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _build_template(dialect, build)
    template_url, built = _TEMPLATES[key]
    if dialect == "sqlite":
        target = Path(str(make_url(url).database))
        if target.exists() and target.stat().st_size:
            raise ValueError(f"{target} is not empty: a template copy would replace its data")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(str(make_url(template_url).database), target)
    else:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name, template = make_url(url).database, make_url(template_url).database
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        finally:
            admin.dispose()
    return built


def _build_template(dialect: str, build: Callable[[str], Any]) -> tuple[str, Any]:
    if dialect == "sqlite":
        folder = tempfile.mkdtemp(prefix="tc-template-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "template.sqlite"
        built = build(f"sqlite:///{path}")
        with sqlite3.connect(path) as db:  # everything in the main file, none in a WAL beside it
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return f"sqlite:///{path}", built
    name = f"tc_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    atexit.register(_drop_postgres, name)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, build(url)


def _drop_postgres(name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


REDIS_URL = os.environ.get("TELECONSULT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except Exception:
        return False
