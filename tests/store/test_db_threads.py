"""The event writer's per-thread connections go back to the pool when their thread ends, so
threads that come and go (the API's worker threads) never use the pool up; and a NUL byte,
which PostgreSQL text cannot hold, is refused as bad input."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from brewslm.errors import InputError
from brewslm.events import emit_event
from brewslm.store import db, session
from brewslm.store.models import Project, RunEvent

pytestmark = pytest.mark.store


def _emit_in_threads(count: int) -> None:
    for i in range(count):
        t = threading.Thread(target=emit_event, args=("project_created", f"thread {i}"))
        t.start()
        t.join()


def test_connections_of_ended_threads_go_back_to_the_pool():
    _emit_in_threads(3)
    assert len(db._thread_conns) <= 1  # only the last thread's, until another thread writes
    _emit_in_threads(20)  # more threads than the pool holds (5 + 10 overflow)
    with session() as s:  # waited 30 s for the pool and failed while ended threads held it
        assert s.scalar(select(func.count()).select_from(RunEvent)) == 23


def test_a_nul_byte_is_bad_input_not_a_database_error():
    """SQLite stores and looks up text with a NUL byte; PostgreSQL refuses it, which the store
    turns into InputError text_nul_byte (HTTP 400) instead of a server error."""
    for attempt in (lambda s: s.add(Project(id="p-nul", name="nul", description="a\x00b",
                                            settings={})),
                    lambda s: s.get(Project, "p-\x00")):
        try:
            with session() as s:
                attempt(s)
        except InputError as exc:
            assert exc.code == "text_nul_byte" and not db.is_sqlite()
        else:
            assert db.is_sqlite()
