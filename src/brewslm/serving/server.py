"""`brewslm serve`: the OpenAI-compatible app (openai_app.py) over a project's promoted
deployment, with telemetry into the store; and a background server for smoke tests, drift
checks and tests.

    from brewslm.serving.server import serve, background_server, active_model_for
    serve(project, host="127.0.0.1", port=8000)          # blocks; promote/rollback hot-swap
    with background_server(app) as base_url:             # http://127.0.0.1:PORT, port chosen free
        ...

The served version is read from the store at most once a second, so a `deploy promote` or
`deploy rollback` in another process takes effect on the next request without a restart.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from brewslm import artifacts, config
from brewslm.errors import InputError
from brewslm.project import ProjectInfo
from brewslm.serving import deployments, telemetry
from brewslm.serving.backends import ActiveModel

RESOLVE_EVERY_S = 1.0


def active_model_for(project: ProjectInfo, version: deployments.Version) -> ActiveModel:
    """What the backend needs to load a version: its export folder, and for an adapter the
    base model it was trained on; for GGUF the file inside the export."""
    folder = artifacts.get(project, version.export_id).path
    base_path, gguf_file = None, None
    if version.format == "adapter":
        base_path = _base_of(project, version.export_id)
    if version.format == "gguf":
        gguf_file = next(p.name for p in sorted(folder.glob("*.gguf")))
    return ActiveModel(version.id, version.version, project.name, folder, version.format,
                       base_path=base_path, gguf_file=gguf_file)


def _base_of(project: ProjectInfo, export_id: str) -> Path:
    from brewslm.basemodels.reference import resolve_base_model

    meta = artifacts.get(project, export_id).meta
    model = artifacts.get(project, meta["candidate_id"])
    doc = json.loads((model.path / "run_manifest.json").read_text(encoding="utf-8"))
    return Path(resolve_base_model(doc["base_model"]["ref"] or "builtin:tiny").path)


def promoted_resolver(project: ProjectInfo) -> Callable[[], ActiveModel | None]:
    """The promoted version, re-read from the store at most every RESOLVE_EVERY_S."""
    cache: dict[str, Any] = {"at": 0.0, "model": None}
    lock = threading.Lock()

    def resolve() -> ActiveModel | None:
        with lock:
            if time.monotonic() - cache["at"] >= RESOLVE_EVERY_S:
                version = deployments.active(project)
                cache["model"] = active_model_for(project, version) if version else None
                cache["at"] = time.monotonic()
            return cache["model"]

    return resolve


def create_project_app(project: ProjectInfo, *, require_token: bool = False) -> Any:
    from brewslm.serving.openai_app import create_serving_app

    return create_serving_app(promoted_resolver(project), telemetry.recorder(project),
                              require_token=require_token)


def serve(project: ProjectInfo, host: str, port: int) -> None:
    """Serve the project's promoted version; beyond loopback only with BREWSLM_API_TOKEN."""
    import uvicorn

    from brewslm.api.app import is_loopback

    require_token = not is_loopback(host)
    if require_token and not config.api_token():
        raise InputError("server_token_missing", f"binding to {host} exposes the endpoint "
                         "beyond this machine: set BREWSLM_API_TOKEN first (or bind to "
                         "127.0.0.1)")
    uvicorn.run(create_project_app(project, require_token=require_token), host=host,
                port=port, log_level="info")


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    # log_config=None: an embedded server must not reconfigure the host's logging (uvicorn's
    # handlers would bind to whatever sys.stderr is now, e.g. a test runner's, closed later).
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning",
                                           lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the endpoint did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ProjectEndpoints:
    """An ASGI app mounted by the REST API at /serve/{name}: each project's promoted version at
    /serve/NAME/v1/... (created on first use), so a model is served with no other process."""

    def __init__(self, *, require_token: bool = False) -> None:
        self.require_token = require_token
        self.apps: dict[str, Any] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        name = scope.get("path_params", {}).get("name", "")
        app = self._app_for(name)
        if app is None:
            from starlette.responses import JSONResponse

            body = {"error": {"code": "project_not_found", "message": f"no project {name!r}",
                              "details": {}}}
            await JSONResponse(body, 404)(scope, receive, send)
            return
        await app(scope, receive, send)

    def _app_for(self, name: str) -> Any:
        from brewslm import project
        from brewslm.errors import NotFoundError

        with self.lock:
            if name not in self.apps:
                try:
                    info = project.get(name)
                except (NotFoundError, InputError):
                    return None
                self.apps[name] = create_project_app(info, require_token=self.require_token)
            return self.apps[name]
