"""`brewslm train` as users run it, in child processes: kill -9 mid-run then --resume reaches
the same final step (and the same loss as an uninterrupted run), Ctrl-C saves a checkpoint and
is coded, and 2-process DDP (torchrun, gloo) really runs two ranks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from brewslm.stages.train import train
from brewslm.store import session
from brewslm.store.models import StageRun
from brewslm.train.engine import CHECKPOINT_TAG

# Not marked `store`: these exercise processes and training, not the database; running them
# again against PostgreSQL would double the suite's longest minutes for no new coverage.

SETS = ["max_steps=30", "save_every=5", "eval_every=15", "logging_every=5", "micro_batch=8"]


@pytest.fixture
def prepared(prepare_sample):
    return prepare_sample("proc")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "brewslm", *args]


def start_train(*extra: str) -> subprocess.Popen:
    sets = [arg for item in SETS for arg in ("--set", item)]
    return subprocess.Popen(cli("train", "-p", "proc", *sets, "--json", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"train exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for training to reach the point")
        time.sleep(0.05)


def tagged_steps(info) -> list[int]:
    found = []
    for tag in (info.dir / "train").glob(f"*/checkpoints/*/{CHECKPOINT_TAG}"):
        try:
            found.append(json.loads(tag.read_text())["step"])
        except (OSError, ValueError):  # being replaced this instant
            continue
    return sorted(found)


def test_kill_9_then_resume_reaches_the_same_final_step(prepared):
    proc = start_train()
    wait_for(lambda: any(step >= 10 for step in tagged_steps(prepared)), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(tagged_steps(prepared))
    assert killed_at < 30, "the run finished before it could be killed"

    resumed = subprocess.run(cli("train", "-p", "proc", *[a for s in SETS for a in ("--set", s)],
                                 "--resume", "--json"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "succeeded" and out["steps"] == 30
    assert out["resumed_from"]["step"] == killed_at
    with session() as s:
        runs = s.execute(select(StageRun.status, StageRun.error_code)
                         .where(StageRun.stage == "train")).all()
    assert ("failed", "stage_interrupted") in runs  # the killed run, on record

    # The same recipe without interruption ends on the same loss (resume restores the
    # optimizer, scheduler, RNG and data position).
    straight = train(prepared, overrides=SETS).to_dict()  # same knobs; a new run (no reuse)
    assert straight["status"] == "succeeded", straight.get("error")
    assert straight["steps"] == 30
    assert straight["final_loss"] == pytest.approx(out["final_loss"], rel=1e-3)


def test_ctrl_c_checkpoints_and_is_coded(prepared):
    proc = start_train("--set", "max_steps=400", "--set", "save_every=1000")
    wait_for(lambda: any((prepared.dir / "train").glob("*/trace.jsonl")), proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    out = json.loads(stdout)
    assert out["status"] == "failed" and out["error"]["code"] == "train_cancelled"
    checkpoint = Path(out["error"]["details"]["checkpoint"])
    assert (checkpoint / CHECKPOINT_TAG).exists()  # saved at the stop, not at step 1000


def test_two_process_ddp_runs_two_ranks(prepared):
    done = subprocess.run(cli("train", "-p", "proc", "--processes", "2", "--set", "max_steps=4",
                              "--set", "logging_every=1", "--set", "eval_every=2", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "succeeded" and out["world_size"] == 2 and out["steps"] == 4
    assert sorted(r["rank"] for r in out["ranks"]) == [0, 1]
    assert len({r["pid"] for r in out["ranks"]}) == 2
    assert all(r["world_size"] == 2 for r in out["ranks"])
    assert out["last_eval_loss"] is not None
