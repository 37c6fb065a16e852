"""An OpenAI-compatible server for the promoted model: /v1/models, /v1/chat/completions and
/v1/completions (streamed as server-sent events or not), and /health.

    from brewslm.serving.openai_app import create_serving_app
    app = create_serving_app(resolve_active, record)      # then uvicorn.run(app, ...)
    # any OpenAI client: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x")

resolve_active() names the deployment to serve (or None) and is asked before every request:
when its (deployment_id, version) changes, the old backend is closed and the new one loaded,
so a promote or rollback needs no restart. record() gets one RequestRecord per completion
request, failed ones included. Errors have OpenAI's body shape,
{"error": {"message", "type", "code", "param"}}: 400 for a request that is not valid JSON or
not a valid request, 401 without the bearer token (when required), 404 for another model's
name, 413 for a body over the limit, 503 when nothing is deployed or the backend fails.
Generation runs in a worker thread, one request at a time (one model, one lock).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from brewslm import __version__, config
from brewslm.serving.backends import ActiveModel, Backend, PromptRejected, load_backend

log = logging.getLogger(__name__)

PROMPT_TEXT_LIMIT = 4000  # characters of prompt kept in telemetry
MAX_STOP_STRINGS = 4  # as OpenAI


@dataclass
class RequestRecord:
    """What one completion request did, for telemetry."""

    deployment_id: str | None
    version: int | None
    endpoint: str
    http_status: int
    ok: bool
    latency_s: float
    ttft_s: float | None
    prompt_tokens: int
    completion_tokens: int
    prompt_text: str | None
    error_code: str | None
    started_at: datetime  # UTC
    stream: bool


class ApiError(Exception):
    """A refusal with an HTTP status and an OpenAI error body."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.param, self.kind = param, kind

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(self.code, self.message, param=self.param,
                                       kind=self.kind), self.status, headers=headers)


