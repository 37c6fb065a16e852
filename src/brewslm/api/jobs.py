"""REST routes for jobs: every stage started through the API returns a job id at once; the job
runs in the worker and ends with the same result the CLI prints with --json.

    POST /api/projects/{name}/stages/{stage}   body: the stage's parameters (as the CLI's)
    POST /api/projects/{name}/jobs             body: {"kind": stage, "params": {...}}
    GET  /api/jobs[?project=&status=]          GET /api/jobs/{id}
    GET  /api/jobs/{id}/progress | /log?tail=N | /result | /events (server-sent events)
    POST /api/jobs/{id}/cancel | /retry
    GET  /api/stages                           each stage's parameters

The per-stage bodies are pydantic models built from the stage's service function (jobs.kinds),
so the OpenAPI schema documents every parameter and unknown keys are refused.
"""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from brewslm import project
from brewslm.errors import InputError
from brewslm.jobs import kinds, service

FINAL = ("succeeded", "failed", "blocked", "cancelled")


class JobRequest(BaseModel):
    kind: str = Field(description="The stage to run: " + ", ".join(kinds.KINDS))
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="The stage's parameters (GET /api/stages)")


def params_model(kind: str) -> type[BaseModel]:
    """A pydantic model of the stage's keyword arguments (unknown keys refused)."""
    func = kinds.service(kind)
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    for name, spec in kinds.parameters(kind).items():
        default = ... if spec["required"] else spec["default"]
        fields[name] = (hints.get(name, Any), default)
    return create_model(f"{kind.capitalize()}Params", __config__=ConfigDict(extra="forbid",
                        arbitrary_types_allowed=True), **fields)


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the job routes; `deps` holds the token check."""
    for kind in kinds.KINDS:
        _add_stage_route(app, deps, kind)

    @app.get("/api/stages", dependencies=deps, tags=["jobs"])
    def list_stages() -> dict[str, Any]:
        """Every stage a job can run, with its parameters (name, required, default)."""
        return {"stages": {k: kinds.parameters(k) for k in kinds.KINDS}}

    @app.post("/api/projects/{name}/jobs", dependencies=deps, status_code=202, tags=["jobs"])
    def submit_job(name: str, body: JobRequest) -> dict[str, Any]:
        """Queue any stage as a job; returns the job at once (status queued)."""
        return service.submit(project.get(name), body.kind, body.params)

    @app.get("/api/jobs", dependencies=deps, tags=["jobs"])
    def list_jobs(project_name: Annotated[str | None, Query(alias="project")] = None,
                  status: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Jobs, newest first, optionally of one project or status."""
        info = project.get(project_name) if project_name else None
        return {"jobs": service.list_jobs(info, status=status, limit=limit)}

    @app.get("/api/jobs/{job_id}", dependencies=deps, tags=["jobs"])
    def show_job(job_id: str) -> dict[str, Any]:
        """A job: parameters, status, progress, result, log path, timestamps."""
        return service.get(job_id)

    @app.get("/api/jobs/{job_id}/progress", dependencies=deps, tags=["jobs"])
    def job_progress(job_id: str) -> dict[str, Any]:
        """The latest progress report (task, done, total, fields such as step and loss)."""
        return _progress(service.get(job_id))

    @app.get("/api/jobs/{job_id}/log", dependencies=deps, tags=["jobs"])
    def job_log(job_id: str, tail: Annotated[int, Query(ge=0, le=100_000)] = 100
                ) -> dict[str, Any]:
        """The last `tail` lines of the job's log (0: all)."""
        return service.log_tail(job_id, tail)

    @app.get("/api/jobs/{job_id}/result", dependencies=deps, tags=["jobs"])
    def job_result(job_id: str) -> Any:
        """The result (the CLI's --json output); 409 job_not_finished while it runs."""
        job = service.get(job_id)
        if job["status"] not in FINAL:
            raise InputError("job_not_finished", f"job {job_id} is {job['status']}",
                             job_id=job_id, status=job["status"])
        return JSONResponse(job["result"] or {"error": {"code": job["error_code"],
                                                        "message": job["error_message"]}})

    @app.post("/api/jobs/{job_id}/cancel", dependencies=deps, tags=["jobs"])
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel a queued job or ask a running one to stop (training checkpoints first)."""
        return service.cancel(job_id)

    @app.post("/api/jobs/{job_id}/retry", dependencies=deps, status_code=202, tags=["jobs"])
    def retry_job(job_id: str) -> dict[str, Any]:
        """Queue a new job with the kind and parameters of a failed, blocked or cancelled one."""
        return service.retry(job_id)

    @app.get("/api/jobs/{job_id}/events", dependencies=deps, tags=["jobs"],
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
    async def job_events(job_id: str) -> StreamingResponse:
        """Server-sent events: a `progress` event whenever the job's progress or status
        changes, then one `end` event with the final status."""
        service.get(job_id)  # 404 before the stream starts
        return StreamingResponse(_event_stream(job_id), media_type="text/event-stream")


def _add_stage_route(app: FastAPI, deps: list[Any], kind: str) -> None:
    model = params_model(kind)

    def start(name: str, body: model = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        return service.submit(project.get(name), kind,
                              body.model_dump(mode="json", exclude_unset=True))

    # The body's type is built at run time: give FastAPI the class, not a string annotation.
    start.__annotations__ = {"name": str, "body": model, "return": dict[str, Any]}
    start.__doc__ = (f"Start stage {kind} as a job with the parameters of `brewslm {kind}` "
                     "(returns the queued job at once).")
    app.post(f"/api/projects/{{name}}/stages/{kind}", dependencies=deps, status_code=202,
             tags=["jobs"], name=f"start_{kind}")(start)


def _progress(job: dict[str, Any]) -> dict[str, Any]:
    return {"id": job["id"], "status": job["status"], "run_id": job["run_id"],
            "progress": job["progress"], "error_code": job["error_code"]}


async def _event_stream(job_id: str) -> typing.AsyncIterator[str]:
    last = None
    while True:
        job = await asyncio.to_thread(service.get, job_id)
        now = _progress(job)
        if now != last:
            yield f"event: progress\ndata: {json.dumps(now)}\n\n"
            last = now
        if job["status"] in FINAL:
            yield f"event: end\ndata: {json.dumps({'status': job['status']})}\n\n"
            return
        await asyncio.sleep(0.5)
