"""The row ledger: stable ids, Parquet files, recounts, child rows, and a million rows in
bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from brewslm.errors import BrewError
from brewslm.events.taxonomy import UnknownReasonCode
from brewslm.ledger import LedgerWriter, find_row, make_row_id, recount


def test_row_ids_are_stable_and_distinct():
    assert make_row_id("snap-1", 7) == make_row_id("snap-1", 7)
    assert len({make_row_id("snap-1", i) for i in range(10_000)}) == 10_000
    assert make_row_id("snap-1", 7) != make_row_id("snap-2", 7)


def _write(tmp_path, batch_rows=2) -> LedgerWriter:
    writer = LedgerWriter(tmp_path / "run.parquet", stage="clean", run_id="run-1",
                          batch_rows=batch_rows)
    writer.count_in(4)
    writer.kept("r1", source="a.jsonl", position="line 1")
    writer.changed("r2", {"redacted": ["EMAIL"]})
    writer.dropped("r3", "synthetic_row_rejected", position="line 3")
    writer.dropped("r4", "synthetic_row_rejected")
    writer.added("r4a", "r2", detail="chunk 1")
    return writer


def test_writer_counts_and_the_file_recounts_the_same(tmp_path):
    writer = _write(tmp_path)
    stats = writer.close()
    assert not (tmp_path / "run.parquet").exists()  # not visible until the run commits
    writer.commit()
    assert stats.to_dict() == {"in": 4, "out": 2, "dropped": 2, "kept": 1, "changed": 1,
                               "added": 1, "by_reason": {"synthetic_row_rejected": 2},
                               "notes": {}, "balanced": True}
    again = recount(tmp_path / "run.parquet")
    again.rows_in = 4
    assert again.to_dict() == stats.to_dict()


def test_find_row_returns_the_row_and_its_children(tmp_path):
    writer = _write(tmp_path)
    writer.close()
    writer.commit()
    hits = find_row(tmp_path / "run.parquet", "r2")
    assert [(h["row_id"], h["outcome"]) for h in hits] == [("r2", "changed"), ("r4a", "added")]
    assert json.loads(hits[0]["detail"]) == {"redacted": ["EMAIL"]}
    assert find_row(tmp_path / "run.parquet", "nope") == []


def test_abort_leaves_nothing(tmp_path):
    writer = _write(tmp_path)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_drop_needs_a_registered_code(tmp_path):
    writer = LedgerWriter(tmp_path / "x.parquet", stage="clean", run_id="run-1")
    with pytest.raises(UnknownReasonCode):
        writer.dropped("r1", "made_up_code")
    with pytest.raises(BrewError) as exc:
        writer.dropped("r1", None)
    assert exc.value.code == "ledger_reason_missing"
    with pytest.raises(ValueError):
        writer.record("r1", "vanished")


MILLION = """
import json, sys
from brewslm import project, rows
from brewslm.ledger import make_row_id
from brewslm.preflight.memory import peak_rss_bytes
from brewslm.stages.runner import run_stage
from brewslm.stages.synthetic import SyntheticStage

info = project.create("big")
result = run_stage(SyntheticStage(), info,
                   params={"rows": 1_000_000, "reject_every": 7, "change_every": 5})
stats = rows.stats(info)
trace = rows.trace(info, make_row_id("synthetic:0", 999_999))
print(json.dumps({"status": result.status, "counts": result.to_dict()["counts"],
                  "stats": stats["stages"][0], "trace": trace, "peak": peak_rss_bytes()}))
"""


@pytest.mark.slow
@pytest.mark.store
def test_a_million_rows_write_stats_and_trace_under_1_gib():
    proc = subprocess.run([sys.executable, "-c", MILLION], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # The child's own peak (VmHWM): RUSAGE_CHILDREN is the largest of every child this pytest
    # process ever waited for (a training e2e test's child is bigger), and ru_maxrss of a
    # vfork child starts from the parent's.
    peak_mib = out["peak"] / 2**20
    assert out["status"] == "succeeded"
    dropped = len(range(0, 1_000_000, 7))
    assert out["counts"] == {"in": 1_000_000, "out": 1_000_000 - dropped, "rejected": dropped}
    assert out["stats"]["by_reason"] == {"synthetic_row_rejected": dropped}
    assert out["stats"]["flagged"] is False
    (step,) = out["trace"]["steps"]  # row 999,999 is a multiple of 7: dropped
    assert (step["outcome"], step["reason_code"], step["position"]) == (
        "dropped", "synthetic_row_rejected", "row 999999")
    assert peak_mib < 1024, f"peak RSS {peak_mib:.0f} MiB"
