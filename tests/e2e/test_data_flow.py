"""The data stages as a user runs them on the bundled sample, through the real CLI process:
ingest -> introspect -> map --dry-run -> map -> dataset show -> rows trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.store
BREWSLM = str(Path(sys.executable).with_name("brewslm"))
TICKETS = Path(__file__).resolve().parents[2] / "examples" / "tickets.jsonl"


def brewslm(*args: str, code: int = 0) -> dict:
    proc = subprocess.run([BREWSLM, *args, "--json"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    assert proc.returncode == code, proc.stderr
    return json.loads(proc.stdout)


def test_tickets_from_file_to_dataset_version():
    brewslm("project", "create", "tickets")
    ingest = brewslm("ingest", "-p", "tickets", str(TICKETS))
    assert ingest["counts"] == {"in": 400, "out": 399, "rejected": 1}
    assert ingest["rejections_by_reason"] == {"malformed_json": 1}
    intro = brewslm("introspect", "-p", "tickets")
    assert intro["proposal"]["mapper"] == "alpaca" and intro["proposal"]["confidence"] >= 0.8
    dry = brewslm("map", "-p", "tickets", "--dry-run")
    assert dry["counts"] == {"in": 399, "out": 397, "rejected": 2}
    assert dry["rejections_by_reason"] == {"empty_text": 1, "missing_field": 1}
    committed = brewslm("map", "-p", "tickets")
    assert committed["counts"] == dry["counts"]
    shown = brewslm("dataset", "-p", "tickets", "show", "--limit", "2")
    assert shown["total"] == 397 and len(shown["rows"]) == 2
    assert shown["rows"][0]["messages"][-1]["role"] == "assistant"
    example = dry["examples"]["missing_field"]
    trace = brewslm("rows", "-p", "tickets", "trace", example["row_id"])
    assert [(s["stage"], s["outcome"]) for s in trace["steps"]] == [
        ("ingest", "kept"), ("map", "dropped")]
    assert trace["steps"][0]["position"] == "line 43"
    stats = brewslm("rows", "-p", "tickets", "stats")
    assert [s["stage"] for s in stats["stages"]] == ["ingest", "map"] and not stats["flagged"]
