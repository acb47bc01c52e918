"""SQLite: commits are durable, and writers wait for the lock without blocking an eventlet hub."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from teleconsult.db import make_engine

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, types
    if sys.argv[2] == "eventlet":
        import eventlet
        eventlet.monkey_patch()
    from sqlalchemy import text
    import teleconsult.db as tdb
    from teleconsult.db import Database

    # The second writer found the lock taken and backs off in Python (the code's own pause, passed
    # through): the holder may let go then.
    contended = threading.Event()
    backoff = time.sleep
    def waiting(seconds):
        contended.set()
        backoff(seconds)
    tdb.time = types.SimpleNamespace(sleep=waiting, monotonic=time.monotonic)

    url = f"sqlite:///{sys.argv[1]}"
    db, holder = Database(url), Database(url)
    with db.session() as s:
        s.execute(text("create table t (x int)"))
    ready = threading.Event()

    def hold():
        with holder.session() as s:
            s.execute(text("insert into t values (1)"))
            ready.set()
            # Holds the write lock until the other writer has met it (under eventlet this
            # wait yields, which SQLite's own lock wait would not let it do).
            assert contended.wait(60), "the second writer never met the lock"

    threading.Thread(target=hold).start()
    ready.wait()
    with db.session() as s:
        s.execute(text("insert into t values (2)"))
    with db.session() as s:
        print(s.execute(text("select count(*) from t")).scalar(), contended.is_set())
    """
)


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "db.sqlite"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_a_second_writer_waits_for_the_first_with_threads(tmp_path: Path) -> None:
    result = _run(tmp_path, "threads")
    assert result.returncode == 0 and result.stdout.strip() == "2 True", result.stderr


def test_a_second_writer_waits_for_the_first_under_eventlet(tmp_path: Path) -> None:
    result = _run(tmp_path, "eventlet")
    assert result.returncode == 0 and result.stdout.strip() == "2 True", result.stderr[-2000:]


def test_sqlite_commits_reach_the_disk_before_returning(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()
