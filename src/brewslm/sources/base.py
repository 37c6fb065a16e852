"""The Source protocol: where ingest's records come from, and what a reader yields.

A source turns a user's SOURCE argument (a path, a URL, `hf:ID`, `kaggle:dataset:OWNER/SLUG`)
into a stream of items in source order. Each item is either a `Record` (a JSON-like dict and its
provenance) or a `Malformed` entry (a reason code and provenance) — never silently skipped.
A source that cannot be read at all raises `InputError(code, message)` before yielding anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Record:
    file: str  # the file (relative to the source root) or URL / dataset id it came from
    position: str  # "line 12", "row 3" (CSV data row), "record 4" (JSON array index),
    #                "block 2" (text block), "document" (whole file), "row 17" (parquet / hf)
    data: dict[str, Any]


@dataclass(frozen=True)
class Malformed:
    file: str
    position: str
    code: str  # a reason code from events/taxonomy.yaml, e.g. malformed_json
    detail: str  # what was wrong, with a short excerpt of the raw input (<= 200 chars)


Item = Record | Malformed


@dataclass(frozen=True)
class SourceFile:
    """One input file as ingested: for the snapshot manifest and the content fingerprint."""

    name: str
    sha256: str
    size_bytes: int
    format: str


@dataclass
class OpenedSource:
    """A source, resolved: what it is, its files, and its items (read lazily, once)."""

    spec: str
    kind: str  # "file", "http", "hf", "kaggle"
    files: list[SourceFile]
    items: Iterator[Item]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def content_digest(self) -> str:
        """sha256 over the files' sha256s: same content, same digest (drives reuse)."""
        import hashlib

        outer = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.name):
            outer.update(f"{f.name}\0{f.sha256}\0{f.format}\n".encode())
        return outer.hexdigest()


class Source(Protocol):
    name: str  # "file", "http", "hf", "kaggle"

    def claims(self, spec: str) -> bool:
        """True if this source reads `spec` (checked in registration order)."""
        ...

    def open(self, spec: str, *, fmt: str | None = None, text_blocks: bool = False,
             workdir: Any = None) -> OpenedSource:
        """Resolve `spec` and return its files and lazy items; raise InputError when the
        source cannot be read at all. `workdir` is a pathlib.Path where downloads may go."""
        ...
