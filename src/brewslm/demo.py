"""`brewslm demo` (and `make demo`): a readable run-through of what exists of the lifecycle.

Today that is the spine: a project on builtin:tiny, the base model built and described, a
synthetic row stage through the runner (ledger, artifact, events), its reuse on a second run,
the ledger's accounting, one rejected row's trace, and the timeline. Each later stage issue
extends this file with its stage on the bundled sample data.
"""

from __future__ import annotations

from typing import Any

from rich.rule import Rule

from brewslm import console, progress, project, rows
from brewslm.errors import NotFoundError
from brewslm.events import query, timeline
from brewslm.ledger import make_row_id
from brewslm.stages.runner import run_stage
from brewslm.stages.synthetic import SyntheticStage

DEMO_PROJECT = "demo"
SYNTHETIC = {"rows": 20_000, "reject_every": 7, "change_every": 5, "seed": 0}


def run_demo(*, quiet: bool = False) -> dict[str, Any]:
    say = (lambda *_: None) if quiet else console.err.print
    info = _fresh_project(say)

    say(Rule("base model"))
    model = project.resolve_base_model(info)
    say(f"{model['ref']}: {model['architecture']}, {model['parameters']:,} parameters, "
        f"chat template: {model['chat_template']}\n  {model['path']}")

    say(Rule("a row stage through the runner (synthetic rows)"))
    with progress.rich_bars(enabled=not quiet):
        first = run_stage(SyntheticStage(), info, params=SYNTHETIC)
    again = run_stage(SyntheticStage(), info, params=SYNTHETIC)
    for res in (first, again):
        counts = res.to_dict().get("counts")
        say(f"{res.stage} {res.run_id}: {res.status}  {counts}")

    say(Rule("row ledger"))
    stats = rows.stats(info)
    for s in stats["stages"]:
        say(f"{s['stage']}: in {s['in']} = out {s['out']} + dropped {s['dropped']} "
            f"{s['by_reason']}  {'FLAGGED' if s['flagged'] else 'ok'}")
    rejected = make_row_id("synthetic:0", 0)
    trace = rows.trace(info, rejected)
    say(f"row {rejected}: {trace['final']} — {trace['steps'][-1].get('meaning', '')}")

    say(Rule("timeline"))
    tl = timeline.build(info, query.EventFilter())
    if not quiet:
        console.err.print(timeline.render(tl))
    return {"project": info.name, "base_model": model, "runs": [first.to_dict(), again.to_dict()],
            "ledger": stats, "trace": trace, "events": tl["count"]}


def _fresh_project(say) -> project.ProjectInfo:
    try:
        project.delete_project(DEMO_PROJECT)
        say(f"removed the previous {DEMO_PROJECT!r} project")
    except NotFoundError:
        pass
    info = project.create(DEMO_PROJECT, base_model="builtin:tiny",
                          description="made by `brewslm demo`")
    say(f"created project {info.name!r} in {info.dir}")
    return info
