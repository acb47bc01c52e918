"""Run the hub server from its settings (called by ``python -m hub``, i.e. ``teleconsult hub``)."""

from __future__ import annotations

import argparse
import logging
import sys

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from config.settings import Settings, load_settings
from teleconsult.db import make_engine
from teleconsult.migrations import alembic_config

log = logging.getLogger("teleconsult.hub")


def schema_is_current(url: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config("hub", url))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == set(script.get_heads())
    finally:
        engine.dispose()


def _green_postgres(settings: Settings, url: str) -> None:
    if settings.async_mode == "eventlet" and url.startswith("postgresql"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()  # queries yield to other green threads instead of blocking the hub


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="teleconsult hub")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings("hub", overrides=overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s hub %(levelname)s %(name)s: %(message)s")
    from hub.app import create_app
    from teleconsult.db import default_url

    url = default_url(settings)
    _green_postgres(settings, url)
    if not schema_is_current(url):
        sys.exit("The hub database is not at the newest schema: run `teleconsult db upgrade` first.")
    app = create_app(settings)
    socketio = app.extensions["teleconsult.socketio"]
    log.info("Teleconsult hub listening on http://%s:%s (%s)", settings.host, settings.port, settings.async_mode)
    kwargs = {"log_output": False}
    if settings.async_mode == "threading":
        kwargs["allow_unsafe_werkzeug"] = True
    socketio.run(app, host=settings.host, port=settings.port, **kwargs)
