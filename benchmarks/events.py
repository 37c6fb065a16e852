"""Benchmark: how many RunEvents per second `emit_event` commits.

    .venv/bin/python benchmarks/events.py                  # 20000 single-threaded, 8 x 2500
    .venv/bin/python benchmarks/events.py --events 50000 --threads 16 --per-thread 1000

Two figures per database backend: N events written one after another from one thread, and a
burst of T threads writing M events each at once (started together on a barrier). Each event is
committed before emit_event returns, as in real use. After each part the rows in run_events are
counted, so an event that silently went to the fallback file is caught, not counted as written.

It runs in a temporary BREWSLM_HOME that it creates and removes (never ~/.brewslm), on SQLite.
If BREWSLM_DATABASE_URL is set, it runs again on that database (the events it wrote there are
deleted afterwards) and reports that backend under "additional". Progress goes to stderr; one
JSON object goes to stdout. Target: at least 5000 single-threaded events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

TARGET_SINGLE_EVENTS_PER_S = 5000


def log(message: str) -> None:
    print(f"[events] {message}", file=sys.stderr, flush=True)


def count_events(project_id: str) -> int:
    from sqlalchemy import func, select

    from brewslm.store import session
    from brewslm.store.models import RunEvent

    with session() as s:
        return s.scalar(select(func.count()).select_from(RunEvent)
                        .where(RunEvent.project_id == project_id))


def delete_events(project_id: str) -> None:
    from sqlalchemy import delete

    from brewslm.store import session
    from brewslm.store.models import RunEvent

    with session() as s:
        s.execute(delete(RunEvent).where(RunEvent.project_id == project_id))


def emit_many(project_id: str, run_id: str, n: int) -> int:
    """Emit n events; return how many the database took (emit_event returned an id)."""
    from brewslm.events import emit_event

    stored = 0
    for i in range(n):
        event_id = emit_event("stage_started", f"benchmark event {i}", project_id=project_id,
                              run_id=run_id, stage="synthetic", payload={"i": i, "bench": True})
        stored += event_id is not None
    return stored


def bench_single(project_id: str, n: int) -> dict[str, Any]:
    log(f"single thread: {n} events")
    before = count_events(project_id)
    start = time.perf_counter()
    stored = emit_many(project_id, "run-bench-single", n)
    seconds = time.perf_counter() - start
    landed = count_events(project_id) - before
    return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds, 1),
            "stored": stored, "counted_in_run_events": landed, "all_landed": landed == n}


def bench_threads(project_id: str, threads: int, per_thread: int) -> dict[str, Any]:
    total = threads * per_thread
    log(f"burst: {threads} threads x {per_thread} events")
    before = count_events(project_id)
    barrier = threading.Barrier(threads + 1)
    stored = [0] * threads

    def work(k: int) -> None:
        barrier.wait()
        stored[k] = emit_many(project_id, f"run-bench-thread-{k}", per_thread)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    landed = count_events(project_id) - before
    return {"threads": threads, "per_thread": per_thread, "events": total,
            "seconds": round(seconds, 3), "events_per_s": round(total / seconds, 1),
            "stored": sum(stored), "counted_in_run_events": landed, "all_landed": landed == total}


def bench_backend(args: argparse.Namespace) -> dict[str, Any]:
    """Both parts on whatever database BREWSLM_DATABASE_URL (or its default) names now."""
    from sqlalchemy.engine import make_url

    from brewslm import config
    from brewslm.store import db

    eng = db.engine()  # create and migrate outside the timing
    project_id = "bench-" + uuid.uuid4().hex[:10]  # events need no project row
    emit_many(project_id, "run-bench-warmup", 50)
    delete_events(project_id)
    backend = eng.dialect.name
    log(f"backend {backend}")
    try:
        single = bench_single(project_id, args.events)
        burst = bench_threads(project_id, args.threads, args.per_thread)
    finally:
        delete_events(project_id)
    return {"backend": backend,
            "database": make_url(config.database_url()).render_as_string(hide_password=True),
            "single_thread": single, "threads": burst,
            "target_single_events_per_s": TARGET_SINGLE_EVENTS_PER_S,
            "meets_target": (single["events_per_s"] >= TARGET_SINGLE_EVENTS_PER_S
                             and single["all_landed"] and burst["all_landed"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="single-threaded events")
    parser.add_argument("--threads", type=int, default=8, help="threads in the burst")
    parser.add_argument("--per-thread", type=int, default=2_500, help="events per thread")
    args = parser.parse_args()

    user_url = os.environ.get("BREWSLM_DATABASE_URL")
    home = tempfile.mkdtemp(prefix="brewslm-bench-events-")
    os.environ["BREWSLM_HOME"] = home
    os.environ.pop("BREWSLM_STRICT_CODES", None)
    try:
        from brewslm.store import db

        os.environ.pop("BREWSLM_DATABASE_URL", None)  # SQLite under the temporary home
        result = bench_backend(args)
        if user_url:
            os.environ["BREWSLM_DATABASE_URL"] = user_url
            result["additional"] = [bench_backend(args)]
        db.reset_engines()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
