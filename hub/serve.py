"""Run the hub server from its settings (called by ``python -m hub``, i.e. ``teleconsult hub``)."""

from __future__ import annotations

import logging
import resource
import sys

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from config.settings import Settings
from hub.realtime.jobs import start_periodic_jobs, workflow_tick
from teleconsult.db import make_engine
from teleconsult.migrations import alembic_config
from teleconsult.runtime import settings_from_argv

log = logging.getLogger("teleconsult.hub")


def schema_is_current(url: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config("hub", url))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == set(
                script.get_heads()
            )
    finally:
        engine.dispose()


def _green_postgres(settings: Settings, url: str) -> None:
    if settings.async_mode == "eventlet" and url.startswith("postgresql"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()  # queries yield to other green threads instead of blocking the hub


def main(argv: list[str] | None = None) -> None:
    settings = settings_from_argv("hub", argv)
    from hub.app import create_app
    from teleconsult.db import default_url

    url = default_url(settings)
    _green_postgres(settings, url)
    if not schema_is_current(url):
        sys.exit(
            "The hub database is not at the newest schema: run `teleconsult db upgrade` first."
        )
    app = create_app(settings)
    socketio = app.extensions["teleconsult.socketio"]
    log.info(
        "Teleconsult hub listening on http://%s:%s (%s)",
        settings.host,
        settings.port,
        settings.async_mode,
    )
    start_periodic_jobs(app, settings.socket_check_s, extra=[lambda: workflow_tick(app)])
    kwargs: dict[str, object] = {"log_output": False}
    if settings.async_mode == "eventlet":
        _raise_open_files_limit(settings.max_connections + 256)
        kwargs["max_size"] = settings.max_connections  # eventlet's default holds only 1,024
    else:
        kwargs["allow_unsafe_werkzeug"] = True
    socketio.run(app, host=settings.host, port=settings.port, **kwargs)


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor; the usual soft limit of 1,024 is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open files limit raised from %d to %d", soft, target)
