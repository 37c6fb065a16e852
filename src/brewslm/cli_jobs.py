"""CLI commands for background jobs and the worker; registered by cli.py.

    brewslm jobs [-p NAME] [--status S] [--json]     # newest first
    brewslm jobs show ID [--json]                    # status, progress, result, log path
    brewslm jobs logs ID [--tail N] [--follow]       # the job's log; --follow until it ends
    brewslm jobs cancel ID [--json]                  # training checkpoints, then stops
    brewslm jobs retry ID [--json]                   # a new job with the same parameters
    brewslm worker [--once]                          # run queued jobs (or the broker's)

Every stage command takes --detach to submit itself as a job instead of running in the
foreground. The logic lives in jobs/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from brewslm import console, project
from brewslm.cli_common import JsonOpt, guarded

jobs_app = typer.Typer(help="Background jobs: list, show, logs, cancel, retry.")
FINAL = ("succeeded", "failed", "blocked", "cancelled")


def register(app: typer.Typer) -> None:
    """Add `jobs` and `worker` to the main app."""
    app.add_typer(jobs_app, name="jobs")

    @app.command("worker")
    @guarded
    def worker_cmd(once: Annotated[bool, typer.Option(
                       "--once", help="Run the jobs queued now, then exit.")] = False,
                   poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 0.5
                   ) -> None:
        """Run queued jobs in child processes: the embedded worker, or a task-queue worker
        when BREWSLM_QUEUE_URL names a broker."""
        from brewslm.jobs import broker, worker

        if broker.url():
            console.err.print(f"worker on the task queue at {broker.redacted(broker.url())}")
            broker.run_worker(burst=once)
            return
        console.err.print("embedded worker: running queued jobs (Ctrl-C stops)")
        try:
            ran = worker.run_worker(once=once, poll_s=poll)
        except KeyboardInterrupt:
            return
        console.err.print(f"{ran} job(s) run")


@jobs_app.callback(invoke_without_command=True)
@guarded
def jobs_cmd(ctx: typer.Context,
             project_name: Annotated[str | None, typer.Option(
                 "--project", "-p", help="Only this project's jobs.")] = None,
             status: Annotated[str | None, typer.Option(help="Only jobs in this status.")]
             = None, json_out: JsonOpt = False) -> None:
    """List jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from brewslm.jobs import service

    info = project.get(project_name) if project_name else None
    found = service.list_jobs(info, status=status)
    if json_out:
        console.print_json({"jobs": found})
        return
    console.out.print(console.table("jobs (newest first)", ["id", "project", "kind", "status",
                                                           "progress", "error"], [
        (j["id"], j["project"], j["kind"], j["status"], _progress(j["progress"]),
         j["error_code"] or "") for j in found]))


@jobs_app.command("show")
@guarded
def show_cmd(job_id: str, json_out: JsonOpt = False) -> None:
    """One job whole: parameters, status, progress, result, log path."""
    from brewslm.jobs import service

    job = service.get(job_id)
    if json_out:
        console.print_json(job)
        return
    for key in ("id", "project", "kind", "params", "status", "run_id", "worker", "created_at",
                "started_at", "finished_at", "error_code", "error_message", "log_path"):
        console.out.print(f"[bold]{key}[/]: {job[key]}")
    console.out.print(f"[bold]progress[/]: {_progress(job['progress'])}")


@jobs_app.command("logs")
@guarded
def logs_cmd(job_id: str,
             tail: Annotated[int, typer.Option(help="Last N lines (0: all).")] = 100,
             follow: Annotated[bool, typer.Option(
                 "--follow", "-f", help="Keep printing new lines until the job ends.")] = False
             ) -> None:
    """The job's log (its stage's output and progress lines)."""
    from brewslm.jobs import service

    found = service.log_tail(job_id, tail)
    for line in found["lines"]:
        console.out.print(line, markup=False, highlight=False)
    if follow:
        _follow(job_id, Path(found["path"]))


@jobs_app.command("cancel")
@guarded
def cancel_cmd(job_id: str, json_out: JsonOpt = False) -> None:
    """Cancel a queued job, or ask a running one to stop (training checkpoints first)."""
    from brewslm.jobs import service

    _done(service.cancel(job_id), json_out)


@jobs_app.command("retry")
@guarded
def retry_cmd(job_id: str, json_out: JsonOpt = False) -> None:
    """Queue a new job with the kind and parameters of a failed, blocked or cancelled one."""
    from brewslm.jobs import service

    _done(service.retry(job_id), json_out)


def _follow(job_id: str, path: Path) -> None:
    from brewslm.jobs import service

    offset = path.stat().st_size if path.exists() else 0
    while True:
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            if chunk:
                console.out.print(chunk.decode("utf-8", "replace").rstrip("\n"),
                                  markup=False, highlight=False)
        if service.get(job_id)["status"] in FINAL and not chunk:
            return
        time.sleep(0.5)


def _done(job: dict[str, Any], json_out: bool) -> None:
    if json_out:
        console.print_json(job)
    else:
        console.out.print(f"job {job['id']} ({job['kind']}): {job['status']}")


def _progress(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    total = p.get("total")
    return f"{p.get('task')} {p.get('done')}/{total if total is not None else '?'}"
