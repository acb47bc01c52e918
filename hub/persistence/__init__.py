"""The hub's database: models, engine and session factory, Alembic migrations."""
