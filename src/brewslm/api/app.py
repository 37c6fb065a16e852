"""The REST API: FastAPI over the same service layer as the CLI (OpenAPI at /docs).

    brewslm server --host 127.0.0.1 --port 8321
    curl localhost:8321/api/projects/tickets/events?severity=warning

Bound to anything but loopback it requires BREWSLM_API_TOKEN as a bearer token. Errors have one
body shape, {"error": {"code", "message", "details"}}, and malformed requests get a 4xx.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from brewslm import __version__, artifacts, config, project, rows
from brewslm.errors import BlockedError, BrewError, InputError, NotFoundError
from brewslm.events import query, taxonomy, timeline
from brewslm.stages import data

CONFLICT_CODES = {"project_exists", "stage_locked", "job_not_finished", "job_not_cancellable",
                  "job_not_retryable"}


class ProjectCreate(BaseModel):
    name: str = Field(description="1-64 of a-z 0-9 - _ . starting with a letter or digit")
    base_model: str | None = Field(None, description="builtin:tiny, a local folder, or owner/name")
    description: str | None = None


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def status_for(exc: BrewError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if exc.code in CONFLICT_CODES or isinstance(exc, BlockedError):
        return 409
    return 400 if isinstance(exc, InputError) else 500


@contextlib.asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    from brewslm.serving import telemetry

    telemetry.flush_all()  # requests served under /serve/ (uvicorn re-raises SIGTERM: no atexit)


def create_app(*, require_token: bool = False) -> FastAPI:
    app = FastAPI(title="BrewSLM", version=__version__, lifespan=_lifespan,
                  description="Projects, stage runs, events and the row ledger of BrewSLM.")
    app.state.require_token = require_token
    _install_error_handlers(app)
    _add_routes(app)
    from brewslm.serving.server import ProjectEndpoints

    # Each project's promoted version, OpenAI-compatible, at /serve/NAME/v1/...
    app.mount("/serve/{name}", ProjectEndpoints(require_token=require_token))
    from brewslm.web.ui import add_ui

    add_ui(app)  # the web UI at /
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BrewError)
    async def _brew(_: Request, exc: BrewError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")}
                              for e in exc.errors()]}
        return JSONResponse(error_body("request_invalid", "the request does not match the "
                                       "API schema", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "route_not_found"}.get(exc.status_code,
                                                                 "request_invalid")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code,
                            headers=getattr(exc, "headers", None))


def check_token(request: Request,
                authorization: Annotated[str | None, Header()] = None) -> None:
    if request.app.state.require_token and not config.credentials_ok(
            authorization, request.cookies.get(config.TOKEN_COOKIE)):
        raise StarletteHTTPException(401, "a valid bearer token is required",
                                     headers={"WWW-Authenticate": "Bearer"})


def _add_routes(app: FastAPI) -> None:
    deps = [Depends(check_token)]

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/projects", dependencies=deps)
    def list_projects() -> dict[str, Any]:
        return {"projects": [p.to_dict() for p in project.list_all()]}

    @app.post("/api/projects", dependencies=deps, status_code=201)
    def create_project(body: ProjectCreate) -> dict[str, Any]:
        info = project.create(body.name, base_model=body.base_model, description=body.description)
        return {"project": info.to_dict()}

    @app.get("/api/projects/{name}", dependencies=deps)
    def show_project(name: str) -> dict[str, Any]:
        return {"project": project.summary(project.get(name))}

    @app.delete("/api/projects/{name}", dependencies=deps)
    def delete_project(name: str) -> dict[str, Any]:
        return {"deleted": project.delete_project(name).to_dict()}

    @app.get("/api/projects/{name}/runs", dependencies=deps)
    def list_runs(name: str, stage: str | None = None) -> dict[str, Any]:
        return {"runs": query.runs(project.get(name), stage)}

    @app.get("/api/projects/{name}/runs/{run_id}", dependencies=deps)
    def show_run(name: str, run_id: str) -> dict[str, Any]:
        return {"run": query.get_run(project.get(name), run_id)}

    @app.get("/api/projects/{name}/events", dependencies=deps)
    def list_events(name: str, stage: str | None = None, severity: str | None = None,
                    run: str | None = None, since: str | None = None, until: str | None = None,
                    code: str | None = None,
                    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
                    tree: bool = False) -> dict[str, Any]:
        info = project.get(name)
        flt = query.make_filter(stage=stage, severity=severity, run_id=run, since=since,
                                until=until, code=code, limit=limit)
        if tree:
            return timeline.build(info, flt)
        return {"project": name, "events": query.events(info, flt)}

    @app.get("/api/projects/{name}/artifacts", dependencies=deps)
    def list_artifacts(name: str) -> dict[str, Any]:
        return {"artifacts": [a.to_dict() for a in artifacts.list_artifacts(project.get(name))]}

    @app.get("/api/projects/{name}/rows/stats", dependencies=deps)
    def rows_stats(name: str) -> dict[str, Any]:
        return rows.stats(project.get(name))

    @app.get("/api/projects/{name}/rows/{row_id}", dependencies=deps)
    def rows_trace(name: str, row_id: str) -> dict[str, Any]:
        return rows.trace(project.get(name), row_id)

    @app.get("/api/projects/{name}/datasets", dependencies=deps)
    def list_datasets(name: str) -> dict[str, Any]:
        return {"versions": data.dataset_versions(project.get(name))}

    @app.get("/api/projects/{name}/datasets/{version}/rows", dependencies=deps)
    def dataset_rows(name: str, version: str,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 20) -> dict[str, Any]:
        return data.dataset_rows(project.get(name), version=version, limit=limit)

    @app.get("/api/projects/{name}/runs/{run_id}/metrics", dependencies=deps)
    def run_metrics(name: str, run_id: str) -> dict[str, Any]:
        """A training run's trace (loss, eval_loss, learning_rate, grad_norm, tokens/s per
        step, earlier runs included up to the step it resumed at), its summary and a text
        plot; the same as `brewslm metrics -p NAME --run RUN_ID --json`."""
        from brewslm.stages.train import run_metrics

        return run_metrics(project.get(name), run_id)

    @app.get("/api/projects/{name}/runs/{run_id}/metrics.png", dependencies=deps,
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def run_metrics_png(name: str, run_id: str) -> Response:
        """The loss curve (and learning rate) of a training run as a PNG."""
        from brewslm.stages.train import run_metrics
        from brewslm.train import metrics

        found = run_metrics(project.get(name), run_id)
        return Response(metrics.png(found["rows"], title=f"loss {run_id}"),
                        media_type="image/png")

    from brewslm.api import deploy, files, jobs, observe, uploads

    observe.add_routes(app, deps)
    deploy.add_routes(app, deps)
    jobs.add_routes(app, deps)
    uploads.add_routes(app, deps)
    files.add_routes(app, deps)

    @app.get("/api/codes", dependencies=deps)
    def list_codes() -> dict[str, Any]:
        return {"codes": [c.to_dict() for c in taxonomy.codes().values()]}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str, port: int, *, worker: bool = True) -> None:
    """Run the API with uvicorn; beyond loopback only with BREWSLM_API_TOKEN set. With
    `worker` (and no task-queue broker configured) the embedded job worker runs in a thread."""
    import uvicorn

    from brewslm.jobs import broker
    from brewslm.jobs import worker as jobs_worker

    require_token = not is_loopback(host)
    if require_token and not config.api_token():
        raise InputError("server_token_missing", f"binding to {host} exposes the API beyond "
                         "this machine: set BREWSLM_API_TOKEN first (or bind to 127.0.0.1)")
    if worker and not broker.url():
        jobs_worker.start_in_thread()
    uvicorn.run(create_app(require_token=require_token), host=host, port=port, log_level="info")
