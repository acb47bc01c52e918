"""Run the Alembic migrations of the hub's database or of a spoke's local database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

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
