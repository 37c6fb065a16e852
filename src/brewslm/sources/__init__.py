"""Ingest sources and their registry: turn a SOURCE argument into records.

    opened = open_source("data/train.jsonl", workdir=Path(tmp))
    opened.files          # [SourceFile(name, sha256, size_bytes, format)], hashed at open
    for item in opened.items:   # Record | Malformed, in source order, read lazily
        ...

The first registered source whose `claims(spec)` is true opens it. Built-ins come first, in
this order: hf (`hf:ID[:split[:revision]]`), kaggle (`kaggle:dataset:OWNER/SLUG[?file=NAME]`),
http (`http://`, `https://`), local (a path, or `file://`). Plugins follow: objects (or classes
or factories making them) with `name`, `claims` and `open`, registered under the entry-point
group `brewslm.sources`, e.g. in a plugin's pyproject:

    [project.entry-points."brewslm.sources"]
    s3 = "brewslm_s3:S3Source"

A plugin that fails to load is skipped with a warning on stderr. A spec nobody claims is
InputError("ingest_source_unsupported").
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from brewslm.errors import InputError
from brewslm.sources.base import Item, Malformed, OpenedSource, Record, Source, SourceFile
from brewslm.sources.formats import normalize_format
from brewslm.sources.hf import HfSource
from brewslm.sources.http import HttpSource
from brewslm.sources.kaggle import KaggleSource
from brewslm.sources.local import LocalSource

__all__ = ["BUILTIN_SOURCES", "ENTRY_POINT_GROUP", "Item", "Malformed", "OpenedSource",
           "Record", "Source", "SourceFile", "find_source", "open_source", "plugin_sources",
           "registered_sources"]

ENTRY_POINT_GROUP = "brewslm.sources"
BUILTIN_SOURCES: tuple[Source, ...] = (HfSource(), KaggleSource(), HttpSource(), LocalSource())
FORMS = "a path, an http(s) URL, hf:ID[:split[:revision]] or kaggle:dataset:OWNER/SLUG"


def open_source(spec: str, *, fmt: str | None = None, text_blocks: bool = False,
                workdir: Path) -> OpenedSource:
    """Open SOURCE with the first source that claims it; files are hashed and checked now,
    items are read lazily. Raises InputError when the source cannot be read at all."""
    spec = spec.strip()
    fmt = normalize_format(fmt) if fmt else None
    source = find_source(spec)
    return source.open(spec, fmt=fmt, text_blocks=text_blocks, workdir=workdir)


def find_source(spec: str) -> Source:
    """The first registered source that claims `spec`."""
    for source in registered_sources():
        if _claims(source, spec):
            return source
    raise InputError("ingest_source_unsupported",
                     f"{spec!r} is not a source BrewSLM reads; give {FORMS}", spec=spec)


def registered_sources() -> list[Source]:
    """Built-ins first (hf, kaggle, http, local), then plugins in entry-point name order."""
    return [*BUILTIN_SOURCES, *plugin_sources()]


def plugin_sources() -> list[Source]:
    """Sources installed under the `brewslm.sources` entry-point group; broken ones skipped."""
    found: list[Source] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            found.append(_instantiate(ep.load()))
        except Exception as e:  # a broken plugin must not stop ingest from other sources
            _warn(f"skipping source plugin {ep.name!r} ({ep.value}): {type(e).__name__}: {e}")
    return found


def _instantiate(obj: Any) -> Source:
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "claims")):
        obj = obj()
    missing = [a for a in ("name", "claims", "open") if not hasattr(obj, a)]
    if missing:
        raise TypeError(f"not a Source: it lacks {', '.join(missing)}")
    return obj


def _claims(source: Source, spec: str) -> bool:
    try:
        return bool(source.claims(spec))
    except Exception as e:  # only plugins can get here; built-in claims() never raise
        _warn(f"skipping source {getattr(source, 'name', source)!r}: claims() failed: {e}")
        return False


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
