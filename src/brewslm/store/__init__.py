"""The durable store: SQLAlchemy models, engine and sessions, Alembic migrations."""

from brewslm.store.db import engine, reset_engines, session

__all__ = ["engine", "reset_engines", "session"]
