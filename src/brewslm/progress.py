"""Progress of long work. Stages report `(done, total)` through `StageContext.progress`; whoever
runs them decides what to show: the CLI a rich bar on stderr, a job worker a progress row.

    with progress.rich_bars(enabled=not json_out):
        run_stage(...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Reporter = Callable[[str, int, int | None, dict[str, Any]], None]
_reporter: ContextVar[Reporter | None] = ContextVar("progress_reporter", default=None)


def report(task: str, done: int, total: int | None = None, **fields: Any) -> None:
    reporter = _reporter.get()
    if reporter is not None:
        reporter(task, done, total, fields)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


@contextmanager
def rich_bars(*, enabled: bool = True) -> Iterator[None]:
    """Show one bar per reporting task on stderr while the block runs."""
    from brewslm.console import err

    if not enabled or not err.is_terminal:
        yield
        return
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
    tasks: dict[str, Any] = {}

    def show(task: str, done: int, total: int | None, _fields: dict[str, Any]) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total)
        bars.update(tasks[task], completed=done, total=total)

    with bars, reporting(show):
        yield
