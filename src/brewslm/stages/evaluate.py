"""Stage 09, evaluate: the base model and a trained candidate on the same eval rows, scored by
an eval pack's metrics, compared, and judged by its gates.

    from brewslm.stages.evaluate import evaluate
    result = evaluate(project, pack="default", overrides=["limit=20"])     # a StageResult
    result = evaluate(project, candidate="run-…")      # a training run (or a model artifact id)
    result.result["promotable"], result.result["gates"], result.result["metrics"]

validate() refuses a simulated model and a pack that does not hold together. run() loads the
eval split (the manifest the candidate was trained on), generates with the base and then with
the candidate under the same chat template and generation settings, scores every row with
every metric, computes the teacher-forced eval loss and perplexity of both, aggregates per
metric and per slice, applies the gates, clusters the candidate's failures, and writes the
report artifact (report.json, examples.jsonl, report.html). Each eval row gets a ledger entry
(`eval_scored`) whose detail holds both predictions and scores, so `rows trace` ends with how
the model did on that row. A candidate that is not promotable ends the run blocked (exit 3)
with the report kept.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from brewslm import artifacts
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.evaluate import gates as gates_mod
from brewslm.evaluate import report
from brewslm.evaluate.pack import LOSS_METRICS, load_pack, metric_name, pack_hash
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.runner import StageResult, run_stage

SIDES = ("base", "candidate")


def evaluate(project: ProjectInfo, *, pack: str = "default", overrides: list[str] | tuple = (),
             candidate: str | None = None, gold: str | None = None,
             parent_run_id: str | None = None) -> StageResult:
    """Run stage 09 on the latest trained model (or `candidate`: a train run id or a model id),
    with the user's locked gold set (a JSONL file) when `gold` is given."""
    effective = load_pack(pack, list(overrides))
    model_id = candidate_model(project, candidate)
    manifest_id = _manifest_of(project, model_id)
    params = {"pack": effective, "gold": _gold_param(gold)}
    return run_stage(EvaluateStage(), project, params=params,
                     inputs={"manifest": manifest_id, "model": model_id},
                     parent_run_id=parent_run_id)


def candidate_model(project: ProjectInfo, candidate: str | None) -> str:
    """A training run id -> its model; a model artifact id (or prefix) as is; None -> latest."""
    from brewslm.events import query
    from brewslm.stages.train import latest_model

    if candidate and candidate.startswith("run-"):
        run = query.get_run(project, candidate)
        model = (run.get("outputs") or {}).get("model")
        if run.get("stage") != "train" or not model:
            raise InputError("eval_candidate_invalid", f"run {candidate} is not a training run "
                             "that produced a model (a succeeded `brewslm train`).",
                             candidate=candidate)
        return model
    return latest_model(project, candidate)


def _gold_param(gold: str | None) -> dict[str, str] | None:
    """The gold file and its sha256 (part of the run's parameters: another file, another run)."""
    if gold is None:
        return None
    from brewslm.evaluate.gold import file_sha256

    path = Path(gold).expanduser().resolve()
    if not path.is_file():
        raise InputError("eval_gold_invalid", f"gold set {gold!r} is not a file", file=gold)
    return {"path": str(path), "sha256": file_sha256(path)}


def _manifest_of(project: ProjectInfo, model_id: str) -> str:
    art = artifacts.get(project, model_id)
    doc = json.loads((art.path / "run_manifest.json").read_text(encoding="utf-8"))
    return doc["manifest_id"]