def error_body(code: str, message: str, *, param: str | None = None,
               kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def backend_error(exc: BaseException) -> ApiError:
    return ApiError(503, "backend_error", f"the model backend failed: {_describe(exc)}",
                    kind="server_error")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- request bodies ---------------------------------------------------------------------


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def plain(self) -> dict[str, str]:
        """As a chat template expects it: text content, "developer" read as "system"."""
        content = self.content if isinstance(self.content, str) else \
            "".join(part.text for part in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role,
                "content": content}


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """What both endpoints accept; other OpenAI fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2 ** 63), lt=2 ** 63)
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_STRINGS:
            raise ApiError(400, "invalid_request_body", f"at most {MAX_STOP_STRINGS} stop "
                           "strings", param="stop")
        return [s for s in stops if s]

    def token_budget(self, limit: int) -> int:
        wanted = self.requested_tokens()
        if wanted is not None and wanted > limit:
            raise ApiError(400, "max_tokens_too_large", f"max_tokens is {wanted}; this "
                           f"server allows at most {limit}", param="max_tokens")
        return wanted or limit

    def requested_tokens(self) -> int | None:
        return self.max_tokens


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(Sampling):
    prompt: str | list[str]

    def text(self) -> str:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise ApiError(400, "invalid_request_body", "give one non-empty prompt",
                           param="prompt")
        return prompts[0]


# --- the loaded model -------------------------------------------------------------------


class ModelSlot:
    """The one loaded backend, swapped when the active deployment changes. `lock` serialises
    loading and generation; `error` is what /health reports until a load or request works."""

    def __init__(self, load: Callable[[ActiveModel], Backend]) -> None:
        self.load = load
        self.lock = threading.Lock()
        self.backend: Backend | None = None
        self.key: tuple[str, int] | None = None
        self.error: str | None = None
        self.failed_key: tuple[str, int] | None = None

    def ensure(self, active: ActiveModel) -> Backend:
        """The backend for `active`, loading it if needed; call with `lock` held."""
        if self.backend is not None and self.key == active.key:
            return self.backend
        self._drop()
        try:
            backend = self.load(active)
        except Exception as exc:
            self.failed_key, self.error = active.key, f"loading failed: {_describe(exc)}"
            raise
        self.backend, self.key, self.error, self.failed_key = backend, active.key, None, None
        return backend

    def _drop(self) -> None:
        old, self.backend, self.key = self.backend, None, None
        if old is not None:
            try:
                old.close()
            except Exception:  # a failing close must not keep the new model out
                log.exception("closing the previous backend failed")

    def try_warm(self, active: ActiveModel) -> None:
        """Load a newly active model for /health, unless it just failed or a request holds
        the lock (then the next request loads it)."""
        if self.key == active.key or self.failed_key == active.key:
            return
        if self.lock.acquire(blocking=False):
            try:
                self.ensure(active)
            except Exception:
                pass  # ensure() recorded the error for /health
            finally:
                self.lock.release()

    def close(self, timeout: float = 30.0) -> None:
        """Frees the model at shutdown; gives up if a generation holds it past `timeout`."""
        if not self.lock.acquire(timeout=timeout):
            log.warning("a generation is still running; the model is left to the process exit")
            return
        try:
            self._drop()
        finally:
            self.lock.release()


# --- one generation, run in a worker thread ---------------------------------------------


@dataclass
class Job:
    """A request's generation: its settings, and what the worker reports back."""

    active: ActiveModel
    messages: list[dict[str, str]] | None  # chat; else `prompt`
    prompt: str | None
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    stream: bool = True  # False: hand over the first piece (for TTFT) and then the rest at once
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Trace:
    """What a request has done so far; becomes its RequestRecord."""

    endpoint: str
    started_at: datetime
    began: float
    stream: bool = False
    active: ActiveModel | None = None
    prompt_text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_piece_at: float | None = None

    def to_record(self, status: int, error_code: str | None) -> RequestRecord:
        now = time.perf_counter()
        return RequestRecord(
            deployment_id=self.active.deployment_id if self.active else None,
            version=self.active.version if self.active else None,
            endpoint=self.endpoint, http_status=status, ok=error_code is None,
            latency_s=now - self.began,
            ttft_s=None if self.first_piece_at is None else self.first_piece_at - self.began,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            prompt_text=None if self.prompt_text is None
            else self.prompt_text[:PROMPT_TEXT_LIMIT],
            error_code=error_code, started_at=self.started_at, stream=self.stream)


def run_job(slot: ModelSlot, job: Job, post: Callable[[tuple[str, Any]], None]) -> None:
    """The worker: load if needed, render, generate; posts ("prompt", (text, tokens)),
    ("piece", text)..., then ("done", (finish_reason, completion_tokens)) or
    ("error", exception). Always ends with one of the last two."""
    try:
        with slot.lock:
            if job.cancelled.is_set():
                raise RuntimeError("the client went away before generation began")
            backend = slot.ensure(job.active)
            post(("done", _generate(slot, backend, job, post)))
    except BaseException as exc:  # whatever happens, the waiting request must hear of it
        post(("error", exc))


def _generate(slot: ModelSlot, backend: Backend, job: Job,
              post: Callable[[tuple[str, Any]], None]) -> tuple[str, int]:
    try:
        text = _stream(backend, job, post)
        completion_tokens = backend.count_tokens(text) if text else 0
    except (PromptRejected, jinja2.TemplateError):
        raise  # the request's fault: the backend is fine
    except Exception as exc:
        slot.error = f"generation failed: {_describe(exc)}"
        raise
    finish = getattr(backend, "finish_reason", None)
    if finish not in ("stop", "length"):
        finish = "length" if completion_tokens >= job.max_tokens else "stop"
    slot.error = None
    return finish, completion_tokens


def _stream(backend: Backend, job: Job, post: Callable[[tuple[str, Any]], None]) -> str:
    prompt = backend.render_chat(job.messages) if job.messages is not None else job.prompt
    assert prompt is not None
    post(("prompt", (prompt, backend.count_tokens(prompt))))
    pieces: list[str] = []
    held = 0  # pieces not yet handed over (non-stream requests: one hand-over at the end)
    stream = backend.stream(prompt, max_tokens=job.max_tokens, temperature=job.temperature,
                            top_p=job.top_p, stop=job.stop, seed=job.seed)
    try:
        for piece in stream:
            if job.cancelled.is_set():  # the client went away: stop generating for nobody
                break
            pieces.append(piece)
            if job.stream or len(pieces) == 1:
                post(("piece", piece))
            else:
                held += 1
        if held:  # every cross-thread hand-over wakes the event loop: one is enough here
            post(("piece", "".join(pieces[-held:])))
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # free a generator's state (a KV cache) while we hold the lock
            close()
    return "".join(pieces)


class Generation:
    """The event side of a job: starts its worker thread and hands its events to the loop."""

    def __init__(self, slot: ModelSlot, job: Job, trace: Trace) -> None:
        self.job, self.trace = job, trace
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def post(event: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(self.queue.put_nowait, event)
            except RuntimeError:  # the loop is gone (server shutting down)
                job.cancelled.set()

        threading.Thread(target=run_job, args=(slot, job, post), daemon=True,
                         name="brewslm-generate").start()

    async def next(self) -> tuple[str, Any]:
        """The next piece, or ("done", ...); raises the worker's error; keeps the trace."""
        while True:
            kind, value = await self.queue.get()
            if kind == "error":
                raise value
            if kind == "prompt":
                self.trace.prompt_text, self.trace.prompt_tokens = value
                continue
            if kind == "piece" and self.trace.first_piece_at is None:
                self.trace.first_piece_at = time.perf_counter()
            if kind == "done":
                self.trace.completion_tokens = value[1]
            return kind, value


def as_api_error(exc: BaseException) -> ApiError:
    """A worker's error as the client should see it."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PromptRejected):
        return ApiError(400, exc.code, str(exc), param="messages")
    if isinstance(exc, jinja2.TemplateError):
        return ApiError(400, "chat_template_error", f"the model's chat template refused the "
                        f"messages: {exc}", param="messages")
    log.warning("the model backend failed", exc_info=exc)
    return backend_error(exc)


# --- the app ----------------------------------------------------------------------------


@dataclass
class Settings:
    resolve_active: Callable[[], ActiveModel | None]
    record: Callable[[RequestRecord], None]
    require_token: bool
    max_body_bytes: int
    max_tokens_limit: int
    slot: ModelSlot


def create_serving_app(resolve_active: Callable[[], ActiveModel | None],
                       record: Callable[[RequestRecord], None], *,
                       require_token: bool = False, max_body_bytes: int = 1_000_000,
                       max_tokens_limit: int = 512,
                       load: Callable[[ActiveModel], Backend] = load_backend) -> FastAPI:
    settings = Settings(resolve_active, record, require_token, max_body_bytes,
                        max_tokens_limit, ModelSlot(load))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(settings.slot.close)
        # A buffering sink writes what it holds now: uvicorn re-raises SIGTERM after shutdown,
        # so atexit handlers never run.
        flush = getattr(settings.record, "flush", None)
        if flush is not None:
            await anyio.to_thread.run_sync(flush)

    # Behind a token every route but /health is guarded, so the schema pages go too.
    docs = {} if not require_token else {"docs_url": None, "redoc_url": None,
                                         "openapi_url": None}
    app = FastAPI(title="BrewSLM serving", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible completions from the promoted model.", **docs)
    app.state.serving = settings
    _install_error_handlers(app)
    _add_routes(app, settings)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return exc.response(headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                       "invalid_request")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code,
                            headers=getattr(exc, "headers", None))


def authorize(settings: Settings, request: Request) -> None:
    if not settings.require_token:
        return
    if not config.credentials_ok(request.headers.get("authorization"),
                                 request.cookies.get(config.TOKEN_COOKIE)):
        raise ApiError(401, "invalid_api_key", "a valid bearer token is required",
                       kind="authentication_error")


async def resolve(settings: Settings) -> ActiveModel | None:
    """The active deployment; its lookup may touch a database, so not on the event loop."""
    try:
        return await anyio.to_thread.run_sync(settings.resolve_active)
    except Exception as exc:
        raise ApiError(503, "deployment_unavailable", "could not tell which model is "
                       f"deployed: {_describe(exc)}", kind="server_error") from exc


def model_headers(active: ActiveModel) -> dict[str, str]:
    return {"x-brewslm-deployment": active.deployment_id,
            "x-brewslm-version": str(active.version)}


def _model_card(active: ActiveModel) -> dict[str, Any]:
    try:
        created = int(active.export_dir.stat().st_mtime)
    except OSError:
        created = 0
    return {"id": active.model_name, "object": "model", "created": created,
            "owned_by": "brewslm", "version": active.version,
            "deployment_id": active.deployment_id}


def _add_routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/health")
    async def health() -> JSONResponse:
        return await health_response(settings)

    @app.get("/v1/models")
    async def list_models(request: Request) -> JSONResponse:
        authorize(settings, request)
        active = await resolve(settings)
        cards = [_model_card(active)] if active else []
        return JSONResponse({"object": "list", "data": cards})

    @app.get("/v1/models/{name:path}")
    async def show_model(name: str, request: Request) -> JSONResponse:
        authorize(settings, request)
        active = await resolve(settings)
        if active is None or name != active.model_name:
            raise ApiError(404, "model_not_found", f"no model {name!r} is served here",
                           param="model")
        return JSONResponse(_model_card(active))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await complete(settings, request, "/v1/chat/completions", ChatRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await complete(settings, request, "/v1/completions", CompletionRequest)


async def health_response(settings: Settings) -> JSONResponse:
    try:
        active = await anyio.to_thread.run_sync(settings.resolve_active)
    except Exception as exc:
        return _health("unhealthy", None, f"could not tell which model is deployed: "
                       f"{_describe(exc)}")
    if active is None:
        return _health("no_model", None, None)
    await anyio.to_thread.run_sync(settings.slot.try_warm, active)
    error = settings.slot.error
    return _health("unhealthy" if error else "ok", active, error)


def _health(status: str, active: ActiveModel | None, error: str | None) -> JSONResponse:
    body = {"status": status, "version": active.version if active else None,
            "deployment_id": active.deployment_id if active else None, "error": error}
    return JSONResponse(body, 200 if status == "ok" else 503)


# --- completions ------------------------------------------------------------------------


async def complete(settings: Settings, request: Request, endpoint: str,
                   schema: type[Sampling]) -> Any:
    trace = Trace(endpoint, datetime.now(UTC), time.perf_counter())
    try:
        authorize(settings, request)
        trace.active = await resolve(settings)
        body = await read_body(request, settings.max_body_bytes)
        if trace.active is None:
            raise ApiError(503, "no_model_deployed", "no model is deployed; promote one "
                           "first", kind="server_error")
        parsed = parse_request(schema, body)
        trace.stream = parsed.stream
        job = make_job(settings, trace.active, parsed)
        generation = Generation(settings.slot, job, trace)
        first = await _first_event(generation)
    except ApiError as exc:
        await _record(settings, trace.to_record(exc.status, exc.code))
        return exc.response(model_headers(trace.active) if trace.active else None)
    reply = Reply(endpoint, trace.active, parsed)
    if parsed.stream:
        return StreamingResponse(sse(settings, generation, reply, first),
                                 media_type="text/event-stream",
                                 headers={**model_headers(trace.active),
                                          "Cache-Control": "no-cache"})
    return await whole(settings, generation, reply, first)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ApiError(400, "client_disconnected", "the client went away mid-body") from exc
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", f"the request body is over {limit} bytes")


def parse_request(schema: type[Sampling], body: bytes) -> Any:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request_body", "the body must be a JSON object")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise ApiError(400, "invalid_request_body", f"{where}: {first.get('msg')}",
                       param=where or None) from exc


def make_job(settings: Settings, active: ActiveModel, req: Any) -> Job:
    if req.model is not None and req.model != active.model_name:
        raise ApiError(404, "model_not_found", f"the model {req.model!r} is not served here; "
                       f"this server serves {active.model_name!r}", param="model")
    chat = isinstance(req, ChatRequest)
    return Job(active, [m.plain() for m in req.messages] if chat else None,
               None if chat else req.text(), req.token_budget(settings.max_tokens_limit),
               req.temperature, req.top_p, req.stop_list(), req.seed,
               stream=bool(getattr(req, "stream", False)))


async def _first_event(generation: Generation) -> tuple[str, Any]:
    """Waits for the first piece (or the end), so a failure before any text is still an
    HTTP error rather than a broken stream."""
    try:
        return await generation.next()
    except BaseException as exc:
        generation.job.cancelled.set()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise as_api_error(exc) from exc


async def _record(settings: Settings, rec: RequestRecord) -> None:
    """Hands a record to the telemetry sink; its failures are logged, never the client's."""
    def call() -> None:
        try:
            settings.record(rec)
        except Exception:
            log.exception("recording the request failed")

    with anyio.CancelScope(shield=True):  # a dropped stream still gets recorded
        await anyio.to_thread.run_sync(call)


@dataclass
class Reply:
    """Builds the OpenAI response objects of one request."""

    endpoint: str
    active: ActiveModel
    req: Any
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def chat(self) -> bool:
        return self.endpoint == "/v1/chat/completions"

    def _head(self, obj: str) -> dict[str, Any]:
        prefix = "chatcmpl-" if self.chat else "cmpl-"
        return {"id": prefix + self.id, "object": obj, "created": self.created,
                "model": self.active.model_name,
                "system_fingerprint": f"brewslm-{self.active.deployment_id}-"
                                      f"v{self.active.version}"}

    def full(self, text: str, finish: str, trace: Trace) -> dict[str, Any]:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": finish, "logprobs": None}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            obj = "text_completion"
        return {**self._head(obj), "choices": [choice], "usage": usage(trace)}

    def chunk(self, text: str | None, finish: str | None = None, *,
              role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return {**self._head("text_completion"), "choices": [choice]}

    def usage_chunk(self, trace: Trace) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage(trace)}


def usage(trace: Trace) -> dict[str, int]:
    return {"prompt_tokens": trace.prompt_tokens, "completion_tokens": trace.completion_tokens,
            "total_tokens": trace.prompt_tokens + trace.completion_tokens}


async def whole(settings: Settings, generation: Generation, reply: Reply,
                event: tuple[str, Any]) -> JSONResponse:
    pieces = []
    try:
        while event[0] == "piece":
            pieces.append(event[1])
            event = await generation.next()
    except Exception as exc:
        error = as_api_error(exc)
        await _record(settings, generation.trace.to_record(error.status, error.code))
        return error.response(model_headers(reply.active))
    await _record(settings, generation.trace.to_record(200, None))
    body = reply.full("".join(pieces), event[1][0], generation.trace)
    return JSONResponse(body, headers=model_headers(reply.active))


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def sse(settings: Settings, generation: Generation, reply: Reply,
              event: tuple[str, Any]) -> AsyncIterator[str]:
    """The stream: a role chunk (chat), one chunk per piece, a finish chunk, the usage chunk
    when asked for, [DONE]. An error after the first piece becomes an error event."""
    trace, error_code = generation.trace, "client_disconnected"
    try:
        if reply.chat:
            yield _sse(reply.chunk(None, role=True))
        while event[0] == "piece":
            yield _sse(reply.chunk(event[1]))
            event = await generation.next()
        yield _sse(reply.chunk(None, event[1][0]))
        options = reply.req.stream_options
        if options is not None and options.include_usage:
            yield _sse(reply.usage_chunk(trace))
        yield _sse("[DONE]")
        error_code = None
    except Exception as exc:
        failure = as_api_error(exc)
        error_code = failure.code
        yield _sse(error_body(failure.code, failure.message, kind=failure.kind))
        yield _sse("[DONE]")
    finally:
        generation.job.cancelled.set()
        await _record(settings, trace.to_record(200, error_code))
