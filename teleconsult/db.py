"""Engine and session factory; SQLite gets the pragmas that make it safe for a small hub."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.backoff import Backoff
from teleconsult.files import private_dir, private_sqlite


def default_url(settings: Mapping[str, Any]) -> str:
    """The component's ``database_url``, or a SQLite file ``<data_dir>/<component>.sqlite``."""
    if settings["database_url"]:
        return str(settings["database_url"])
    data_dir = private_dir(Path(settings["data_dir"]).resolve())
    component = getattr(settings, "component", "teleconsult")
    return f"sqlite:///{data_dir / (component + '.sqlite')}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``. SQLite: WAL, foreign keys, and waiting for locks instead of
    failing."""
    if url.startswith("sqlite"):
        private_sqlite(url)  # cases and password hashes: the owner's only (0600, folder 0700)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, manage transactions (see _sqlite_begin_immediate).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the caller is answered (NORMAL, in WAL mode, may lose the
    # last commits in a power cut, e.g. images the hub already confirmed to a bridge).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Short: waiting for another writer happens in _sqlite_begin_immediate, where an eventlet
    # hub can run its other green threads meanwhile (SQLite's own wait would block them all).
    cur.execute("PRAGMA busy_timeout=20")
    cur.close()


_LOCK_WAIT_S = 30.0


def _sqlite_begin_immediate(conn: Any) -> None:
    """Take the write lock at BEGIN, so that two writers queue instead of failing mid-transaction.

    While another writer (a thread, a green thread, or another process such as the CLI) holds
    it, wait here in Python: ``time.sleep`` yields under eventlet, so the hub keeps serving.
    """
    deadline = time.monotonic() + _LOCK_WAIT_S
    pauses = Backoff(0.002, 0.05)
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                raise
        time.sleep(pauses.next())


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
