"""Alembic environment of the spoke's database."""

from spoke.persistence.models import Base
from teleconsult.migrations import run_environment

run_environment(Base.metadata)
