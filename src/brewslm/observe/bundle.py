"""The support bundle: one zip with what a maintainer needs to see what happened, minus secrets.

    brewslm bundle -p NAME -o FILE.zip [--since ISO] [--json]
    GET /api/projects/NAME/bundle[?since=ISO]           -> application/zip

Members:
  manifest.json        what is inside (name, bytes, sha256 per member) and the redactions per kind
  project.json         the project's config: base model, description, settings, counts
  runs.json            stage runs (parameters, inputs, outputs, results, errors)
  events.jsonl         the event stream, one event per line
  clusters.json        failure clusters (observe/clusters.py)
  ledger_stats.json    per-run row accounting (rows stats)
  artifacts.json       every artifact with its sha256, kind, size and producing run
  environment.json     versions, hardware, devices, database, environment variables, doctor
  logs/...             the tail of the most recent *.log files of the project (and the
                       project's lines of BREWSLM_HOME/events-fallback.jsonl)
--since keeps events, runs and logs from that time on.

Every member goes through observe/redact.py: structured data by key name and by value, logs as
text, then every member once more for secret values learnt on the way (a token found under
`api_key` in the config is also cut from a log line). The manifest counts the redactions per
kind; it never holds a secret itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brewslm import __version__, artifacts, config, project, rows
from brewslm.errors import InputError
from brewslm.events import emit_event, query
from brewslm.observe import clusters, doctor
from brewslm.observe.redact import Redactor
from brewslm.project import ProjectInfo

BUNDLE_FORMAT = 1
LOG_FILES = 20  # the most recent ones
LOG_TAIL_BYTES = 256 << 10
LOG_GLOBS = ("*.log", "*.log.txt")


def build(info: ProjectInfo, *, since: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """The bundle as zip bytes, and its manifest."""
    since_at = query.parse_time(since, "since")
    redactor = Redactor.from_environment()
    members = _collect(info, since, since_at)
    texts = {name: _render(name, data, redactor) for name, data in members.items()}
    texts = {name: redactor.finish(text) for name, text in texts.items()}
    manifest = _manifest(info, since_at, texts, redactor)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", redactor.finish(json.dumps(manifest, indent=2)))
        for name, text in texts.items():
            zf.writestr(name, text)
    return buf.getvalue(), manifest


def write(info: ProjectInfo, output: str | Path, *, since: str | None = None) -> dict[str, Any]:
    """Write the bundle to `output` (atomically) and record a bundle_created event."""
    path = _checked_output(Path(output).expanduser())
    data, manifest = build(info, since=since)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    record(info, manifest, len(data), str(path))
    return {"path": str(path), "bytes": len(data), "manifest": manifest}


def record(info: ProjectInfo, manifest: dict[str, Any], size: int, path: str | None) -> None:
    """A bundle leaves the machine: say so in the stream, with what was redacted."""
    emit_event("bundle_created", f"support bundle of {info.name}: {len(manifest['members'])} "
               f"members, {size} bytes, {manifest['redactions']['total']} secrets redacted",
               project_id=info.id, payload={"path": path, "bytes": size,
                                            "since": manifest["since"],
                                            "redactions": manifest["redactions"]})


def _checked_output(path: Path) -> Path:
    if path.is_dir():
        raise InputError("bundle_output_invalid", f"{path} is a directory; give a file name "
                         "such as support.zip", path=str(path))
    if not path.parent.is_dir():
        raise InputError("bundle_output_invalid", f"folder {path.parent} does not exist",
                         path=str(path))
    if path.suffix.lower() != ".zip":
        raise InputError("bundle_output_invalid", f"{path} does not end in .zip",
                         path=str(path))
    return path


# --- members ----------------------------------------------------------------------------------
def _collect(info: ProjectInfo, since: str | None, since_at: datetime | None) -> dict[str, Any]:
    events = query.events(info, query.make_filter(since=since))
    runs = [r for r in query.runs(info) if not since_at
            or query.parse_time(r["started_at"], "since") >= since_at]
    members: dict[str, Any] = {
        "project.json": project.summary(project.get(info.name)),  # as stored now
        "runs.json": {"runs": runs},
        "events.jsonl": events,
        "clusters.json": clusters.compute(info, since=since),
        "ledger_stats.json": _safe(lambda: rows.stats(info)),
        "artifacts.json": {"artifacts": [_artifact(a) for a in artifacts.list_artifacts(info)]},
        "environment.json": {"environment": _safe(doctor.environment),
                             "doctor": _safe(doctor.run_checks)},
    }
    for name, text in _logs(info, since_at):
        members[name] = text
    return members


def _safe(fn: Any) -> Any:
    # A bundle is most wanted when something is broken: a part that fails says why, in place.
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


def _artifact(art: artifacts.ArtifactInfo) -> dict[str, Any]:
    return {"id": art.id, "sha256": art.id, "kind": art.kind, "size_bytes": art.size_bytes,
            "file_count": art.file_count, "run_id": art.run_id, "meta": art.meta,
            "complete": (art.path.parent / artifacts.SIDECAR).exists()}


def _logs(info: ProjectInfo, since_at: datetime | None) -> Iterator[tuple[str, str]]:
    """(member name, text): the newest log files' tails, and this project's fallback events."""
    found = [p for g in LOG_GLOBS for p in info.dir.rglob(g) if p.is_file()]
    logs_dir = Path(config.home_path()) / "logs"
    if logs_dir.is_dir():
        found += [p for g in LOG_GLOBS for p in logs_dir.rglob(g) if p.is_file()]
    if since_at:
        found = [p for p in found if _mtime(p) >= since_at]
    for path in sorted(found, key=_mtime, reverse=True)[:LOG_FILES]:
        base = info.dir if info.dir in path.parents else Path(config.home_path())
        yield f"logs/{path.relative_to(base).as_posix()}", _tail(path)
    fallback = Path(config.home_path()) / "events-fallback.jsonl"
    if fallback.is_file():
        mine = [line for line in _tail(fallback, 4 * LOG_TAIL_BYTES).splitlines()
                if f'"project_id": "{info.id}"' in line]
        if mine:
            yield "logs/events-fallback.jsonl", "\n".join(mine) + "\n"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    if size > limit:  # cut at a line start and say so
        text = f"[... {size - limit} earlier bytes not included ...]\n" + text.split("\n", 1)[-1]
    return text


def _render(name: str, data: Any, redactor: Redactor) -> str:
    if isinstance(data, str):  # a log: text
        return redactor.redact_text(data)
    clean = redactor.redact_obj(data)
    if name.endswith(".jsonl"):
        return "".join(json.dumps(item, default=str) + "\n" for item in clean)
    return json.dumps(clean, indent=2, default=str)


def _manifest(info: ProjectInfo, since_at: datetime | None, texts: dict[str, str],
              redactor: Redactor) -> dict[str, Any]:
    members = [{"name": name, "bytes": len(text.encode()),
                "sha256": hashlib.sha256(text.encode()).hexdigest()}
               for name, text in texts.items()]
    return {"bundle_format": BUNDLE_FORMAT, "brewslm_version": __version__,
            "created_at": datetime.now(UTC).isoformat(), "project": info.name,
            "project_id": info.id, "since": since_at.isoformat() if since_at else None,
            "members": members, "redactions": redactor.summary(),
            "limits": {"log_files": LOG_FILES, "log_tail_bytes": LOG_TAIL_BYTES}}
