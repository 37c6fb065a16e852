"""Benchmark: stage 01 ingest and stage 04 map over a large JSONL file — rows/s and the peak
memory of the process doing it.

    .venv/bin/python benchmarks/ingest.py                  # 1,000,000 rows
    .venv/bin/python benchmarks/ingest.py --rows 200000

Writes a JSONL file of alpaca-shaped records (one in 1,000 lines malformed), then a child
process runs ingest (read, row ids, snapshot Parquet, ledger) and map (alpaca mapper, dataset
version, ledger) through the stage runner, timing each. The parent reads the child's peak RSS
(ru_maxrss of RUSAGE_CHILDREN). Target: peak RSS under 1536 MiB (1.5 GiB).

Runs in a temporary BREWSLM_HOME it creates and removes (never ~/.brewslm). Progress goes to
stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness import child_env, run_child

TARGET_PEAK_RSS_MIB = 1536
MALFORMED_EVERY = 1000


def log(message: str) -> None:
    print(f"[ingest] {message}", file=sys.stderr, flush=True)


def write_jsonl(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            if i % MALFORMED_EVERY == 999:
                fh.write('{"instruction": "broken\n')
                continue
            fh.write(json.dumps({"instruction": f"Classify ticket {i}", "input": "",
                                 "output": f"category {i % 4}"}) + "\n")


def timed(label: str, fn) -> tuple[Any, float]:
    log(label)
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def child(path: str, rows: int) -> dict[str, Any]:
    from brewslm import project
    from brewslm.stages import data

    info = project.create("bench")
    ingest, ingest_s = timed(f"ingest {rows:,} lines", lambda: data.ingest(info, path))
    mapped, map_s = timed("map (alpaca)", lambda: data.map_rows(info, mapper="alpaca"))
    for result in (ingest, mapped):
        if result.status != "succeeded":
            raise SystemExit(f"{result.stage} {result.status}: {result.error}")
    return {"rows": rows, "ingest_seconds": round(ingest_s, 2),
            "ingest_rows_per_s": round(rows / ingest_s, 1),
            "ingest_counts": ingest.to_dict()["counts"],
            "map_seconds": round(map_s, 2), "map_rows_per_s": round(rows / map_s, 1),
            "map_counts": mapped.to_dict()["counts"],
            "map_rejections": mapped.to_dict()["rejections_by_reason"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="JSONL lines to write")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return

    with child_env("brewslm-bench-ingest-") as (home, env):
        source = home / "data.jsonl"
        log(f"writing {args.rows:,} lines")
        write_jsonl(source, args.rows)
        result, peak_rss_mib = run_child(__file__, ["--child", str(source),
                                                    "--rows", str(args.rows)], env)
        result["source_bytes"] = source.stat().st_size
    result.update(peak_rss_mib=round(peak_rss_mib, 1), target_peak_rss_mib=TARGET_PEAK_RSS_MIB,
                  meets_target=peak_rss_mib < TARGET_PEAK_RSS_MIB)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
