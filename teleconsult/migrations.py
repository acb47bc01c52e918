"""Run the Alembic migrations of the hub's database or of a spoke's local database."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from teleconsult.db import make_engine

_ROOT = Path(__file__).resolve().parent.parent
_LOCATIONS = {
    "hub": _ROOT / "hub" / "persistence" / "migrations",
    "spoke": _ROOT / "spoke" / "persistence" / "migrations",
}


def alembic_config(component: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_LOCATIONS[component]))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["component"] = component
    return cfg


def upgrade(component: str, url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(component, url), revision)


def run_environment(metadata: MetaData) -> None:
    """The body of each component's Alembic ``env.py``: migrate ``metadata``'s database."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or ""
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
