"""A real hub process for tests: migrated, seeded with the demo accounts, on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hub.services.accounts import seed_demo
from teleconsult.db import Database
from teleconsult.migrations import upgrade
from tests.support.processes import Process, free_port, running, start, wait_http


@dataclass
class RunningHub:
    url: str
    process: Process
    spoke_tokens: dict[str, str]
    database_url: str
    data_dir: Path


def prepare_hub_db(database_url: str) -> dict[str, str]:
    """Migrate and seed; returns the spokes' service tokens."""
    upgrade("hub", database_url)
    db = Database(database_url)
    try:
        with db.session() as session:
            return seed_demo(session)
    finally:
        db.dispose()


@contextmanager
def hub_process(tmp: Path, database_url: str | None = None, async_mode: str = "threading") -> Iterator[RunningHub]:
    data_dir = tmp / "hub"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'hub.sqlite'}"
    tokens = prepare_hub_db(url)
    port = free_port()
    env = {
        "TELECONSULT_HUB_PORT": str(port),
        "TELECONSULT_HUB_DATA_DIR": str(data_dir),
        "TELECONSULT_HUB_DATABASE_URL": url,
        "TELECONSULT_HUB_ASYNC_MODE": async_mode,
        "TELECONSULT_HUB_LOG_LEVEL": "INFO",
    }
    process = start("hub", ["hub"], env, tmp)
    with running(process):
        base = f"http://127.0.0.1:{port}"
        wait_http(process, base + "/healthz")
        yield RunningHub(base, process, tokens, url, data_dir)
