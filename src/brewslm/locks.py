"""The per-project lock: one stage run at a time per project, across processes.

An fcntl lock on PROJECT_DIR/.lock; the holder (pid, host, stage, run id, since) is written into
the file so that a refused caller can name it. The kernel releases the lock when the holder
dies, however it dies, which is how an interrupted run is told from a live one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brewslm.errors import InputError

LOCK_NAME = ".lock"


def this_host() -> str:
    return socket.gethostname()


@contextmanager
def project_lock(project_dir: Path, *, project: str, stage: str, run_id: str) -> Iterator[None]:
    """Hold the project's lock for the block, or refuse with stage_locked naming the holder."""
    project_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(project_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(project_dir)
            message = _busy_message(project, holder)
            raise InputError("stage_locked", message, holder=holder) from None
        _write_holder(fd, {"pid": os.getpid(), "host": this_host(), "stage": stage,
                           "run_id": run_id, "since": datetime.now(UTC).isoformat()})
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(project_dir: Path) -> bool:
    """True while some process holds the project's lock."""
    path = project_dir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_holder(project_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((project_dir / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _write_holder(fd: int, holder: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _busy_message(project: str, holder: dict[str, Any]) -> str:
    if not holder:
        return f"project {project!r} is busy: another stage run holds its lock"
    return (f"project {project!r} is busy: stage {holder.get('stage')!r} "
            f"run {holder.get('run_id')} "
            f"holds its lock (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')})")
