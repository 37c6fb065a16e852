"""REST routes for data uploads: a file sent from the browser (or curl) lands in the project's
folder, where the ingest stage can read it by path.

    curl -F file=@tickets.jsonl localhost:8321/api/projects/tickets/uploads
        -> {"name": "tickets.jsonl", "path": "/…/projects/tickets/uploads/tickets.jsonl",
            "bytes": 17402, "sha256": "…"}
    POST /api/projects/tickets/stages/ingest  {"source": "<that path>"}
    GET  /api/projects/{name}/uploads          the files uploaded so far, newest first

The multipart body is parsed as it arrives and the file part streamed to disk in chunks (hashed
on the way), so neither memory nor a temporary copy grows with the file. The stored name is the
file's base name reduced to safe characters (no path survives). An upload never replaces a
file: the same name with the same bytes answers with the file already there, the same name
with other bytes is stored beside it as NAME-SHA12.EXT, so every earlier snapshot's source
path still holds what was ingested. Empty files and files over the limit
(BREWSLM_UPLOAD_MAX_BYTES, default 2 GiB) are refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from brewslm import project
from brewslm.api.app import error_body
from brewslm.errors import InputError

DEFAULT_MAX_BYTES = 2 << 30
MULTIPART_OVERHEAD = 64 << 10  # boundaries and part headers around the file's bytes
NAME_MAX = 120
FIELD = "file"
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PARTIAL_PREFIX = ".partial-"

REQUEST_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": [FIELD], "properties": {
        FIELD: {"type": "string", "format": "binary",
                "description": "the data file (JSONL, CSV, TSV, JSON, Parquet, text)"}}}}}}}


class TooLarge(Exception):
    """The upload passed the size limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the upload limit of {limit} bytes")
        self.limit = limit


def max_upload_bytes() -> int:
    """The size limit, read from BREWSLM_UPLOAD_MAX_BYTES each time (config's convention)."""
    return int(os.environ.get("BREWSLM_UPLOAD_MAX_BYTES") or DEFAULT_MAX_BYTES)


def uploads_dir(info: project.ProjectInfo) -> Path:
    return info.dir / "uploads"


def safe_name(filename: str | None) -> str:
    """The base name of `filename` in letters, digits, `.`, `_` and `-` only (no folder, no
    leading dot); upload_name_invalid when nothing usable is left."""
    base = re.split(r"[\\/]", filename or "")[-1]
    name = UNSAFE.sub("_", base).lstrip(".")
    if len(name) > NAME_MAX:
        stem, suffix = os.path.splitext(name)
        name = stem[:NAME_MAX - len(suffix[:20])] + suffix[:20]
    if not name.strip("._-"):
        raise InputError("upload_name_invalid", f"the upload's file name {filename!r} has no "
                         "usable characters; name the file like data.jsonl", filename=filename)
    return name


@dataclass
class FilePart:
    """python-multipart callbacks that keep the first part named `file` with a file name:
    its name once its headers are read, its bytes in `pending` until the caller writes them."""

    filename: str | None = None
    complete: bool = False
    pending: list[bytes] = field(default_factory=list)
    _in_file: bool = False
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _name: bytes = b""
    _value: bytes = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._headers.clear, "on_header_field": self._on_name,
                "on_header_value": self._on_value, "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_data, "on_part_end": self._on_part_end}

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data

    def _on_name(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._name.strip().lower()] = self._value
        self._name = self._value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if (self.filename is None and options.get(b"name") == FIELD.encode()
                and b"filename" in options):
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._in_file = True

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._in_file:
            self._in_file, self.complete = False, True


@dataclass(frozen=True)
class Received:
    filename: str | None
    size: int
    sha256: str


