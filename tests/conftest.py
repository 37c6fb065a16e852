"""Every test gets its own BREWSLM_HOME, strict reason codes and no network.

The built-in tiny model is built once per session (BREWSLM_MODELS_DIR) and shared, and
pretrained for 10 steps only (BREWSLM_TINY_PRETRAIN_STEPS).
With BREWSLM_TEST_DATABASE_URL set (`make test-postgres`), the store runs on that database,
wiped before each test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from brewslm.store import db
from brewslm.store.models import Base

# builtin:tiny is pretrained on first use (500 steps, ~3 min on 2 cores); tests need a real
# model, not a good one, so they pretrain it for 10 steps. Set at import so that module-scoped
# fixtures and subprocesses see it too.
os.environ.setdefault("BREWSLM_TINY_PRETRAIN_STEPS", "10")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def brewslm_home(tmp_path, monkeypatch, models_dir):
    home = tmp_path / "brewslm-home"
    monkeypatch.setenv("BREWSLM_HOME", str(home))
    monkeypatch.setenv("BREWSLM_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("BREWSLM_STRICT_CODES", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("BREWSLM_API_TOKEN", raising=False)
    pg_url = os.environ.get("BREWSLM_TEST_DATABASE_URL")
    if pg_url:
        monkeypatch.setenv("BREWSLM_DATABASE_URL", pg_url)
        _wipe(pg_url)
    else:
        monkeypatch.delenv("BREWSLM_DATABASE_URL", raising=False)
    db.reset_engines()
    yield home
    db.reset_engines()


def _wipe(url: str) -> None:
    eng = create_engine(url)
    with eng.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    eng.dispose()


SAMPLE = Path(__file__).resolve().parents[1] / "src" / "brewslm" / "samples" / "tickets.jsonl"


@pytest.fixture
def prepare_sample():
    """A factory: a project with builtin:tiny and the bundled ticket sample taken through
    ingest, map, clean and prepare (347 train / 39 eval rows)."""
    from brewslm import project
    from brewslm.stages import data

    def make(name: str):
        info = project.create(name, base_model="builtin:tiny")
        data.ingest(info, str(SAMPLE))
        data.map_rows(info)
        data.clean(info)
        assert data.prepare(info).status == "succeeded"
        return info

    return make


@pytest.fixture
def prepare_small(tmp_path):
    """A factory: a project with builtin:tiny and 40 generated instruction rows, prepared."""
    from brewslm import project
    from brewslm.stages import data

    def make(name: str):
        info = project.create(name, base_model="builtin:tiny")
        src = tmp_path / f"{name}.jsonl"
        src.write_text("".join(f'{{"instruction": "ticket {i}: app {i % 7} broken", '
                               f'"response": "category {i % 3}"}}\n' for i in range(40)))
        data.ingest(info, str(src))
        data.map_rows(info)
        assert data.prepare(info).status == "succeeded"
        return info

    return make


@pytest.fixture
def rows_file(tmp_path):
    """40 generated instruction rows as a JSONL file (the data prepare_small ingests)."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(f'{{"instruction": "ticket {i}: app {i % 7} broken", '
                            f'"response": "category {i % 3}"}}\n' for i in range(40)))
    return path


@pytest.fixture
def no_secret_env(monkeypatch):
    """Remove secret-named variables this process may have gained from the environment, so a
    test that counts a support bundle's redactions counts only what it planted."""
    from brewslm.observe.redact import is_secret_key

    for name in list(os.environ):
        if is_secret_key(name):
            monkeypatch.delenv(name)
