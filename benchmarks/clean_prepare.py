"""Benchmark: stages 05 clean and 06 prepare over short chat rows, against the simplest script
doing the same work with pandas + datasets.map, in the same run.

    .venv/bin/python benchmarks/clean_prepare.py                 # 1,000,000 rows (~25 min)
    .venv/bin/python benchmarks/clean_prepare.py --rows 100000

Writes a JSONL file of prompt/completion rows (random support-ticket words; 2% exact copies;
1% carrying an email address), ingests and maps it, then times clean (quality filters, PII
redaction, exact + MinHash near-dup, health report, ledger) and prepare (near-dup groups,
seeded split, chat template, tokens, loss mask, Parquet, manifest, ledger) in one child
process. A second child runs the baseline: pandas read_json, the same quality rule, exact dedup
on normalised text, regex email redaction, datasets.map applying the chat template and
tokenizing prompt and answer for the mask, and a seeded sample for eval. Each child's peak RSS
is read after it exits. Target for BrewSLM: peak RSS under 2048 MiB.

Runs in a temporary BREWSLM_HOME it creates and removes. Progress on stderr; one JSON object on
stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from harness import child_env, run_child

TARGET_PEAK_RSS_MIB = 2048
WORDS = ["invoice", "refund", "login", "export", "sync", "parcel", "address", "password",
         "card", "order", "app", "page", "screen", "error", "team", "billing", "account",
         "delivery", "tracking", "profile", "settings", "report", "upload", "download",
         "printer", "laptop", "phone", "email", "code", "warranty", "broken", "slow", "missing",
         "twice", "please", "urgent", "again", "today", "cannot", "update", "reset", "charge",
         "cancel"]


def log(message: str) -> None:
    print(f"[clean_prepare] {message}", file=sys.stderr, flush=True)


def write_rows(path: Path, rows: int) -> None:
    rng = random.Random(0)
    previous: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            if previous and i % 50 == 0:
                fh.write(rng.choice(previous))
                continue
            prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
            if i % 100 == 1:
                prompt += f" write to me at user{i}@example.com"
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16)))
            line = json.dumps({"prompt": prompt.capitalize() + "?", "completion":
                               answer.capitalize() + "."}) + "\n"
            fh.write(line)
            if len(previous) < 1000:
                previous.append(line)


def timed(label: str, fn) -> tuple[Any, float]:
    log(label)
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 2)


def brewslm_child(path: str, rows: int) -> dict[str, Any]:
    from brewslm import project
    from brewslm.stages import data

    info = project.create("bench", base_model="builtin:tiny")
    steps = {}
    for name, fn in (("ingest", lambda: data.ingest(info, path)),
                     ("map", lambda: data.map_rows(info, mapper="prompt_completion")),
                     ("clean", lambda: data.clean(info, force=True)),
                     ("prepare", lambda: data.prepare(info, max_tokens=256))):
        result, seconds = timed(f"brewslm {name}", fn)
        if result.status != "succeeded":
            raise SystemExit(f"{name} {result.status}: {result.error}")
        out = result.to_dict()
        steps[name] = {"seconds": seconds, "rows_per_s": round(rows / seconds, 1),
                       "counts": out.get("counts"),
                       "rejections": out.get("rejections_by_reason")}
    return steps


def baseline_child(path: str, rows: int) -> dict[str, Any]:
    import re

    import datasets
    import pandas as pd
    from transformers import AutoTokenizer

    from brewslm.basemodels import build_builtin_tiny

    tokenizer = AutoTokenizer.from_pretrained(str(build_builtin_tiny()))
    steps: dict[str, Any] = {}
    start = time.perf_counter()
    df = pd.read_json(path, lines=True)
    df = df[df["completion"].str.strip().str.len() >= 2]
    norm = (df["prompt"] + "\n" + df["completion"]).str.casefold().str.split().str.join(" ")
    df = df[~norm.duplicated()]
    email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    df["prompt"] = df["prompt"].str.replace(email, "<EMAIL>", regex=True)
    steps["clean"] = {"seconds": round(time.perf_counter() - start, 2), "rows_out": len(df)}
    log(f"baseline clean done: {len(df)} rows")

    def encode(row: dict[str, str]) -> dict[str, list[int]]:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}],
                                               tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(row["completion"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        return {"input_ids": p_ids + a_ids, "labels": [-100] * len(p_ids) + a_ids}

    start = time.perf_counter()
    ds = datasets.Dataset.from_pandas(df, preserve_index=False)
    ds = ds.map(encode, remove_columns=["prompt", "completion"])
    ds = ds.filter(lambda r: len(r["input_ids"]) <= 256)
    ds.train_test_split(test_size=0.1, seed=0)
    steps["prepare"] = {"seconds": round(time.perf_counter() - start, 2), "rows_out": len(ds)}
    for step in steps.values():
        step["rows_per_s"] = round(rows / step["seconds"], 1)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("brewslm", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = brewslm_child if args.child == "brewslm" else baseline_child
        print(json.dumps(fn(args.source, args.rows)))
        return
    with child_env("brewslm-bench-cp-") as (home, env):
        source = home / "rows.jsonl"
        log(f"writing {args.rows:,} rows")
        write_rows(source, args.rows)
        common = ["--source", str(source), "--rows", str(args.rows)]
        # ru_maxrss over children is a maximum: BrewSLM runs first so its figure is its own;
        # the baseline's is the larger of the two (an upper bound on its own).
        ours, ours_rss = run_child(__file__, ["--child", "brewslm", *common], env)
        base, base_rss = run_child(__file__, ["--child", "baseline", *common], env)
    ratio = {step: round(ours[step]["seconds"] / base[step]["seconds"], 2)
             for step in ("clean", "prepare")}
    print(json.dumps({"rows": args.rows, "brewslm": ours, "brewslm_peak_rss_mib": round(ours_rss),
                      "baseline": base, "baseline_peak_rss_mib_upper_bound": round(base_rss),
                      "time_ratio_brewslm_over_baseline": ratio,
                      "target_peak_rss_mib": TARGET_PEAK_RSS_MIB,
                      "meets_target": ours_rss < TARGET_PEAK_RSS_MIB}, indent=2))


if __name__ == "__main__":
    main()
