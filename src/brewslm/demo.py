"""`brewslm demo` (and `make demo`): a readable run-through of the whole lifecycle.

On a fresh `demo` project with builtin:tiny and a bundled sample (by default
samples/support_tickets.jsonl: 2,468 support tickets -> {"category", "priority"} with planted
defects; `--sample small` is the 400-line tickets.jsonl): build and describe the base model,
ingest (malformed lines kept in the ledger), introspect (a proposal with its confidence), map
--dry-run (preview and rejections, nothing written), map (a dataset version), clean (duplicates
naming the row they matched, a health report), prepare (loss-masked tokens, a leak-free split,
the manifest and a token-length histogram), re-ingest (reused: same content), preflight (GO with
the memory estimate; and the same job planned for a 900 MB machine: BLOCK with a plan that
fits), train (LoRA on the pretrained builtin:tiny: the loss curve, eval loss falling,
preflight's estimate against the measured peak), evaluate (base vs candidate, gates, the HTML
report), export (GGUF q8_0 and safetensors, each proven by its parity gate), deploy (smoke test
through the endpoint, promoted), the ledger's accounting, a rejected row's story, one chat
request to the served model with the openai client, the timeline, and where to look next.

The first run pretrains builtin:tiny (~3 min on 2 cores, cached). On the support sample the
shipped lora recipe trains for 300 steps (SAMPLES: ~1 min; exact match ~0.05 -> ~0.99, see
benchmarks/README.md for the seeds measured); `--set max_steps=10` shortens it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from rich.rule import Rule

from brewslm import artifacts, console, progress, project, rows
from brewslm.errors import BrewError, InputError, NotFoundError
from brewslm.events import query, timeline
from brewslm.stages import data
from brewslm.stages.runner import StageResult

DEMO_PROJECT = "demo"
# name -> (file in brewslm.samples, the demo's training overrides for it). 300 steps on the
# support sample: 2,161 train rows, ~2.2 epochs at micro-batch 16, measured by
# benchmarks/demo_stages.py over several seeds; the small sample keeps the recipe's 10 epochs.
SAMPLES = {"support": ("support_tickets.jsonl", ["max_steps=300"]),
           "small": ("tickets.jsonl", [])}


def sample_path(sample: str = "small") -> Path:
    return Path(str(resources.files("brewslm.samples") / SAMPLES[sample][0]))


def run_demo(*, quiet: bool = False, train_overrides: list[str] | None = None,
             sample: str = "support") -> dict[str, Any]:
    if sample not in SAMPLES:
        raise InputError("demo_sample_unknown", f"no sample {sample!r}: one of "
                         f"{', '.join(SAMPLES)}", sample=sample)
    say = (lambda *_: None) if quiet else console.err.print
    info = _fresh_project(say)
    overrides = SAMPLES[sample][1] + list(train_overrides or [])  # later keys win

    say(Rule("base model"))
    model = project.resolve_base_model(info)
    say(f"{model['ref']}: {model['architecture']}, {model['parameters']:,} parameters, "
        f"chat template: {model['chat_template']}\n  {model['path']}")

    with progress.rich_bars(enabled=not quiet):
        results = _data_stages(info, say, sample_path(sample))
        results.update(_model_stages(info, say, overrides))

    say(Rule("row ledger: in = out + dropped, per stage"))
    stats = rows.stats(info)
    for s in stats["stages"]:
        say(f"{s['stage']:<8} in {s['in']} = out {s['out']} + dropped {s['dropped']}  "
            f"{s['by_reason'] or ''}  {'FLAGGED' if s['flagged'] else 'ok'}")
    example = results["map_dry_run"].result["examples"]["missing_field"]
    trace = rows.trace(info, example["row_id"])
    say(f"row {example['row_id']}: " + " -> ".join(
        f"{s['stage']} {s['outcome']}{' ' + s['reason_code'] if s.get('reason_code') else ''}"
        f" ({s.get('source', '')}:{s.get('position', '')})" for s in trace["steps"]))

    chat = None
    if "deploy" in results:
        say(Rule("the served model answers (openai client -> /v1/chat/completions)"))
        question = _sample_question(info)
        chat = ask_endpoint(info, question)
        say(f"  Q: {question}\n  A: {chat['answer']}")

    say(Rule("timeline"))
    tl = timeline.build(info, query.EventFilter())
    if not quiet:
        console.err.print(timeline.render(tl))
    say(Rule("summary"))
    say(summary_table(results))
    say(Rule("where to look next"))
    for line in NEXT_STEPS:
        say(f"  {line}")
    return {"project": info.name, "sample": sample, "train_overrides": overrides,
            "base_model": model,
            "runs": {k: r.to_dict() for k, r in results.items()},
            "dataset": data.dataset_rows(info, limit=3), "ledger": stats, "trace": trace,
            "chat": chat, "events": tl["count"]}


NEXT_STEPS = (
    "brewslm server                         # the web UI at http://127.0.0.1:8321/ (the API at "
    "/docs, the model at /serve/demo/v1)",
    "brewslm serve -p demo                  # the promoted version at http://127.0.0.1:8000/v1",
    "brewslm audit -p demo lineage PATH     # any exported file back to the source lines",
    "brewslm bundle -p demo -o support.zip  # a redacted support bundle",
    "brewslm deploy telemetry -p demo       # requests, latency p50/p95/p99, tokens/s")


def _sample_question(info: project.ProjectInfo) -> str:
    """The first eval-split ticket, as a user would send it (the model never trained on it)."""
    from brewslm.stages.outputs import latest_output
    from brewslm.train.data import load_split

    manifest = latest_output(info, "prepare", "manifest")
    first_eval = load_split(artifacts.get(info, manifest).path, "eval").rows[0]["row_id"]
    row = next(r for r in data.dataset_rows(info, limit=None)["rows"]
               if r["row_id"] == first_eval)
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def summary_table(results: dict[str, StageResult]) -> Any:
    """Each stage run: status, rows in / out / rejected, seconds, and its headline."""
    rows_ = []
    for name, result in results.items():
        out = result.to_dict()
        counts = out.get("counts") or {}
        rows_.append((name, result.status, counts.get("in", ""), counts.get("out", ""),
                      counts.get("rejected", ""), f"{out.get('duration_s') or 0:.1f}",
                      _headline(out)))
    return console.table("the demo's stage runs", ["stage", "status", "in", "out",
                                                   "rejected", "s", "result"], rows_)


def _headline(out: dict[str, Any]) -> str:
    """The one thing to know about a stage run, by what its result holds."""
    if "comparison" in out:
        em = out["comparison"].get("exact_match") or {}
        return (f"exact match {em.get('base', 0):.2f} -> {em.get('candidate', 0):.2f}; "
                f"{'promotable' if out.get('promotable') else 'NOT promotable'}")
    if out.get("proposal"):
        return f"{out['proposal']['mapper']} ({out['proposal']['confidence']:.2f})"
    if out.get("parity"):
        return (f"{out.get('format')} {out.get('quant') or ''} parity "
                f"{'passed' if out['parity'].get('passed') else 'FAILED'}")
    if out.get("deployment_status"):
        return f"version {out.get('version')} {out['deployment_status']}"
    if out.get("splits"):
        return f"train {out['splits']['train']}, eval {out['splits']['eval']}"
    if out.get("final_loss") is not None:
        return f"{out.get('steps')} steps, loss {out['final_loss']:.4f}"
    if out.get("verdict"):
        return out["verdict"]
    reasons = out.get("rejections_by_reason") or {}
    return ", ".join(f"{code} {n}" for code, n in sorted(reasons.items(), key=lambda kv: -kv[1])
                     )[:40]


def _data_stages(info: project.ProjectInfo, say, sample: Path) -> dict[str, StageResult]:
    source = str(sample)
    results: dict[str, StageResult] = {}
    say(Rule("01 ingest"))
    results["ingest"] = _check(data.ingest(info, source), say)
    say(Rule("02 introspect"))
    results["introspect"] = _check(data.introspect(info), say)
    prop = results["introspect"].result["proposal"]
    say(f"proposal: {prop['mapper']} {json.dumps(prop['field_map'])} "
        f"(confidence {prop['confidence']:.2f})")
    say(Rule("03 map --dry-run"))
    results["map_dry_run"] = _check(data.map_rows(info, dry_run=True), say)
    for code, ex in results["map_dry_run"].result["examples"].items():
        say(f"  {code}: {ex['source']}:{ex['position']} — {ex['detail']}")
    say(Rule("04 map"))
    results["map"] = _check(data.map_rows(info), say)
    for row in data.dataset_rows(info, limit=2)["rows"]:
        say(f"  {row['row_id']}: {json.dumps(row['messages'][-1], ensure_ascii=False)}")
    say(Rule("05 clean"))
    results["clean"] = _check(data.clean(info), say)
    health = results["clean"].result["health"]
    say(f"  data health: {health['verdict']}  " + ", ".join(
        f"{k} {v['value']:.1%}" for k, v in health["signals"].items()))
    say(Rule("06 prepare"))
    results["prepare"] = _check(data.prepare(info), say)
    prep = results["prepare"].result
    say(f"  manifest {prep['manifest_hash'][:16]}: train {prep['splits']['train']}, "
        f"eval {prep['splits']['eval']}; histogram {prep['histogram_files'][1]}")
    say(prep["histogram"])
    say(Rule("01 ingest again (same content)"))
    results["ingest_again"] = _check(data.ingest(info, source), say)
    return results


def _model_stages(info: project.ProjectInfo, say, overrides: list[str]) -> dict[str, StageResult]:
    from brewslm.stages.preflight import preflight
    from brewslm.stages.train import train

    results: dict[str, StageResult] = {}
    say(Rule("07 preflight"))
    results["preflight"] = _check(preflight(info, overrides=overrides), say)
    found = results["preflight"].result
    say(f"  verdict {found['verdict']}: estimated peak "
        f"{console.human_bytes(found['memory']['estimated_peak_bytes'])} of "
        f"{console.human_bytes(found['memory']['free_bytes'])} free; "
        + ", ".join(f"{c['name']} {c['status']}" for c in found["checks"]))
    small = preflight(info, overrides=overrides, memory_limit_bytes=900 * 10**6)
    results["preflight_small_machine"] = small
    plan = small.result.get("plan") or {}
    say(f"  the same job on a 900 MB machine: {small.result['verdict']} (exit "
        f"{small.exit_code}); plan: {'; '.join(plan.get('changes', [])) or 'none fits'}")
    say(Rule("08 train"))
    results["train"] = _check(train(info, overrides=overrides), say)
    out = results["train"].result
    say(out["plot"])
    memory = out.get("memory") or {}
    say(f"  {out['steps']} steps, {out['tokens_per_second']} tokens/s; eval loss "
        f"{out.get('first_eval_loss')} -> {out.get('last_eval_loss')}; memory estimated "
        f"{console.human_bytes(memory.get('estimated_peak_bytes'))}, measured "
        f"{console.human_bytes(memory.get('measured_peak_bytes'))}\n  charts: "
        f"{out['plot_files'][0]}")
    say(Rule("09 evaluate"))
    results["evaluate"] = _evaluate(info, say)
    if results["evaluate"].result.get("promotable"):
        results.update(_ship(info, say))
    else:
        say("  not promotable: export and deploy refuse this candidate (train longer)")
    return results


def _ship(info: project.ProjectInfo, say) -> dict[str, StageResult]:
    """10 export (GGUF and safetensors, each with its parity), 11 deploy (the safetensors
    export, smoke-tested through the endpoint and promoted)."""
    from brewslm.stages.deploy import deploy
    from brewslm.stages.export import export

    results: dict[str, StageResult] = {}
    for fmt, quant in (("gguf", "q8_0"), ("safetensors", None)):
        say(Rule(f"10 export --format {fmt}"))
        results[f"export_{fmt}"] = _check(export(info, fmt=fmt, quant=quant), say)
        out = results[f"export_{fmt}"].result
        for reader in out["parity"]["readers"]:
            say(f"  parity ({reader['reader']}): max |logit diff| "
                f"{reader['max_abs_diff']:.2g} <= {reader['tolerance']}, argmax agreement "
                f"{reader['argmax_agreement']:.0%}, tokens and chat template identical")
        say(f"  {out['artifacts'][0]['path']}")
    say(Rule("11 deploy"))
    results["deploy"] = _check(deploy(info, export_id=results["export_safetensors"].result[
        "export_id"]), say)
    dep = results["deploy"].result
    slowest = max(a["latency_s"] for a in dep["smoke"]["prompts"])
    say(f"  version {dep['version']} {dep['deployment_status']}: smoke test of "
        f"{len(dep['smoke']['prompts'])} prompts through /v1/chat/completions, slowest "
        f"{slowest:.2f}s")
    return results


def ask_endpoint(info: project.ProjectInfo, question: str) -> dict[str, Any]:
    """One chat request to the promoted version with the official openai client, through a
    real endpoint on a free loopback port (as `brewslm serve` runs it)."""
    from openai import OpenAI

    from brewslm.serving.server import background_server, create_project_app

    with background_server(create_project_app(info)) as base_url:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="not-needed-on-loopback")
        reply = client.chat.completions.create(
            model=info.name, messages=[{"role": "user", "content": question}],
            max_tokens=48, temperature=0)
    return {"endpoint": f"{base_url}/v1", "question": question,
            "answer": reply.choices[0].message.content, "model": reply.model,
            "usage": reply.usage.model_dump() if reply.usage else None}


def _evaluate(info: project.ProjectInfo, say) -> StageResult:
    """The default pack, sliced by the answer's category; a refusal is shown, not raised."""
    from brewslm.stages.evaluate import evaluate

    result = evaluate(info, overrides=["slice_by=json.category"])
    say(f"{result.stage} {result.run_id}: {result.status}")
    if "comparison" not in result.result:
        raise BrewError(result.error["code"], f"demo stopped: {result.error['message']}")
    out = result.result
    for name in ("exact_match", "json_match", "json_valid", "eval_loss"):
        m = out["comparison"].get(name)
        if m:
            say(f"  {name:<12} base {m['base']:.4f}  candidate {m['candidate']:.4f}")
    say("  gates: " + ", ".join(f"{g['id']} {'pass' if g['passed'] else 'FAIL'}"
                                for g in out["gates"]))
    say(f"  {'PROMOTABLE' if out['promotable'] else 'NOT PROMOTABLE'}; report "
        f"{out['report_html']}")
    return result


def _check(result: StageResult, say) -> StageResult:
    out = result.to_dict()
    counts = out.get("counts")
    say(f"{result.stage} {result.run_id}: {result.status}" + (f"  {counts}" if counts else ""))
    for label, key in (("rejected", "rejections_by_reason"), ("noted", "notes_by_reason")):
        if out.get(key):
            say(f"  {label}: " + ", ".join(f"{code} {n}" for code, n in out[key].items()))
    if result.status not in ("succeeded", "reused"):
        raise BrewError(result.error["code"], f"demo stopped: {result.error['message']}")
    return result


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
