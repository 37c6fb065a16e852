"""The timeline: a project's events as a tree — pipeline runs, the stage runs they started, and
each run's events — coloured by severity.

    brewslm events -p NAME [--stage S] [--severity LEVEL] [--run RUN_ID] [--since ISO]
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree

from brewslm.events import query
from brewslm.project import ProjectInfo

COLOURS = {"info": "green", "warning": "yellow", "error": "red", "critical": "bold white on red"}
STATUS_COLOURS = {"succeeded": "green", "reused": "cyan", "running": "blue", "failed": "red",
                  "blocked": "yellow"}


def build(project: ProjectInfo, flt: query.EventFilter) -> dict[str, Any]:
    """Events and the runs they belong to, nested by parent run (the JSON form)."""
    events = query.events(project, flt)
    runs = {r["run_id"]: r for r in query.runs(project)}
    nodes: dict[str, dict[str, Any]] = {}

    def node(run_id: str) -> dict[str, Any]:
        if run_id not in nodes:
            run = runs.get(run_id, {"run_id": run_id, "stage": "?", "status": "?"})
            nodes[run_id] = {"run_id": run_id, "stage": run["stage"], "status": run["status"],
                             "started_at": run.get("started_at"), "events": [], "children": []}
            parent = run.get("parent_run_id")
            if parent:
                node(parent)["children"].append(nodes[run_id])
        return nodes[run_id]

    loose = []
    for ev in events:
        (node(ev["run_id"])["events"] if ev["run_id"] else loose).append(ev)
    roots = [n for rid, n in nodes.items() if not runs.get(rid, {}).get("parent_run_id")]
    return {"project": project.name, "events": events, "count": len(events),
            "tree": {"events": loose, "runs": roots}}


def render(timeline: dict[str, Any]) -> Tree:
    root = Tree(Text(f"project {timeline['project']} — {timeline['count']} events", style="bold"))
    items = [("event", e) for e in timeline["tree"]["events"]]
    items += [("run", r) for r in timeline["tree"]["runs"]]
    for kind, item in sorted(items, key=lambda kv: _when(kv[1])):
        _add(root, kind, item)
    return root


def _when(item: dict[str, Any]) -> str:
    return item.get("created_at") or item.get("started_at") or ""


def _add(tree: Tree, kind: str, item: dict[str, Any]) -> None:
    if kind == "event":
        tree.add(event_line(item))
        return
    label = Text.assemble((f"{item['stage']} ", "bold"), (item["run_id"], "dim"), " ",
                          (item["status"], STATUS_COLOURS.get(item["status"], "white")))
    branch = tree.add(label)
    entries = [("event", e) for e in item["events"]] + [("run", c) for c in item["children"]]
    for sub_kind, sub in sorted(entries, key=lambda kv: _when(kv[1])):
        _add(branch, sub_kind, sub)


def event_line(ev: dict[str, Any]) -> Text:
    colour = COLOURS.get(ev["severity"], "white")
    cause = ev["payload"].get("cause")
    code = f"{ev['reason_code']} ({cause})" if cause else ev["reason_code"]
    return Text.assemble((ev["created_at"][11:23] + " ", "dim"),
                         (f"{ev['severity']:<8}", colour), (f"{code:<28} ", colour),
                         ev["summary"])
