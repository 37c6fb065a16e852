"""Failure clusters: a project's error and critical events grouped by what went wrong.

    brewslm clusters -p NAME [--stage S] [--since ISO] [--until ISO] [--json]
    GET /api/projects/NAME/clusters

One cluster per (stage, reason code, cause, signature). The cause is the code a stage_failed /
stage_blocked event carries in its payload (the stage's own reason); the signature is the
summary with timestamps, URLs, paths, hex ids and numbers replaced by placeholders, so "no
file /tmp/a.jsonl" and "no file /data/b.jsonl" fall together. Each cluster has its count,
first and last seen, the three most recent exemplars and the taxonomy's remediation hint.

Clusters are computed from the events on every call (no table of their own): the same events
give the same clusters, ids included, so recomputing is idempotent.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from brewslm.events import query, taxonomy
from brewslm.project import ProjectInfo

EXEMPLARS = 3
# Order matters: a timestamp holds numbers, a URL holds a path, a path holds hex ids.
NORMALIZERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                r"(?:Z|[+-]\d{2}:?\d{2})?)?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>)\]]+", re.I), "<url>"),
    (re.compile(r"(?<![\w/.~-])(?:~|\.{1,2})?/[^\s'\"(),:;\[\]<>]+"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\[^\s'\"(),:;\[\]<>]+"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<id>"),
    (re.compile(r"\b(?:run-|r)?(?=[0-9a-f]*\d)[0-9a-f]{7,}\b"), "<id>"),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\d)", re.I), "<n>"),
    (re.compile(r"\s+"), " "),
]


def signature(summary: str) -> str:
    """The summary with what varies between occurrences normalized away."""
    text = summary
    for pattern, placeholder in NORMALIZERS:
        text = pattern.sub(placeholder, text)
    return text.strip()


def cluster_id(stage: str, code: str, cause: str | None, sig: str) -> str:
    key = "\0".join((stage, code, cause or "", sig))
    return "c" + hashlib.sha256(key.encode()).hexdigest()[:12]


def compute(project: ProjectInfo, *, stage: str | None = None, since: str | None = None,
            until: str | None = None) -> dict[str, Any]:
    """The clusters of the project's error and critical events (optionally of one stage or
    time window), most frequent first."""
    flt = query.make_filter(stage=stage, severity="error", since=since, until=until)
    events = query.events(project, flt)
    groups: dict[str, dict[str, Any]] = {}
    for ev in events:  # oldest first (by id)
        cause = (ev.get("payload") or {}).get("cause")
        sig = signature(ev["summary"])
        cid = cluster_id(ev["stage"], ev["reason_code"], cause, sig)
        if cid not in groups:
            groups[cid] = _new(cid, ev, cause, sig)
        _add(groups[cid], ev)
    # Most frequent first; among equals the most recent first (stable sorts, last key first).
    clusters = sorted(groups.values(), key=lambda c: c["id"])
    clusters.sort(key=lambda c: c["last_seen"] or "", reverse=True)
    clusters.sort(key=lambda c: c["count"], reverse=True)
    for c in clusters:
        c["runs"] = len(c.pop("_runs"))
        c["exemplars"] = c["exemplars"][-EXEMPLARS:][::-1]  # the most recent first
    return {"project": project.name, "filters": {"stage": stage, "since": since, "until": until},
            "events": len(events), "as_of_event_id": events[-1]["id"] if events else None,
            "clusters": clusters}


def _new(cid: str, ev: dict[str, Any], cause: str | None, sig: str) -> dict[str, Any]:
    explained = cause if cause and taxonomy.is_known(cause) else ev["reason_code"]
    code = taxonomy.lookup(explained) if taxonomy.is_known(explained) else None
    return {"id": cid, "stage": ev["stage"], "reason_code": ev["reason_code"], "cause": cause,
            "signature": sig, "severity": ev["severity"], "count": 0,
            "first_seen": ev["created_at"], "last_seen": ev["created_at"],
            "meaning": code.meaning if code else None, "hint": code.hint if code else None,
            "exemplars": [], "_runs": set()}


def _add(group: dict[str, Any], ev: dict[str, Any]) -> None:
    group["count"] += 1
    group["last_seen"] = ev["created_at"]
    if taxonomy.SEVERITIES.index(ev["severity"]) > taxonomy.SEVERITIES.index(group["severity"]):
        group["severity"] = ev["severity"]
    if ev["run_id"]:
        group["_runs"].add(ev["run_id"])
    group["exemplars"] = [*group["exemplars"][-(EXEMPLARS - 1):],
                          {k: ev[k] for k in ("id", "created_at", "run_id", "summary")}]
