"""Benchmark: the row ledger at scale — rows/s of a row stage, `rows stats` and `rows trace`
times, and the peak memory of the process doing it.

    .venv/bin/python benchmarks/ledger.py                  # 1,000,000 rows
    .venv/bin/python benchmarks/ledger.py --rows 200000

A child process runs the synthetic row stage (stages/synthetic.py) through the stage runner
(`run_stage`), so each row is generated, given a row id, recorded in the ledger (kept, changed,
or dropped with a reason code) and written to the output dataset: the spine's per-row cost
without real data. The same child then times `rows.stats` (re-reads the ledger file, checks
in = out + dropped) and `rows.trace` of one dropped row (scans the ledger). The parent reads the
child's peak RSS (ru_maxrss of RUSAGE_CHILDREN) after it exits. Target: peak RSS under 1024 MiB.

It runs in a temporary BREWSLM_HOME that it creates and removes (never ~/.brewslm), always on
SQLite there (BREWSLM_DATABASE_URL is ignored). Progress goes to stderr; one JSON object goes to
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from harness import child_env, run_child

TARGET_PEAK_RSS_MIB = 1024
PARAMS = {"reject_every": 7, "change_every": 5}


def log(message: str) -> None:
    print(f"[ledger] {message}", file=sys.stderr, flush=True)


def child(rows: int) -> dict[str, Any]:
    """In the child process: the stage run, then stats and trace, timed."""
    from brewslm import project
    from brewslm import rows as rows_mod
    from brewslm.ledger import make_row_id
    from brewslm.stages.runner import run_stage
    from brewslm.stages.synthetic import SyntheticStage

    info = project.create("bench")
    log(f"synthetic stage over {rows:,} rows")
    start = time.perf_counter()
    result = run_stage(SyntheticStage(), info, params={"rows": rows, **PARAMS})
    stage_seconds = time.perf_counter() - start
    if result.status != "succeeded":
        raise SystemExit(f"stage {result.status}: {result.error}")
    log(f"stage done in {stage_seconds:.1f}s; rows stats")

    start = time.perf_counter()
    stats = rows_mod.stats(info)
    stats_seconds = time.perf_counter() - start
    [entry] = stats["stages"]
    if entry["flagged"] or entry["in"] != rows:
        raise SystemExit(f"ledger does not balance: {entry}")

    log("rows trace")
    row_id = make_row_id("synthetic:0", 0)  # row 0 is dropped (0 % reject_every == 0)
    start = time.perf_counter()
    story = rows_mod.trace(info, row_id)
    trace_seconds = time.perf_counter() - start
    if story["steps"][0]["reason_code"] != "synthetic_row_rejected":
        raise SystemExit(f"unexpected trace: {story}")

    return {"rows": rows, "stage_seconds": round(stage_seconds, 3),
            "rows_per_s": round(rows / stage_seconds, 1),
            "stats_seconds": round(stats_seconds, 3), "trace_seconds": round(trace_seconds, 3),
            "counts": {"in": entry["in"], "out": entry["out"], "dropped": entry["dropped"]},
            "ledger_bytes": os.path.getsize(
                info.dir / "ledger" / "synthetic" / f"{result.run_id}.parquet")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rows)))
        return

    with child_env("brewslm-bench-ledger-") as (_, env):
        result, peak_rss_mib = run_child(__file__, ["--child", "--rows", str(args.rows)], env)
    result.update(peak_rss_mib=round(peak_rss_mib, 1), target_peak_rss_mib=TARGET_PEAK_RSS_MIB,
                  meets_target=peak_rss_mib < TARGET_PEAK_RSS_MIB)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
