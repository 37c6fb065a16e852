"""lm-eval cross-check (issue 6): our `exact_match` against lm-evaluation-harness's, on the same
predictions of the same model.

    .venv/bin/pip install -e ".[eval-peer]"          # lm-eval 0.4.13
    .venv/bin/python benchmarks/lm_eval_crosscheck.py               # one JSON object on stdout
    .venv/bin/python benchmarks/lm_eval_crosscheck.py --steps 60    # a longer pretraining

What it does, fully offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE):

1. pretrains builtin:tiny (a ~1M-parameter Llama) for --steps steps in a temporary models dir
   (its outputs are poor; agreement on the same predictions is what is measured);
2. loads it once as lm-eval's `hf` model (`pretrained=PATH,dtype=float32`, CPU, batch size 1)
   and asks lm-eval's own `generate_until` for the greedy completion of each prompt;
3. builds references from those completions, one kind of difference per CATEGORY (identical,
   case, surrounding quotes, a tab inside, full-width letters, ...), so that the expected
   outcome of every sample is known in advance and exact match is neither 0 nor 1;
4. writes a custom local task per lm-eval metric setting (`dataset_path: json`, local
   `data_files`, `generate_until`, greedy, `until: ["\\n"]`, `metric_list: exact_match`) and runs
   them through `lm_eval.simple_evaluate` with `log_samples=True`:
     raw      no options: plain string equality;
     closest  ignore_case + regexes_to_ignore: as close to our normalization as lm-eval allows;
     stock    ignore_case + ignore_punctuation: lm-eval's usual setting;
5. scores lm-eval's logged predictions and targets with our metric (build_metrics) and reports,
   per setting, how many samples agree, both aggregates and every disagreement with its reason.

The test tests/evaluate/test_lm_eval_crosscheck.py loads this file and calls run_crosscheck().
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DEFAULT_STEPS = 40      # 10 steps (the test suite's default) only generate newlines, 30 quotes
MAX_GEN_TOKS = 16
UNTIL = ["\n"]
PER_CATEGORY = 3

# Prompts in the shape of the pretraining corpus (corpus.txt), so that the model continues them.
PROMPTS = [
    "Q: Which keys does a label have?\nA:",
    "Input: The app crashes when I log in.\nOutput:",
    "Customer: Rosa\nEmail:",
    "Order:",
    "Rosa explained a",
    "Q: When is a ticket high priority?\nA:",
    "Input: Please add a dark mode to the dashboard.\nOutput:",
    "Note:",
    "Customer: Ivan\nNote:",
    "Q: What does the support team do?\nA:",
    "Input: I was charged twice for my order.\nOutput:",
    "Ben painted a",
]

# lm-eval's exact_match options per setting. lm-eval applies each of `regexes_to_ignore` with
# re.sub(r, "", s) to both strings, then lowercases (then, with ignore_punctuation, deletes every
# ASCII string.punctuation character anywhere). `closest` mirrors brewslm's normalize_text
# (metrics.py): strip whitespace and the same leading / trailing punctuation sets, then delete
# every whitespace character that follows another, which shortens a run to its first character
# (ours turns any run into one space: the same for a run of spaces, not for a tab or a newline
# between words). NFKC cannot be expressed. The sets are written out here, not imported, so
# that a change on either side shows up as a disagreement.
OUR_LEADING = "\"'`*([{)]}\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2039\u203a" \
              "\u00bf\u00a1\u300c\u300d\u300e\u300f\u3010\u3011"
OUR_TRAILING = OUR_LEADING.replace("\u00bf\u00a1", "") + ".,;:!?\u3002\u3001"
CLOSEST_REGEXES = [
    rf"^[\s{re.escape(OUR_LEADING)}]+",
    rf"[\s{re.escape(OUR_TRAILING)}]+$",
    r"(?<=\s)\s+",
]
SETTINGS: dict[str, dict[str, Any]] = {
    "raw": {},
    "closest": {"ignore_case": True, "regexes_to_ignore": CLOSEST_REGEXES},
    "stock": {"ignore_case": True, "ignore_punctuation": True},
}


# --- the reference for each sample: one kind of difference per category ----------------------

_ASCII_LETTER = re.compile(r"[A-Za-z]")
_INNER_SPACE = re.compile(r"(?<=\S) (?=\S)")
_TWO_LETTERS = re.compile(r"[A-Za-z](?=[A-Za-z])")


def _has_letters(p: str) -> bool:
    return p.isascii() and bool(_ASCII_LETTER.search(p))


def _has_inner_space(p: str) -> bool:
    return p.isascii() and bool(_INNER_SPACE.search(p.strip()))


def _fullwidth(p: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in p)


def _insert_apostrophe(p: str) -> str:
    m = _TWO_LETTERS.search(p)
    assert m is not None
    return p[: m.end()] + "'" + p[m.end():]


@dataclass(frozen=True)
class Category:
    name: str
    fits: Callable[[str], bool]           # which predictions it can be built from
    reference: Callable[[str], str]       # the reference, from the prediction
    ours: float                           # our exact_match, by construction
    lm_eval: dict[str, float]             # lm-eval's, per setting, by construction
    why: str                              # what differs, for a disagreement


def _leading_minus(p: str) -> str:
    body = p.lstrip()
    return p[: len(p) - len(body)] + "-" + body


CATEGORIES = [
    Category("identical", lambda p: True, lambda p: p, 1.0,
             {"raw": 1.0, "closest": 1.0, "stock": 1.0}, "-"),
    Category("case", _has_letters, str.swapcase, 1.0,
             {"raw": 0.0, "closest": 1.0, "stock": 1.0}, "letter case only"),
    Category("trailing_punct", lambda p: True, lambda p: f"{p}?!", 1.0,
             {"raw": 0.0, "closest": 1.0, "stock": 1.0}, "trailing '?!' only"),
    Category("surrounding_quotes_ws", lambda p: True, lambda p: f'  "{p.strip()}".  ', 1.0,
             {"raw": 0.0, "closest": 1.0, "stock": 0.0},
             "surrounding whitespace and quotes: ignore_punctuation deletes the quotes but "
             "lm-eval never strips whitespace"),
    Category("unicode_quotes", lambda p: True, lambda p: f"\u201c{p.strip()}\u201d", 1.0,
             {"raw": 0.0, "closest": 1.0, "stock": 0.0},
             "surrounding Unicode quotes: not in string.punctuation (ASCII only), and the "
             "prediction's surrounding whitespace is not stripped"),
    Category("inner_space_run", _has_inner_space,
             lambda p: _INNER_SPACE.sub("   ", p, count=1), 1.0,
             {"raw": 0.0, "closest": 1.0, "stock": 0.0},
             "three spaces between two words: we collapse whitespace, lm-eval's options do not"),
    Category("inner_tab", _has_inner_space, lambda p: _INNER_SPACE.sub("\t", p, count=1), 1.0,
             {"raw": 0.0, "closest": 0.0, "stock": 0.0},
             "a tab instead of a space between two words: we turn any whitespace run into one "
             "space; a regex deletion can shorten a run but not turn a tab into a space"),
    Category("fullwidth", _has_letters, _fullwidth, 1.0,
             {"raw": 0.0, "closest": 0.0, "stock": 0.0},
             "full-width letters: we apply NFKC, lm-eval has no Unicode normalization"),
    Category("inner_apostrophe", _has_letters, _insert_apostrophe, 0.0,
             {"raw": 0.0, "closest": 0.0, "stock": 1.0},
             "an apostrophe inside a word: ignore_punctuation deletes punctuation anywhere, we "
             "keep it inside the text (\"don't\" != \"dont\")"),
    Category("leading_minus", lambda p: True, _leading_minus, 0.0,
             {"raw": 0.0, "closest": 0.0, "stock": 1.0},
             "a leading '-': ignore_punctuation deletes it, we keep it (\"-5\" != \"5\")"),
    Category("different", lambda p: True, lambda p: f"{p.strip()} again", 0.0,
             {"raw": 0.0, "closest": 0.0, "stock": 0.0}, "-"),
]


def build_rows(preds: list[str], per_category: int = PER_CATEGORY) -> list[dict[str, Any]]:
    """One row per (category, k): a prompt whose prediction fits the category and the reference
    built from that prediction. Prompts are taken in turn, so each category spreads over them."""
    rows: list[dict[str, Any]] = []
    cursor = 0
    for cat in CATEGORIES:
        for _ in range(per_category):
            for step in range(len(PROMPTS)):
                i = (cursor + step) % len(PROMPTS)
                if cat.fits(preds[i]):
                    break
            else:
                raise RuntimeError(f"no prediction of the model fits category {cat.name!r}: "
                                   f"{preds!r}; pretrain longer (--steps)")
            cursor = i + 1
            rows.append({"id": f"{cat.name}-{len(rows)}", "category": cat.name,
                         "prompt": PROMPTS[i], "reference": cat.reference(preds[i]),
                         "expected_prediction": preds[i]})
    return rows


# --- lm-eval ---------------------------------------------------------------------------------

def _task_yaml(name: str, data_file: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "prompt",          # column names: taken verbatim, no Jinja rendering
        "doc_to_target": "reference",
        "generation_kwargs": _gen_kwargs(),
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True, **options}],
        "metadata": {"version": 1.0},
    }


def _gen_kwargs() -> dict[str, Any]:
    return {"until": list(UNTIL), "do_sample": False, "temperature": 0.0,
            "max_gen_toks": MAX_GEN_TOKS}


def lm_eval_normal_form(s: str, options: dict[str, Any]) -> str:
    """What lm-eval's exact_match compares (lm_eval.api.metrics.exact_match_hf_evaluate), for
    the report only: the scores themselves come from lm-eval's logged samples."""
    for r in options.get("regexes_to_ignore") or []:
        s = re.sub(r, "", s)
    if options.get("ignore_case"):
        s = s.lower()
    if options.get("ignore_punctuation"):
        s = s.translate(str.maketrans("", "", string.punctuation))
    return s


