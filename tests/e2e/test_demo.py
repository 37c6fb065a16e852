"""`brewslm demo` end to end, as a user runs it: a real process, a fresh home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.store
BREWSLM = str(Path(sys.executable).with_name("brewslm"))


def test_demo_runs_the_spine_and_reports_it():
    proc = subprocess.run([BREWSLM, "demo", "--json"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["base_model"]["architecture"] == "LlamaForCausalLM"
    assert [r["status"] for r in out["runs"]] == ["succeeded", "reused"]
    (stage,) = out["ledger"]["stages"]
    assert (stage["in"], stage["flagged"]) == (20_000, False)
    assert out["trace"]["final"] == "dropped at synthetic (synthetic_row_rejected)"
    # running it again replaces the demo project instead of failing on it
    again = subprocess.run([BREWSLM, "demo", "--json"], capture_output=True, text=True,
                           env=os.environ.copy(), timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["runs"][0]["status"] == "succeeded"
