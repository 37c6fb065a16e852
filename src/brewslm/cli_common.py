"""What every CLI command shares: the --json and -p options, error handling and the way a
stage result is printed and turned into an exit code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer

from brewslm import console
from brewslm.errors import BrewError
from brewslm.stages.runner import StageResult

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DetachOpt = Annotated[bool, typer.Option(
    "--detach", help="Submit as a background job (printed at once) instead of running here.")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name.")]


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a BrewError into its exit code, printed as JSON or as a red line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrewError as exc:
            if kwargs.get("json_out"):
                console.print_json({"error": exc.to_dict()})
            else:
                console.error(exc.code, exc.message)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def stage_call(kind: str, project_name: str, params: dict[str, Any], *, json_out: bool,
               detach: bool = False) -> StageResult:
    """Run a stage here (with progress bars), or with --detach submit it as a job and exit 0:
    both call the same service function with the same parameters (jobs.kinds)."""
    from brewslm import progress, project
    from brewslm.jobs import kinds, service

    info = project.get(project_name)
    if detach:
        job = service.submit(info, kind, _absolute_paths(params))
        if json_out:
            console.print_json(job)
        else:
            console.out.print(f"{kind} job [bold]{job['id']}[/] queued; follow it with "
                              f"`brewslm jobs logs {job['id']} --follow`")
            if job["error_code"]:  # e.g. the task queue could not be reached: still queued
                console.error(job["error_code"], job["error_message"] or "")
        raise typer.Exit(0)
    with progress.rich_bars(enabled=not json_out):
        return kinds.call(kind, info, params)


def _absolute_paths(params: dict[str, Any]) -> dict[str, Any]:
    """A worker runs elsewhere: local files named relative to this shell become absolute."""
    import os

    out = dict(params)
    for key in ("source", "gold", "accelerate_config"):
        value = out.get(key)
        if isinstance(value, str) and os.path.exists(value):
            out[key] = os.path.abspath(value)
    return out


def finish_stage(result: StageResult, json_out: bool) -> None:
    """Print a stage result and exit with its code (the shape every stage command shares)."""
    if json_out:
        console.print_json(result.to_dict())
    else:
        colour = {"succeeded": "green", "reused": "cyan", "blocked": "yellow"}.get(result.status,
                                                                                   "red")
        console.out.print(f"[bold]{result.stage}[/] {result.run_id} [{colour}]{result.status}[/]")
        if result.ledger:
            led = result.ledger
            console.out.print(f"rows in {led['in']}  out {led['out']}  dropped {led['dropped']}"
                              f"  {led['by_reason'] or ''}")
        if result.error:
            console.error(result.error["code"], result.error["message"])
    raise typer.Exit(result.exit_code)
