"""Engine and sessions for the one BrewSLM database, migrated to head on first use.

SQLite (the default, under BREWSLM_HOME) runs in WAL mode with synchronous=NORMAL: a committed
transaction survives a kill -9 of the process that wrote it, and readers never block the writer.
PostgreSQL is used when BREWSLM_DATABASE_URL names one (`make test-postgres` tests it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from brewslm import config
from brewslm.errors import InputError

MIGRATIONS = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine() -> Engine:
    """The engine for the current BREWSLM_DATABASE_URL, created and migrated once per process."""
    url = config.database_url()
    with _lock:
        if url not in _engines:
            eng = _make_engine(url)
            migrate(eng)
            _engines[url] = eng
        return _engines[url]


def is_sqlite(eng: Engine | None = None) -> bool:
    return (eng or engine()).dialect.name == "sqlite"


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, future=True)
    config.home()
    eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(eng, "connect", _sqlite_pragmas)
    return eng


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config(eng: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = eng
    return cfg


def migrate(eng: Engine) -> None:
    """Bring the schema to head; a no-op (one cheap query) when it already is."""
    cfg = alembic_config(eng)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with eng.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        command.upgrade(cfg, "head")


_local = threading.local()
_thread_conns: list[tuple[threading.Thread, Connection]] = []


def thread_connection(eng: Engine) -> Connection:
    """A connection kept open for this thread and engine (the event writer's hot path).

    Checking a connection out of the pool per event, and its reset on return, cost a third
    of each write. The connections of threads that have ended go back to the pool first: the
    API's worker threads come and go, and each would otherwise hold one of the pool's 15 for
    good, until every session waited on the pool and failed.
    """
    conns = _local.__dict__.setdefault("conns", {})
    conn = conns.get(eng.url)
    if conn is None or conn.closed or conn.invalidated:
        with _lock:
            _release_ended_threads()
        conn = conns[eng.url] = eng.connect()
        with _lock:
            _thread_conns.append((threading.current_thread(), conn))
    return conn


def _release_ended_threads() -> None:
    alive = []
    for thread, conn in _thread_conns:
        if thread.is_alive():
            alive.append((thread, conn))
        else:
            conn.close()
    _thread_conns[:] = alive


def reset_engines() -> None:
    """Forget cached engines and connections (tests switch BREWSLM_HOME between cases)."""
    with _lock:
        for _, conn in _thread_conns:
            conn.close()
        _thread_conns.clear()
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()


_sessions: dict[int, sessionmaker] = {}


@contextmanager
def session() -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back if it raises."""
    eng = engine()
    maker = _sessions.setdefault(id(eng), sessionmaker(eng, expire_on_commit=False))
    try:
        with maker() as sess, sess.begin():
            yield sess
    except DataError as exc:
        # PostgreSQL text cannot hold a NUL byte (SQLite can): a name, id or text with one is
        # bad input, refused the same way whether it was being stored or looked up.
        if "NUL (0x00)" not in str(exc.orig):
            raise
        raise InputError("text_nul_byte", "text with a NUL byte (\\x00) cannot be stored or "
                         "looked up in the database") from None
