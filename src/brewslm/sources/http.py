"""The http(s) source: download one file, then read it like a local file.

    brewslm ingest -p NAME https://example.org/data/train.jsonl

The body is streamed to a file under the ingest workdir (urllib, a per-read timeout, proxies
from the environment as usual). The format comes from --format, else the URL path's extension,
else the Content-Type, else the first bytes. Every record's `file` is the URL (with any
user:password removed). Any failure to download raises InputError("ingest_fetch_failed") with
the status or the reason, before any record is read.
"""

from __future__ import annotations

import http.client
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from brewslm import __version__
from brewslm.errors import InputError
from brewslm.sources.base import OpenedSource, SourceFile
from brewslm.sources.formats import check_file, detect_format, read_file, sha256_file

TIMEOUT_S = 60.0
CONTENT_TYPES = {
    "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl", "application/ndjson": "jsonl",
    "application/json": "json", "text/csv": "csv", "text/tab-separated-values": "tsv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "text/markdown": "markdown", "text/x-markdown": "markdown",
}


class HttpSource:
    name = "http"
    timeout_s = TIMEOUT_S

    def claims(self, spec: str) -> bool:
        return spec.lower().startswith(("http://", "https://"))

    def open(self, spec: str, *, fmt: str | None = None, text_blocks: bool = False,
             workdir: Any = None) -> OpenedSource:
        label = public_url(spec)
        folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="brewslm-http-"))
        target, content_type = download(spec, folder / "http", timeout_s=self.timeout_s)
        fmt = _format(target, fmt, content_type)
        sha, size = sha256_file(target)
        check_file(target, fmt, file=label, text_blocks=text_blocks)
        return OpenedSource(
            spec=spec, kind="http", files=[SourceFile(label, sha, size, fmt)],
            items=read_file(target, fmt, file=label, text_blocks=text_blocks),
            options={"format": fmt, "text_blocks": text_blocks, "content_type": content_type})


def _format(target: Path, fmt: str | None, content_type: str) -> str:
    # The local file keeps the URL's name, so its extension is seen first. text/plain says
    # little (many servers send it for anything), so it only decides when sniffing cannot.
    try:
        return detect_format(target, fmt, hint=CONTENT_TYPES.get(content_type))
    except InputError as e:
        if e.code == "ingest_format_unknown" and content_type == "text/plain":
            return "text"
        raise


def download(url: str, folder: Path, *, timeout_s: float = TIMEOUT_S) -> tuple[Path, str]:
    """Stream `url` into `folder`; (the file, its media type such as "text/csv")."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / url_file_name(url)
    request = urllib.request.Request(url, headers={"User-Agent": f"brewslm/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            content_type = response.headers.get("Content-Type", "")
            with target.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
    except urllib.error.HTTPError as e:
        raise _failed(url, f"HTTP {e.code} {e.reason}", status=e.code) from e
    except urllib.error.URLError as e:
        raise _failed(url, str(e.reason)) from e
    except (TimeoutError, http.client.HTTPException, OSError, ValueError) as e:
        raise _failed(url, f"{type(e).__name__}: {e}") from e
    return target, content_type.split(";")[0].strip().lower()


def url_file_name(url: str) -> str:
    """A safe local file name from the URL's last path segment ("download" if it has none)."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[:120] or "download"


def public_url(url: str) -> str:
    """The URL without user:password or query string: signed URLs carry their token in the
    query, and neither credentials nor tokens may reach the ledger, snapshot or messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def _failed(url: str, reason: str, **details: Any) -> InputError:
    label = public_url(url)
    return InputError("ingest_fetch_failed", f"could not download {label}: {reason}",
                      url=label, **details)
