"""CLI command for stage 10, export; registered by cli.py.

    brewslm export -p NAME --format adapter|safetensors|hf|gguf|vllm [--quant f16|q8_0|...]
                   [--candidate RUN_ID|MODEL_ID] [--force] [--json]

Prints the files written with their sha256, the parity verdict of every reader and how to load
the export. A candidate that is not promotable is refused (exit 3) unless --force; a parity
failure exits 1 and publishes nothing. The stage logic lives in stages/export.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brewslm import console
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, finish_stage, guarded, stage_call


def register(app: typer.Typer) -> None:
    """Add the export command to the main app."""

    @app.command("export")
    @guarded
    def export_cmd(project_name: ProjectOpt,
                   fmt: Annotated[str, typer.Option(
                       "--format", help="adapter, safetensors, hf, gguf or vllm.")],
                   quant: Annotated[str | None, typer.Option(
                       "--quant", help="Weights precision: f32, f16, bf16 (folders); f32, f16, "
                       "q8_0 (gguf, default f16).")] = None,
                   candidate: Annotated[str | None, typer.Option(
                       "--candidate", help="A training run id or a model id (default: the "
                       "latest trained model).")] = None,
                   force: Annotated[bool, typer.Option(
                       "--force", help="Export a candidate that is not promotable (recorded)."
                   )] = False,
                   json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
        """10 export: write the candidate in a format, proven to reproduce it (parity)."""
        result = stage_call("export", project_name, {
            "fmt": fmt, "quant": quant, "candidate": candidate, "force": force},
            json_out=json_out, detach=detach)
        if not json_out and result.result.get("artifacts"):
            print_export(result.result)
        finish_stage(result, json_out)


def print_export(res: dict[str, Any]) -> None:
    console.out.print(console.table(
        f"{res['format']} export ({res['quant']}) {res['export_id'][:16]}",
        ["file", "bytes", "sha256"],
        [(a["path"], f"{a['bytes']:,}", a["sha256"][:16] + "…") for a in res["artifacts"]]))
    console.out.print(console.table("parity against the evaluated candidate", [
        "reader", "", "max |logit diff|", "tolerance", "argmax", "tokens", "template"], [
        (p["reader"], "[green]pass[/]" if p["passed"] else "[red]FAIL[/]",
         f"{p['max_abs_diff']:.3g}", str(p["tolerance"]), f"{p['argmax_agreement']:.0%}",
         "equal" if p["tokenization_equal"] else "[red]differ[/]",
         "equal" if p["chat_template_equal"] else "[red]differ[/]")
        for p in res["parity"]["readers"]]))
    if res.get("forced"):
        console.out.print("[yellow]exported with --force: the candidate was not shown "
                          "promotable[/]")
    console.out.print(f"model card: {res['path']}/README.md")