def run_crosscheck(model_path: str | Path, workdir: str | Path,
                   per_category: int = PER_CATEGORY) -> dict[str, Any]:
    """Run the cross-check on a local HF model folder; return the figures (see the module doc).
    Needs lm-eval and network-free HF settings in the environment (see OFFLINE_ENV). Torch runs
    on one thread meanwhile (restored afterwards): on the 2-core development machine, with other
    jobs running, two threads generated 25x slower than one (8.3 s vs 0.33 s for 12 prompts)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_crosscheck(model_path, workdir, per_category)
    finally:
        torch.set_num_threads(threads)


def _run_crosscheck(model_path: str | Path, workdir: str | Path,
                    per_category: int) -> dict[str, Any]:
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    from brewslm.evaluate.metrics import Example, build_metrics

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    model_args = f"pretrained={model_path},dtype=float32"
    lm = get_model("hf").create_from_arg_string(model_args, {"batch_size": 1, "device": "cpu"})
    timings["load_model_s"] = time.perf_counter() - t0

    # 1. lm-eval's own greedy completions, to build references from.
    t0 = time.perf_counter()
    requests = [Instance(request_type="generate_until", doc={}, idx=0,
                         arguments=(p, _gen_kwargs())) for p in PROMPTS]
    preds = lm.generate_until(requests, disable_tqdm=True)
    timings["first_pass_s"] = time.perf_counter() - t0
    rows = build_rows(preds, per_category)
    data_file = workdir / "crosscheck.jsonl"
    with data_file.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    # 2. One local task per metric setting, run through simple_evaluate.
    import yaml
    tasks_dir = workdir / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    task_names = {setting: f"brewslm_crosscheck_{setting}" for setting in SETTINGS}
    for setting, options in SETTINGS.items():
        (tasks_dir / f"{task_names[setting]}.yaml").write_text(
            yaml.safe_dump(_task_yaml(task_names[setting], data_file, options), sort_keys=False),
            encoding="utf-8")
    t0 = time.perf_counter()
    tm = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(task_names.values()), task_manager=tm,
                                  log_samples=True, batch_size=1, device="cpu",
                                  bootstrap_iters=0, random_seed=0)
    timings["simple_evaluate_s"] = time.perf_counter() - t0

    # 3. Our metric on lm-eval's logged predictions and targets.
    metric = build_metrics(["exact_match"])[0]
    unnormalized = build_metrics([{"name": "exact_match", "normalize": False}])[0]
    by_id = {row["id"]: row for row in rows}
    cats = {c.name: c for c in CATEGORIES}
    report: dict[str, Any] = {}
    for setting, options in SETTINGS.items():
        name = task_names[setting]
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        examples, ours, ours_raw, theirs, plain, rule = [], [], [], [], [], []
        disagreements: list[dict[str, Any]] = []
        unexpected: list[dict[str, Any]] = []
        same_as_first_pass = 0
        for s in samples:
            row = by_id[s["doc"]["id"]]
            pred = s["filtered_resps"][0]
            if isinstance(pred, list):
                pred = pred[0]
            target = s["target"]
            same_as_first_pass += pred == row["expected_prediction"]
            ex = Example(row_id=row["id"], prompt=row["prompt"], prediction=pred,
                         reference=target, slice=row["category"])
            score = metric.score(ex)
            examples.append(ex)
            ours.append(score)
            ours_raw.append(unnormalized.score(ex))
            theirs.append(float(s["exact_match"]))
            plain.append(float(pred == target))
            rule.append(float(lm_eval_normal_form(pred, options)
                              == lm_eval_normal_form(target, options)))
            cat = cats[row["category"]]
            if (score, float(s["exact_match"])) != (cat.ours, cat.lm_eval[setting]):
                unexpected.append({"id": row["id"], "ours": score,
                                   "lm_eval": float(s["exact_match"]),
                                   "expected": [cat.ours, cat.lm_eval[setting]]})
            if score != float(s["exact_match"]):
                disagreements.append({
                    "id": row["id"], "category": row["category"], "reason": cat.why,
                    "prediction": pred, "reference": target, "ours": score,
                    "lm_eval": float(s["exact_match"]),
                    "lm_eval_compares": [lm_eval_normal_form(pred, options),
                                         lm_eval_normal_form(target, options)]})
        lm_eval_agg = out["results"][name]["exact_match,none"]
        report[setting] = {
            "task": name,
            "options": options,
            "samples": len(samples),
            "predictions_as_first_pass": same_as_first_pass,
            "agree": sum(a == b for a, b in zip(ours, theirs, strict=True)),
            "disagree": len(disagreements),
            "lm_eval_exact_match": lm_eval_agg,
            "lm_eval_mean_of_samples": sum(theirs) / len(theirs),
            "ours_exact_match": metric.aggregate(examples, ours),
            "lm_eval_agrees_with_plain_equality": sum(
                a == b for a, b in zip(theirs, plain, strict=True)),
            "plain_equality_mean": sum(plain) / len(plain),
            "lm_eval_agrees_with_its_documented_rule": sum(
                a == b for a, b in zip(theirs, rule, strict=True)),
            "ours_unnormalized_agrees_with_lm_eval": sum(
                a == b for a, b in zip(ours_raw, theirs, strict=True)),
            "ours_unnormalized_exact_match": unnormalized.aggregate(examples, ours_raw),
            "unexpected": unexpected,
            "disagreements": disagreements,
        }
        # a per-category summary: how many agree, and each side's hits
        per_cat: dict[str, dict[str, int]] = {}
        for ex, a, b in zip(examples, ours, theirs, strict=True):
            d = per_cat.setdefault(ex.slice, {"n": 0, "agree": 0, "ours": 0, "lm_eval": 0})
            d["n"] += 1
            d["agree"] += a == b
            d["ours"] += int(a or 0)
            d["lm_eval"] += int(b)
        report[setting]["by_category"] = per_cat

    return {
        "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
        "model": "hf",
        "model_args": model_args,
        "prompts": len(PROMPTS),
        "distinct_predictions": len(set(preds)),
        "predictions": preds,
        "samples": len(rows),
        "categories": [c.name for c in CATEGORIES],
        "settings": report,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                    help="pretraining steps of builtin:tiny (default %(default)s)")
    ap.add_argument("--per-category", type=int, default=PER_CATEGORY)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)

    os.environ.update(OFFLINE_ENV)
    tmp = Path(tempfile.mkdtemp(prefix="brewslm-bench-lmeval-"))
    os.environ["BREWSLM_HOME"] = str(tmp / "home")
    os.environ["BREWSLM_MODELS_DIR"] = str(tmp / "models")
    os.environ["HF_HOME"] = str(tmp / "hf-home")
    os.environ["BREWSLM_TINY_PRETRAIN_STEPS"] = str(args.steps)
    try:
        t_all = time.perf_counter()
        from brewslm.basemodels.pretrain import pretrain_builtin_tiny
        t0 = time.perf_counter()
        path = pretrain_builtin_tiny(steps=args.steps)
        pretrain_s = time.perf_counter() - t0
        print(f"pretrained builtin:tiny ({args.steps} steps) in {pretrain_s:.1f}s",
              file=sys.stderr)
        t0 = time.perf_counter()
        figures = run_crosscheck(path, tmp / "work", args.per_category)
        crosscheck_s = time.perf_counter() - t0
        figures["pretrain_steps"] = args.steps
        figures["timings"].update(pretrain_s=round(pretrain_s, 2),
                                  crosscheck_s=round(crosscheck_s, 2),
                                  total_s=round(time.perf_counter() - t_all, 2))
        for setting, r in figures["settings"].items():
            print(f"{setting:8s} agree {r['agree']}/{r['samples']}  lm-eval "
                  f"{r['lm_eval_exact_match']:.4f}  ours {r['ours_exact_match']:.4f}  "
                  f"unexpected {len(r['unexpected'])}", file=sys.stderr)
        print(json.dumps(figures, ensure_ascii=False))
        ok = all(not r["unexpected"] and r["predictions_as_first_pass"] == r["samples"]
                 for r in figures["settings"].values())
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
