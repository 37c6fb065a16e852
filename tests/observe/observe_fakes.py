"""Stand-ins for train, evaluate and export that run through the real runner in milliseconds.

They record what the real stages record (runs with inputs and outputs, artifacts, `*_forced`
events, `eval_scored` ledger entries, results with promotable / gates / required_failed /
candidate_id), so the audit surfaces can be tested on a whole lineage without training. One
test in test_audit.py runs the real stages to keep these honest.
"""

from __future__ import annotations

import hashlib
from typing import Any

from brewslm.errors import BlockedError
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.outputs import latest_output
from brewslm.stages.runner import StageResult, run_stage


class FakeTrain:
    name, number, version = "train", 8, "fake"
    inputs, outputs = ("manifest",), ("model",)

    def validate(self, ctx: StageContext) -> None:
        pass

    def run(self, ctx: StageContext) -> dict[str, Any]:
        if ctx.params.get("force"):
            ctx.emit("preflight_forced", "--force: training although preflight blocked "
                     "(memory)", blockers=["preflight_memory_exceeded"])
        builder = ctx.new_artifact("model")
        (builder.dir / "adapter_model.safetensors").write_text(f"weights {ctx.params['tag']}")
        art = ctx.publish("model", builder, {"simulated": False})
        return {"model_id": art.id, "final_loss": 1.25, "steps": 2, "simulated": False}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass


GATES = {True: [{"id": "beats_base_on_loss", "metric": "eval_loss", "required": True,
                 "passed": True, "value": 1.0, "base_value": 2.0, "threshold": 0.0,
                 "evidence": "candidate 1.0000 vs base 2.0000: better by 1.0000"}],
         False: [{"id": "beats_base_on_loss", "metric": "eval_loss", "required": True,
                  "passed": False, "value": 3.0, "base_value": 2.0, "threshold": 0.0,
                  "evidence": "candidate 3.0000 vs base 2.0000: worse by 1.0000"}]}


class FakeEvaluate:
    name, number, version = "evaluate", 9, "fake"
    inputs, outputs = ("manifest", "model"), ("eval_report",)

    def validate(self, ctx: StageContext) -> None:
        pass

    def run(self, ctx: StageContext) -> dict[str, Any]:
        ok = ctx.params["promotable"]
        ctx.ledger.count_in(len(ctx.params["rows"]))
        for row_id in ctx.params["rows"]:
            ctx.ledger.kept(row_id, reason_code="eval_scored", split="eval", detail={
                "reference": "category 1", "slice": None,
                "base": {"prediction": "category 2", "scores": {"exact_match": 0.0}},
                "candidate": {"prediction": "category 1", "scores": {"exact_match": 1.0}}})
        builder = ctx.new_artifact("eval_report")
        (builder.dir / "report.json").write_text(
            f'{{"promotable": {str(ok).lower()}, "model": "{ctx.inputs["model"].id}"}}')
        report = ctx.publish("eval_report", builder, {"promotable": ok})
        gates = GATES[ok]
        result = {"promotable": ok, "gates": gates,
                  "required_failed": [g["id"] for g in gates if not g["passed"]],
                  "candidate_id": ctx.inputs["model"].id, "report_id": report.id,
                  "pack": {"name": "fast", "version": 1}}
        ctx.emit("eval_gate_passed" if ok else "eval_gate_failed", gates[0]["evidence"])
        if not ok:
            ctx.refuse_after_outputs(BlockedError(
                "eval_not_promotable", "Not promotable: required gate(s) failed: "
                "beats_base_on_loss", required_failed=result["required_failed"]))
        return result

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass


class FakeExport:
    name, number, version = "export", 10, "fake"
    inputs, outputs = ("model", "eval_report"), ("export",)

    def validate(self, ctx: StageContext) -> None:
        pass

    def run(self, ctx: StageContext) -> dict[str, Any]:
        if ctx.params.get("force"):
            ctx.emit("export_forced", "--force: exporting although the latest evaluation was "
                     "not promotable", overridden="export_not_promotable", by="tester")
        builder = ctx.new_artifact("export")
        gguf = builder.dir / "model.gguf"
        gguf.write_bytes(b"GGUF" + ctx.inputs["model"].id.encode())
        digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
        (builder.dir / "SHA256SUMS").write_text(f"{digest}  model.gguf\n")
        ctx.publish("export", builder, {"format": "gguf"})
        return {"format": "gguf", "candidate_id": ctx.inputs["model"].id}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass


def train(info: ProjectInfo, tag: str = "a", force: bool = False) -> StageResult:
    manifest = latest_output(info, "prepare", "manifest")
    result = run_stage(FakeTrain(), info, params={"tag": tag, "force": force},
                       inputs={"manifest": manifest})
    assert result.status == "succeeded", result.error
    return result


def evaluate(info: ProjectInfo, model_id: str, *, promotable: bool,
             rows: list[str]) -> StageResult:
    manifest = latest_output(info, "prepare", "manifest")
    result = run_stage(FakeEvaluate(), info, params={"promotable": promotable, "rows": rows},
                       inputs={"manifest": manifest, "model": model_id})
    assert result.status == ("succeeded" if promotable else "blocked"), result.error
    return result


def export(info: ProjectInfo, model_id: str, report_id: str, *, force: bool) -> StageResult:
    result = run_stage(FakeExport(), info, params={"force": force},
                       inputs={"model": model_id, "eval_report": report_id})
    assert result.status == "succeeded", result.error
    return result


def lifecycle(info: ProjectInfo, rows: list[str]) -> dict[str, Any]:
    """A model refused, then a second one promotable, exported; a third refused and exported
    with --force. Returns the ids a test asks about."""
    first = train(info, "first")
    first_id = first.outputs["model"]["id"]
    refused = evaluate(info, first_id, promotable=False, rows=rows)
    good = train(info, "good")
    good_id = good.outputs["model"]["id"]
    passed = evaluate(info, good_id, promotable=True, rows=rows)
    exported = export(info, good_id, passed.outputs["eval_report"]["id"], force=False)
    bad = train(info, "bad", force=True)
    bad_id = bad.outputs["model"]["id"]
    bad_eval = evaluate(info, bad_id, promotable=False, rows=rows)
    forced = export(info, bad_id, bad_eval.outputs["eval_report"]["id"], force=True)
    return {"refused_model": first_id, "refused_train": first.run_id,
            "refused_eval": refused.run_id,
            "good_model": good_id, "good_train": good.run_id, "good_eval": passed.run_id,
            "good_report": passed.outputs["eval_report"]["id"],
            "export": exported.outputs["export"]["id"], "export_run": exported.run_id,
            "bad_model": bad_id, "bad_train": bad.run_id, "bad_eval": bad_eval.run_id,
            "forced_export": forced.outputs["export"]["id"], "forced_export_run": forced.run_id}
