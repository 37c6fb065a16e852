"""One rank of a multi-process training run: what torchrun or accelerate starts N times.

    python -m torch.distributed.run --nproc_per_node 2 -m brewslm.train.launch WORK/spec.json
    accelerate launch --config_file fsdp.yaml -m brewslm.train.launch WORK/spec.json

The train stage writes spec.json (a FitSpec) into the run's work folder and launches this
module; the Trainer sees WORLD_SIZE / RANK and runs DDP (gloo on CPU, NCCL on CUDA), or FSDP /
DeepSpeed when the accelerate config says so. Rank 0 appends each trace line to
rank0-trace.jsonl (the stage tails it: metrics, progress) and writes outcome.json at the end; every
rank writes ranks/rank-<N>.json (pid, world size, steps), the proof that N ranks really ran.
A rank that fails writes its traceback to ranks/rank-<N>.error.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from brewslm.train.engine import FitSpec, StopRequest, fit

TRACE_FILE = "rank0-trace.jsonl"  # not trace.jsonl: the stage appends that one itself
OUTCOME_FILE = "outcome.json"
RANKS_DIR = "ranks"


def main(spec_path: str) -> int:
    spec = FitSpec.from_json(Path(spec_path).read_text(encoding="utf-8"))
    work = Path(spec.work_dir)
    rank = int(os.environ.get("RANK", "0"))
    ranks = work / RANKS_DIR
    ranks.mkdir(parents=True, exist_ok=True)
    stop = StopRequest()
    signal.signal(signal.SIGTERM, lambda *_: stop.set("cancelled"))
    signal.signal(signal.SIGINT, lambda *_: stop.set("cancelled"))
    trace = (work / TRACE_FILE).open("a", encoding="utf-8") if rank == 0 else None

    def sink(entry: dict) -> None:
        trace.write(json.dumps(entry) + "\n")
        trace.flush()

    try:
        outcome = fit(spec, sink=sink if trace else None, stop=stop)
    except Exception:
        (ranks / f"rank-{rank}.error").write_text(traceback.format_exc(), encoding="utf-8")
        raise
    finally:
        if trace:
            trace.close()
    (ranks / f"rank-{rank}.json").write_text(json.dumps(
        {"rank": rank, "pid": os.getpid(), "world_size": outcome.world_size,
         "steps": outcome.steps}), encoding="utf-8")
    if rank == 0:
        tmp = work / f".{OUTCOME_FILE}.tmp"
        tmp.write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
        os.replace(tmp, work / OUTCOME_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
