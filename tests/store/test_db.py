"""The store: migrated to head on first use, WAL on SQLite, migrations reversible."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from brewslm.store import db

pytestmark = pytest.mark.store
TABLES = {"projects", "stage_runs", "run_events", "artifacts", "alembic_version"}


def _revision(eng) -> str | None:
    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_first_use_migrates_to_head():
    eng = db.engine()
    head = ScriptDirectory.from_config(db.alembic_config(eng)).get_current_head()
    assert _revision(eng) == head
    assert set(inspect(eng).get_table_names()) >= TABLES


def test_migrations_downgrade_and_upgrade_again():
    eng = db.engine()
    cfg = db.alembic_config(eng)
    command.downgrade(cfg, "base")
    assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
    db.migrate(eng)
    assert set(inspect(eng).get_table_names()) >= TABLES


def test_sqlite_runs_in_wal_mode(brewslm_home):
    eng = db.engine()
    if eng.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (brewslm_home / "brewslm.db").exists()


def test_database_url_selects_the_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("BREWSLM_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    db.reset_engines()
    db.engine()
    assert (tmp_path / "other.db").exists()
