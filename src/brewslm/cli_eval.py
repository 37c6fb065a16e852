"""CLI command for stage 09, evaluate; registered by cli.py.

    brewslm evaluate -p NAME [--pack default|strict|fast|FILE] [--set KEY=VALUE]...
                     [--candidate RUN_ID|MODEL_ID] [--gold FILE.jsonl] [--json]

Prints the metrics of base and candidate with their deltas, every gate's verdict with its
evidence, where the candidate fails (clusters), the decision and the HTML report's path. Not
promotable exits 3. The stage logic lives in stages/evaluate.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brewslm import console
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, finish_stage, guarded, stage_call

CLUSTERS_SHOWN = 5


def register(app: typer.Typer) -> None:
    """Add the evaluate command to the main app."""

    @app.command("evaluate")
    @guarded
    def evaluate_cmd(project_name: ProjectOpt,
                     pack: Annotated[str, typer.Option(
                         "--pack", help="default, strict, fast, or the path of a YAML pack.")]
                     = "default",
                     set_: Annotated[list[str] | None, typer.Option(
                         "--set", help="Override a pack key, e.g. --set limit=20 or --set "
                         "generation.max_new_tokens=32 (repeatable).")] = None,
                     candidate: Annotated[str | None, typer.Option(
                         "--candidate", help="A training run id or a model id (default: the "
                         "latest trained model).")] = None,
                     gold: Annotated[str | None, typer.Option(
                         "--gold", help="A locked gold set (JSONL of messages or prompt / "
                         "reference rows) evaluated beside the eval split.")] = None,
                     json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """09 evaluate: base vs candidate on the eval split; gates decide (exit 3 if not
        promotable)."""
        result = stage_call("evaluate", project_name, {
            "pack": pack, "overrides": set_ or [], "candidate": candidate, "gold": gold},
            json_out=json_out, detach=detach)
        if not json_out and result.result.get("gates") is not None:
            print_evaluation(result.result)
        finish_stage(result, json_out)


def print_evaluation(res: dict[str, Any]) -> None:
    rows = []
    for name, m in res["comparison"].items():
        mark = {True: "[green]better[/]", False: "[red]worse[/]", None: "same"}[m["improved"]]
        rows.append((name, _n(m["base"]), _n(m["candidate"]), _n(m["delta"]), mark))
    console.out.print(console.table(
        f"metrics on {res['rows']} eval rows (pack {res['pack']['name']} "
        f"v{res['pack']['version']})", ["metric", "base", "candidate", "delta", ""], rows))
    console.out.print(console.table("gates", ["gate", "", "verdict", "evidence"], [
        (g["id"], "required" if g["required"] else "advisory",
         "[green]pass[/]" if g["passed"] else "[red]FAIL[/]", g["evidence"])
        for g in res["gates"]]))
    if res.get("gold"):
        gold = res["gold"]
        console.out.print(console.table(
            f"gold set ({gold['rows']} rows, sha256 {gold['sha256'][:12]}…)",
            ["metric", "base", "candidate", "delta"],
            [(name, _n(m["base"]), _n(m["candidate"]), _n(m["delta"]))
             for name, m in gold["comparison"].items()]))
    clusters = res.get("failure_clusters") or []
    if clusters:
        console.out.print(console.table(
            f"where the candidate fails ({res['primary_metric']} < 1)",
            ["error", "length", "slice", "count", "example prediction"],
            [(c["error_type"], c["length"], c["slice"], c["count"],
              c["exemplars"][0]["prediction"][:60]) for c in clusters[:CLUSTERS_SHOWN]]))
    verdict = "[bold green]PROMOTABLE[/]" if res["promotable"] else "[bold red]NOT PROMOTABLE[/]"
    console.out.print(f"{verdict}  report: {res.get('report_html')}")


def _n(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if isinstance(x, float) else str(x)