class EvaluateStage:
    name, number, version = "evaluate", 9, "1"
    inputs = ("manifest", "model")
    outputs = ("eval_report",)

    def validate(self, ctx: StageContext) -> None:
        from brewslm.basemodels.reference import resolve_base_model
        from brewslm.evaluate.metrics import build_metrics

        model = ctx.inputs["model"]
        if model.kind != "model" or model.meta.get("simulated"):
            raise InputError("eval_candidate_simulated" if model.meta.get("simulated")
                             else "eval_candidate_invalid",
                             f"artifact {model.id[:16]} is a {model.kind}: only a model that was "
                             "really trained can be evaluated (the simulate backend trains "
                             "nothing).", model_id=model.id)
        pack = ctx.params["pack"]
        ctx.scratch["metrics"] = build_metrics(pack["metrics"], pack.get("metric_plugins") or [])
        doc = json.loads((model.path / "run_manifest.json").read_text(encoding="utf-8"))
        ctx.scratch["run_manifest"] = doc
        ctx.scratch["base"] = resolve_base_model(doc["base_model"]["ref"] or "builtin:tiny")
        pinned, gold = pack.get("gold_sha256"), ctx.params.get("gold")
        if pinned and (gold is None or gold["sha256"] != pinned):
            given = gold["sha256"] if gold else None
            what = f"--gold is {given[:12]}…" if given else "no --gold was given"
            raise InputError("eval_gold_changed", f"the pack pins the gold set {pinned[:12]}…, "
                             f"but {what}: a locked gold set must not change between "
                             "evaluations.", pinned=pinned, given=given)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        pack = ctx.params["pack"]
        rows = self._rows(ctx, pack)
        gold = self._gold(ctx)
        sets = {"eval": (rows, [{"row_id": r["row_id"], "slice": r.get("slice")} for r in rows])}
        if gold is not None:
            sets["gold"] = (gold.rows, [{"row_id": r["row_id"], "slice": None}
                                        for r in gold.rows])
        losses = {name: {} for name in sets}
        for side in SIDES:
            for name, loss in self._run_side(ctx, side, sets, pack).items():
                losses[name][side] = loss
        examples = sets["eval"][1]
        aggregates = self._aggregates(ctx, examples, losses["eval"])
        slices = self._slices(ctx, examples)
        higher = {m.name: m.higher_is_better for m in ctx.scratch["metrics"]} | LOSS_METRICS
        gold_aggregates = (self._aggregates(ctx, sets["gold"][1], losses["gold"]) if gold
                           else {side: {} for side in SIDES})
        decision = self._decide(pack, aggregates, gold_aggregates, slices, higher)
        result = self._result(ctx, pack, rows, aggregates, slices, higher, decision, examples)
        if gold is not None:
            result["gold"] = {"path": gold.path, "sha256": gold.sha256, "rows": len(gold.rows),
                              "rows_in_train": len(gold.leaked),
                              "metrics": gold_aggregates,
                              "comparison": _comparison(gold_aggregates, higher)}
            examples_gold = sets["gold"][1]
        else:
            examples_gold = []
        self._ledger(ctx, examples)
        self._publish(ctx, result, examples, examples_gold)
        self._emit_decision(ctx, decision)
        if not decision["promotable"]:
            ctx.refuse_after_outputs(BlockedError(
                "eval_not_promotable", "Not promotable: required gate(s) failed: "
                + "; ".join(f"{g['id']} ({g['evidence']})" for g in decision["gates"]
                            if g["required"] and not g["passed"]),
                required_failed=decision["required_failed"]))
        return result

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        # Every eval row is in the ledger (the runner checks in = out); every gate has a verdict.
        if len(result["gates"]) != len(ctx.params["pack"].get("gates") or []):
            raise BrewError("contract_violated", "a gate of the pack has no verdict")

    # --- rows ------------------------------------------------------------------------------

    def _rows(self, ctx: StageContext, pack: dict[str, Any]) -> list[dict[str, Any]]:
        from brewslm.train.data import load_split, prompt_and_answer

        rows = load_split(ctx.inputs["manifest"].path, "eval").rows
        if not rows:
            raise InputError("eval_split_empty", "the manifest's eval split is empty: prepare "
                             "with --eval-fraction > 0")
        if pack.get("limit"):
            rows = rows[:pack["limit"]]
        slice_by = pack.get("slice_by")
        if slice_by:
            tokenizer = _tokenizer(ctx.scratch["base"].path)
            meta = _dataset_meta(ctx) if slice_by.startswith("meta.") else {}
            for row in rows:
                _, answer = prompt_and_answer(row)
                reference = tokenizer.decode(answer, skip_special_tokens=True)
                row["slice"] = slice_of(slice_by, reference, meta.get(row["row_id"], {}))
        return rows

    # --- one model -------------------------------------------------------------------------

    def _gold(self, ctx: StageContext) -> Any:
        gold = ctx.params.get("gold")
        if gold is None:
            return None
        from brewslm.evaluate.gold import load_gold
        from brewslm.train.data import load_split, prompt_and_answer

        manifest = json.loads((ctx.inputs["manifest"].path / "manifest.json").read_text())
        train = load_split(ctx.inputs["manifest"].path, "train").rows
        found = load_gold(gold["path"], _tokenizer(ctx.scratch["base"].path),
                          chat_template=(manifest.get("policies") or {}).get("chat_template"),
                          train_prompts={tuple(prompt_and_answer(r)[0]) for r in train})
        if found.sha256 != gold["sha256"]:
            raise InputError("eval_gold_changed", f"{gold['path']} changed while the run "
                             "started", file=gold["path"])
        if found.leaked:
            ctx.emit("eval_gold_in_train", f"{len(found.leaked)} of {len(found.rows)} gold rows "
                     "have a prompt that is also in the train split: they measure memory, not "
                     "generalisation", severity="warning", rows=found.leaked[:20])
        return found

    def _run_side(self, ctx: StageContext, side: str, sets: dict[str, Any],
                  pack: dict[str, Any]) -> dict[str, dict[str, float]]:
        from brewslm.evaluate.generate import load_model

        model, tokenizer = self._load(ctx, side, load_model)
        losses = {name: self._answer(ctx, side, model, tokenizer, rows, examples, pack)
                  for name, (rows, examples) in sets.items()}
        del model
        gc.collect()
        return losses

    def _answer(self, ctx: StageContext, side: str, model: Any, tokenizer: Any,
                rows: list[dict[str, Any]], examples: list[dict[str, Any]],
                pack: dict[str, Any]) -> dict[str, float]:
        from brewslm.evaluate.generate import eval_loss, generate
        from brewslm.evaluate.metrics import Example

        gen = pack.get("generation") or {}
        answers = generate(model, tokenizer, rows, max_new_tokens=gen.get("max_new_tokens", 64),
                           batch_size=gen.get("batch_size", 16), greedy=gen.get("greedy", True),
                           temperature=gen.get("temperature", 1.0),
                           top_p=gen.get("top_p", 1.0), seed=gen.get("seed", 0),
                           progress=lambda done, total: ctx.progress(done, total, model=side))
        loss = {}
        if pack.get("loss"):
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
                tokenizer.eos_token_id
            loss = eval_loss(model, rows, pad_id=pad, batch_size=gen.get("batch_size", 16))
        for ex, answer in zip(examples, answers, strict=True):
            example = Example(row_id=ex["row_id"], prompt=answer["prompt"],
                              prediction=answer["prediction"], reference=answer["reference"],
                              latency_s=answer["latency_s"], slice=ex.get("slice"))
            ex["prompt"], ex["reference"] = answer["prompt"], answer["reference"]
            ex[side] = {"prediction": answer["prediction"], "latency_s": answer["latency_s"],
                        "example": example,
                        "scores": {m.name: m.score(example) for m in ctx.scratch["metrics"]}}
        return loss

    def _decide(self, pack: dict[str, Any], aggregates: dict[str, Any],
                gold_aggregates: dict[str, Any], slices: dict[str, Any],
                higher: dict[str, bool]) -> dict[str, Any]:
        """Gates on the eval split, and `split: gold` gates on the gold set, in pack order."""
        verdicts = []
        for gate in pack.get("gates") or []:
            on_gold = gate.get("split") == "gold"
            source = gold_aggregates if on_gold else aggregates
            verdict = gates_mod.judge(gate, source["base"], source["candidate"],
                                      {} if on_gold else slices, higher[gate["metric"]])
            verdicts.append({**verdict, "split": "gold" if on_gold else "eval"})
        required = [v for v in verdicts if v["required"]]
        return {"promotable": all(v["passed"] for v in required), "gates": verdicts,
                "required_failed": [v["id"] for v in required if not v["passed"]]}

    def _load(self, ctx: StageContext, side: str, load_model: Any) -> tuple[Any, Any]:
        base = ctx.scratch["base"].path
        if side == "base":
            return load_model(base)
        folder = ctx.inputs["model"].path
        if (folder / "adapter_config.json").exists():
            return load_model(base, adapter=folder)
        return load_model(folder)

    # --- aggregates ----------------------------------------------------------------------

    def _aggregates(self, ctx: StageContext, examples: list[dict[str, Any]],
                    losses: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for side in SIDES:
            exs = [ex[side]["example"] for ex in examples]
            out[side] = {m.name: _round(m.aggregate(exs, [ex[side]["scores"][m.name]
                                                          for ex in examples]))
                         for m in ctx.scratch["metrics"]}
            out[side].update(losses[side])
        return out

    def _slices(self, ctx: StageContext, examples: list[dict[str, Any]]) -> dict[str, Any]:
        names = sorted({ex["slice"] for ex in examples if ex.get("slice") is not None})
        out: dict[str, dict[str, dict[str, Any]]] = {side: {} for side in SIDES}
        for name in names:
            members = [ex for ex in examples if ex.get("slice") == name]
            for side in SIDES:
                exs = [ex[side]["example"] for ex in members]
                out[side][name] = {m.name: _round(m.aggregate(
                    exs, [ex[side]["scores"][m.name] for ex in members]))
                    for m in ctx.scratch["metrics"]}
                out[side][name]["rows"] = len(members)
        return out

    # --- result, ledger, report ------------------------------------------------------------

    def _result(self, ctx: StageContext, pack: dict[str, Any], rows: list[dict[str, Any]],
                aggregates: dict[str, Any], slices: dict[str, Any], higher: dict[str, bool],
                decision: dict[str, Any], examples: list[dict[str, Any]]) -> dict[str, Any]:
        primary = metric_name(pack["metrics"][0])
        comparison = _comparison(aggregates, higher)
        doc = ctx.scratch["run_manifest"]
        return {"promotable": decision["promotable"], "gates": decision["gates"],
                "required_failed": decision["required_failed"],
                "metrics": {"base": aggregates["base"], "candidate": aggregates["candidate"]},
                "comparison": comparison, "slices": slices, "primary_metric": primary,
                "failure_clusters": report.clusters(_flat(examples), primary),
                "rows": len(rows), "pack": {"name": pack["name"], "version": pack["version"],
                                            "hash": pack_hash(pack)},
                "candidate_id": ctx.inputs["model"].id, "candidate_run": doc["run_id"],
                "base_model": doc["base_model"]["ref"],
                "manifest_hash": ctx.inputs["manifest"].meta.get("manifest_hash")}

    def _ledger(self, ctx: StageContext, examples: list[dict[str, Any]]) -> None:
        ctx.ledger.count_in(len(examples))
        for ex in examples:
            ctx.ledger.kept(ex["row_id"], reason_code="eval_scored", split="eval", detail={
                "reference": ex["reference"], "slice": ex.get("slice"),
                **{side: {"prediction": ex[side]["prediction"], "scores": ex[side]["scores"]}
                   for side in SIDES}})

    def _publish(self, ctx: StageContext, result: dict[str, Any], examples: list[dict[str, Any]],
                 examples_gold: list[dict[str, Any]]) -> None:
        flat = _flat(examples)
        flat_gold = [{**ex, "split": "gold"} for ex in _flat(examples_gold)]
        builder = ctx.new_artifact("eval_report")
        (builder.dir / "report.json").write_text(json.dumps(result, indent=2, sort_keys=True),
                                                 encoding="utf-8")
        (builder.dir / "examples.jsonl").write_text(
            "".join(json.dumps(ex, sort_keys=True) + "\n" for ex in flat + flat_gold),
            encoding="utf-8")
        report.write_html({**result, "run_id": ctx.run_id}, flat, builder.dir / "report.html")
        art = ctx.publish("eval_report", builder, {"promotable": result["promotable"],
                                                   "candidate_id": result["candidate_id"],
                                                   "pack": result["pack"]["name"]})
        result["report_id"] = art.id
        result["report_html"] = str(art.path / "report.html")

    def _emit_decision(self, ctx: StageContext, decision: dict[str, Any]) -> None:
        for gate in decision["gates"]:
            ctx.emit("eval_gate_passed" if gate["passed"] else "eval_gate_failed",
                     f"gate {gate['id']} {'passed' if gate['passed'] else 'FAILED'}: "
                     f"{gate['evidence']}",
                     severity="info" if gate["passed"] or not gate["required"] else "error",
                     gate=gate["id"], metric=gate["metric"], required=gate["required"],
                     value=gate["value"], base_value=gate["base_value"])
        if decision["promotable"]:
            ctx.emit("eval_promotable", "promotable: every required gate passed")


# --- helpers ---------------------------------------------------------------------------------

def _comparison(aggregates: dict[str, Any], higher: dict[str, bool]) -> dict[str, Any]:
    out = {}
    for name in aggregates["candidate"]:
        base, cand = aggregates["base"].get(name), aggregates["candidate"].get(name)
        gain = gates_mod.improvement(cand, base, higher.get(name, True))
        out[name] = {"base": base, "candidate": cand,
                     "delta": _round(cand - base) if None not in (cand, base) else None,
                     "higher_is_better": higher.get(name, True),
                     "improved": None if gain is None or gain == 0 else gain > 0}
    return out


def slice_of(slice_by: str, reference: str, meta: dict[str, Any]) -> str | None:
    """The row's slice: a meta field, or a key of the reference's JSON answer."""
    kind, key = slice_by.split(".", 1)
    if kind == "meta":
        value = meta.get(key)
    else:
        try:
            parsed = json.loads(reference)
        except ValueError:
            return None
        value = parsed.get(key) if isinstance(parsed, dict) else None
    return None if value is None else str(value)


def _dataset_meta(ctx: StageContext) -> dict[str, dict[str, Any]]:
    from brewslm.stages.mapping import read_dataset

    manifest = json.loads((ctx.inputs["manifest"].path / "manifest.json").read_text())
    dataset = artifacts.get(ctx.project, manifest["dataset_id"])
    return {rid: row.get("meta") or {} for rid, row in read_dataset(dataset.path, None)}


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _flat(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Examples without the Example objects: what the report and the JSON hold."""
    return [{"row_id": ex["row_id"], "slice": ex.get("slice"), "prompt": ex["prompt"],
             "reference": ex["reference"],
             **{side: {k: v for k, v in ex[side].items() if k != "example"} for side in SIDES}}
            for ex in examples]


def _round(x: Any) -> Any:
    return round(x, 6) if isinstance(x, float) else x
