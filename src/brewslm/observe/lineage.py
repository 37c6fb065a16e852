"""Lineage: where an artifact came from, back to the source files.

    brewslm audit -p NAME lineage ARTIFACT      # an id, a unique prefix, or a file inside one
    GET /api/projects/NAME/audit/lineage/ARTIFACT

The walk is generic: an artifact -> the stage run whose outputs hold it -> that run's input
artifacts -> and so on, so export -> candidate -> training run -> manifest -> dataset version ->
snapshot needs no knowledge of the stages. At an ingest snapshot the node carries the source
the run read and the files the snapshot recorded (name, sha256, size). The result is a DAG
(nodes + edges: map reads the snapshot twice, directly and through introspection), and the
nodes come in walk order, the target first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from brewslm import artifacts
from brewslm.artifacts import ArtifactInfo
from brewslm.errors import NotFoundError
from brewslm.events import query
from brewslm.project import ProjectInfo

# Result keys worth showing beside an artifact (the rest is one `runs RUN_ID` away).
FACT_KEYS = ("source", "files", "records", "manifest_hash", "splits", "final_loss", "steps",
             "simulated", "promotable", "required_failed", "candidate_id", "format", "quant",
             "parity", "verdict", "version")
CHECKSUM_FILES = ("SHA256SUMS",)
PRODUCER_STATUSES = ("succeeded", "blocked")  # runs that committed their outputs
HEX = re.compile(r"[0-9a-f]+")


def resolve(project: ProjectInfo, target: str) -> ArtifactInfo:
    """An artifact by id, unique prefix, or the path of a file or folder inside one (or a copy
    of an exported file, found by its checksum in an export's SHA256SUMS)."""
    looks_like_id = not target or HEX.fullmatch(target)
    if os.sep in target or (os.altsep and os.altsep in target) or (
            not looks_like_id and _exists(target)):
        return _by_path(project, Path(target))
    return artifacts.get(project, target)


def _exists(target: str) -> bool:
    try:
        return Path(target).exists()
    except OSError:  # a name the OS refuses (longer than NAME_MAX, ...) is no file
        return False


def _by_path(project: ProjectInfo, path: Path) -> ArtifactInfo:
    unknown = NotFoundError("audit_path_unknown", f"{path} is not inside an artifact of project "
                            f"{project.name!r}, and no export lists its checksum", path=str(path))
    try:
        resolved = path.expanduser().resolve()
        is_file = resolved.is_file()
    except (OSError, RuntimeError, ValueError):  # ~no-such-user, a NUL byte, a name too long
        raise unknown from None
    arts = artifacts.list_artifacts(project)
    for art in arts:
        folder = art.path.resolve()
        if resolved in (folder, folder.parent) or folder in resolved.parents:
            return art
    if is_file:
        try:
            digest = _sha256(resolved)
        except OSError:  # unreadable: it can match no checksum we could show
            raise unknown from None
        for art in arts:
            if digest in _listed_checksums(art):
                return art
    raise unknown


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_checksums(art: ArtifactInfo) -> set[str]:
    found = set()
    for name in CHECKSUM_FILES:
        for sums in art.path.rglob(name):
            found.update(line.split()[0] for line in sums.read_text().splitlines()
                         if line.strip())
    return found


def producers(project: ProjectInfo) -> dict[str, dict[str, Any]]:
    """Artifact id -> the run that made it (the first that committed it; a reused run only
    points at another's output)."""
    made: dict[str, dict[str, Any]] = {}
    for run in query.runs(project):  # oldest first
        if run["status"] in PRODUCER_STATUSES:
            for art_id in (run["outputs"] or {}).values():
                made.setdefault(art_id, run)
    return made


def trace(project: ProjectInfo, target: str) -> dict[str, Any]:
    """The lineage DAG of an artifact: nodes (target first), edges (input -> output)."""
    art = resolve(project, target)
    made = producers(project)
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    pending = [art.id]
    while pending:
        art_id = pending.pop(0)
        if art_id in nodes:
            continue
        run = made.get(art_id)
        nodes[art_id] = _node(project, art_id, run)
        for slot, in_id in ((run or {}).get("inputs") or {}).items():
            edges.append({"from": in_id, "to": art_id, "slot": slot})
            pending.append(in_id)
    return {"project": project.name, "query": target, "target": art.id,
            "nodes": list(nodes.values()), "edges": edges,
            "sources": [s for n in nodes.values() for s in n.get("sources", [])],
            "used_by": used_by(project, art.id)}


def _node(project: ProjectInfo, art_id: str, run: dict[str, Any] | None) -> dict[str, Any]:
    try:
        art = artifacts.get(project, art_id)
        node = {"id": art.id, "kind": art.kind, "path": str(art.path),
                "size_bytes": art.size_bytes, "file_count": art.file_count, "missing": False}
    except NotFoundError:  # deleted or never completed: the chain still says what it was
        art, node = None, {"id": art_id, "kind": None, "path": None, "missing": True}
    node["run"] = _run_brief(run)
    node["facts"] = {k: run["result"][k] for k in FACT_KEYS
                     if run and k in (run["result"] or {})}
    if run and run["stage"] == "ingest":
        node["sources"] = [_source(run, art)]
    return node


def _run_brief(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {k: run[k] for k in ("run_id", "stage", "status", "started_at", "parent_run_id",
                                "host", "pid")} | {"inputs": run["inputs"]}


def _source(run: dict[str, Any], art: ArtifactInfo | None) -> dict[str, Any]:
    """What the ingest run read: the source as given, and the files the snapshot recorded."""
    files = []
    manifest = art.path / "snapshot.json" if art else None
    if manifest and manifest.exists():
        files = json.loads(manifest.read_text()).get("files", [])
    return {"snapshot": art.id if art else None, "run_id": run["run_id"],
            "source": (run["parameters"] or {}).get("source"),
            "resolved": (run["result"] or {}).get("source"), "files": files}


def used_by(project: ProjectInfo, art_id: str) -> list[dict[str, Any]]:
    """Runs that read the artifact as an input (where it went next)."""
    return [{"run_id": r["run_id"], "stage": r["stage"], "status": r["status"],
             "slot": slot, "started_at": r["started_at"]}
            for r in query.runs(project) for slot, i in (r["inputs"] or {}).items()
            if i == art_id]
