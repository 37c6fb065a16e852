"""The local source: one file, or a folder read recursively.

    brewslm ingest -p NAME data/train.jsonl      # one file; Record.file is "train.jsonl"
    brewslm ingest -p NAME data/                 # a folder; Record.file is "sub/part-1.csv"

A folder is walked in sorted order; hidden files and folders are skipped, and so are files
whose extension names no known format (they are listed in `options["skipped"]`) unless a
--format is given, which then applies to every file. Each file is hashed and checked when the
source is opened, so an unreadable file fails the ingest before any record is read. `open_path`
is shared with the sources that download into a folder first (http, kaggle).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from brewslm.errors import InputError
from brewslm.sources.base import Item, OpenedSource, SourceFile
from brewslm.sources.formats import (
    check_file,
    detect_format,
    format_from_name,
    read_file,
    sha256_file,
)

# "s3://x", "gs:bucket" or "hf:x" look like another source's spec, not like a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

Entry = tuple[Path, str, str]  # (path on disk, name in records, format)


class LocalSource:
    name = "file"

    def claims(self, spec: str) -> bool:
        if not spec:
            return False
        return spec.startswith("file://") or not _SCHEME.match(spec) or Path(spec).exists()

    def open(self, spec: str, *, fmt: str | None = None, text_blocks: bool = False,
             workdir: Any = None) -> OpenedSource:
        return open_path(_to_path(spec), spec=spec, fmt=fmt, text_blocks=text_blocks)


def open_path(path: Path, *, spec: str, kind: str = "file", fmt: str | None = None,
              text_blocks: bool = False) -> OpenedSource:
    """Open a file or folder on disk: files hashed and checked now, items read lazily."""
    if not path.exists():
        raise InputError("ingest_source_not_found", f"{spec}: no such file or folder", path=spec)
    if path.is_dir():
        chosen, skipped = list_folder(path, every_file=bool(fmt))
        if not chosen:
            raise InputError("ingest_source_not_found", f"{spec}: the folder holds no file "
                             "with a known extension (.jsonl .json .csv .tsv .parquet .txt .md)",
                             path=spec, skipped=skipped[:20])
        named = [(p, p.relative_to(path).as_posix()) for p in chosen]
    else:
        named, skipped = [(path, path.name)], []
    entries = [(p, name, detect_format(p, fmt)) for p, name in named]
    files = [_describe(p, name, f, text_blocks) for p, name, f in entries]
    options: dict[str, Any] = {"format": fmt, "text_blocks": text_blocks}
    if skipped:
        options["skipped"] = skipped
    return OpenedSource(spec=spec, kind=kind, files=files, items=_items(entries, text_blocks),
                       options=options)


def list_folder(root: Path, *, every_file: bool = False) -> tuple[list[Path], list[str]]:
    """(files to read, names skipped), sorted by relative path; hidden entries are left out
    silently, files of unknown extension are reported as skipped unless `every_file`."""
    chosen: list[Path] = []
    skipped: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder, name)
            if name.startswith(".") or not path.is_file():
                continue
            if every_file or format_from_name(name):
                chosen.append(path)
            else:
                skipped.append(path.relative_to(root).as_posix())
    chosen.sort(key=lambda p: p.relative_to(root).as_posix())
    return chosen, sorted(skipped)


def _describe(path: Path, name: str, fmt: str, text_blocks: bool) -> SourceFile:
    try:
        sha, size = sha256_file(path)
    except OSError as e:
        raise InputError("ingest_source_not_found", f"{name} cannot be read: {e.strerror}",
                         file=name) from e
    check_file(path, fmt, file=name, text_blocks=text_blocks)
    return SourceFile(name=name, sha256=sha, size_bytes=size, format=fmt)


def _items(entries: list[Entry], text_blocks: bool) -> Iterator[Item]:
    for path, name, fmt in entries:
        yield from read_file(path, fmt, file=name, text_blocks=text_blocks)


def _to_path(spec: str) -> Path:
    if spec.startswith("file://"):
        return Path(unquote(urlparse(spec).path))
    return Path(spec).expanduser()
