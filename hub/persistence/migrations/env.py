"""Alembic environment of the hub's database."""

from hub.persistence.models import Base
from teleconsult.migrations import run_environment

run_environment(Base.metadata)