async def receive_file(request: Request, partial: Path, limit: int) -> Received:
    """Stream the multipart body's file part into `partial`, hashing it; TooLarge past
    `limit`, request_invalid for a body that is not multipart or has no file part."""
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in options:
        raise InputError("request_invalid", f"send the file as multipart/form-data in a field "
                         f"named {FIELD!r}", content_type=ctype.decode("latin-1"))
    part = FilePart()
    parser = MultipartParser(options[b"boundary"], part.callbacks())
    digest, size = hashlib.sha256(), 0
    with partial.open("wb") as out:
        async for chunk in request.stream():
            _feed(parser, chunk)
            data = part.take()
            size += len(data)
            if size > limit:
                raise TooLarge(limit)
            digest.update(data)
            await run_in_threadpool(out.write, data)
        _feed(parser, None)
    if not part.complete:
        raise InputError("request_invalid", f"the request has no file in a field named "
                         f"{FIELD!r}")
    return Received(part.filename, size, digest.hexdigest())


def _feed(parser: MultipartParser, chunk: bytes | None) -> None:
    """One chunk into the parser (None: the end); a malformed body is request_invalid."""
    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except FormParserError as exc:
        raise InputError("request_invalid", f"the multipart body is malformed: {exc}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def place(partial: Path, folder: Path, name: str, got: Received) -> Path:
    """Move the received file to its final name (never replacing another file's bytes)."""
    for candidate in _candidates(name, got.sha256):
        target = folder / candidate
        if not target.exists():
            os.replace(partial, target)
            return target
        if target.stat().st_size == got.size and file_sha256(target) == got.sha256:
            partial.unlink()
            return target  # the same bytes are there already
    raise InputError("request_invalid", f"{name!r} and its content-named variant both hold "
                     "other bytes; rename the file and upload it again", name=name)


def _candidates(name: str, sha256: str) -> list[str]:
    stem, suffix = os.path.splitext(name)
    return [name, f"{stem}-{sha256[:12]}{suffix}"]


def list_uploads(info: project.ProjectInfo) -> list[dict[str, Any]]:
    folder = uploads_dir(info)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] \
        if folder.is_dir() else []
    rows = [{"name": p.name, "path": str(p), "bytes": p.stat().st_size,
             "modified_at": datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat()}
            for p in files]
    return sorted(rows, key=lambda r: r["modified_at"], reverse=True)


def _declared_too_large(request: Request, limit: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(error_body("upload_too_large", f"the file is larger than the upload "
                                   f"limit of {limit} bytes (BREWSLM_UPLOAD_MAX_BYTES)",
                                   {"limit_bytes": limit}), status_code=413)


async def save_upload(request: Request, info: project.ProjectInfo) -> dict[str, Any]:
    """Receive, check and place one upload; what the POST route answers."""
    limit = max_upload_bytes()
    folder = uploads_dir(info)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
    try:
        got = await receive_file(request, partial, limit)
        name = safe_name(got.filename)
        if got.size == 0:
            raise InputError("upload_empty", f"the uploaded file {name!r} is empty "
                             "(0 bytes): there is nothing to ingest", name=name)
        path = await run_in_threadpool(place, partial, folder, name, got)
    finally:
        partial.unlink(missing_ok=True)
    return {"name": path.name, "path": str(path), "bytes": got.size, "sha256": got.sha256}


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the upload routes; `deps` holds the token check."""

    @app.post("/api/projects/{name}/uploads", dependencies=deps, status_code=201,
              tags=["data"], openapi_extra=REQUEST_BODY, response_model=None)
    async def upload(name: str, request: Request) -> dict[str, Any] | JSONResponse:
        """Upload a data file (multipart field `file`) into the project's uploads folder;
        answers its name, path (the ingest stage's source), bytes and sha256."""
        info = await run_in_threadpool(project.get, name)
        limit = max_upload_bytes()
        if _declared_too_large(request, limit):
            return _too_large(limit)
        try:
            return await save_upload(request, info)
        except TooLarge as exc:
            return _too_large(exc.limit)

    @app.get("/api/projects/{name}/uploads", dependencies=deps, tags=["data"])
    def uploads(name: str) -> dict[str, Any]:
        """The project's uploaded files (name, path, bytes, modified_at), newest first."""
        return {"uploads": list_uploads(project.get(name))}
