"""Real hub processes for tests: migrated, seeded with the demo accounts, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.settings import load_settings
from hub.domain.policy import WorkflowPolicy
from hub.services.accounts import seed_demo
from teleconsult.db import Database
from teleconsult.migrations import upgrade
from tests.support.databases import from_template
from tests.support.processes import Process, free_port, running, start, wait_http


@dataclass
class RunningHub:
    url: str
    process: Process
    spoke_tokens: dict[str, str]
    database_url: str
    data_dir: Path
    port: int


def prepare_hub_db(database_url: str) -> dict[str, str]:
    """Migrated and seeded under the configured policy (a copy of a template made once per
    session and policy: a test that sets TELECONSULT_HUB_RATIO gets its own); returns the
    spokes' service tokens."""
    policy = WorkflowPolicy.from_settings(load_settings("hub"))
    tokens: dict[str, str] = from_template(
        database_url, f"hub-demo:{policy!r}", lambda url: _migrate_and_seed(url, policy)
    )
    return dict(tokens)


def _migrate_and_seed(database_url: str, policy: WorkflowPolicy) -> dict[str, str]:
    upgrade("hub", database_url)
    db = Database(database_url)
    try:
        with db.session() as session:
            return seed_demo(session, policy)
    finally:
        db.dispose()


def start_hub(
    tmp: Path,
    database_url: str,
    *,
    name: str = "hub",
    port: int | None = None,
    async_mode: str = "threading",
    extra_env: dict[str, str] | None = None,
) -> tuple[Process, int]:
    """Start one hub process on an already prepared database and wait until it answers."""
    data_dir = tmp / "hub"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {
        "TELECONSULT_HUB_PORT": str(port),
        "TELECONSULT_HUB_DATA_DIR": str(data_dir),
        "TELECONSULT_HUB_DATABASE_URL": database_url,
        "TELECONSULT_HUB_ASYNC_MODE": async_mode,
        "TELECONSULT_HUB_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    process = start(name, ["hub"], env, tmp)
    try:
        wait_http(process, f"http://127.0.0.1:{port}/healthz")
    except BaseException:
        process.stop()
        raise
    return process, port


@contextmanager
def hub_process(
    tmp: Path,
    database_url: str | None = None,
    async_mode: str = "threading",
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningHub]:
    url = database_url or f"sqlite:///{tmp / 'hub' / 'hub.sqlite'}"
    (tmp / "hub").mkdir(parents=True, exist_ok=True)
    tokens = prepare_hub_db(url)
    process, port = start_hub(tmp, url, async_mode=async_mode, extra_env=extra_env)
    with running(process):
        yield RunningHub(f"http://127.0.0.1:{port}", process, tokens, url, tmp / "hub", port)
