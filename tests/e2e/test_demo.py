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


def splits_eval(runs):
    return runs["prepare"]["splits"]["eval"]


def test_demo_runs_the_whole_lifecycle():
    proc = subprocess.run([BREWSLM, "demo", "--sample", "small", "--set", "max_steps=30", "--json"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["base_model"]["architecture"] == "LlamaForCausalLM"
    runs = out["runs"]
    assert {k: r["status"] for k, r in runs.items()} == {
        "ingest": "succeeded", "introspect": "succeeded", "map_dry_run": "succeeded",
        "map": "succeeded", "clean": "succeeded", "prepare": "succeeded",
        "ingest_again": "reused", "preflight": "succeeded",
        "preflight_small_machine": "blocked", "train": "succeeded", "evaluate": "succeeded",
        "export_gguf": "succeeded", "export_safetensors": "succeeded", "deploy": "succeeded"}
    assert runs["evaluate"]["promotable"] is True
    assert runs["export_gguf"]["parity"]["passed"] and runs["export_gguf"]["quant"] == "q8_0"
    assert runs["deploy"]["deployment_status"] == "promoted"
    chat = out["chat"]
    assert chat["model"] == "demo" and chat["answer"] and chat["usage"]["completion_tokens"]
    assert runs["evaluate"]["rows"] == splits_eval(runs)
    assert runs["evaluate"]["candidate_run"] == runs["train"]["run_id"]
    assert runs["preflight"]["verdict"] == "GO"
    small = runs["preflight_small_machine"]
    assert small["verdict"] == "BLOCK" and small["plan"]["fits"]
    assert [b["reason_code"] for b in small["blockers"]] == ["preflight_memory_exceeded"]
    assert runs["train"]["steps"] == 30 and runs["train"]["manifest_hash"] == (
        runs["prepare"]["manifest_hash"])
    assert runs["ingest"]["counts"] == {"in": 400, "out": 399, "rejected": 1}
    assert runs["map"]["counts"] == {"in": 399, "out": 397, "rejected": 2}
    assert out["dataset"]["total"] == 386  # the latest version: the cleaned one
    assert runs["clean"]["counts"] == {"in": 397, "out": 386, "rejected": 11}
    splits = runs["prepare"]["splits"]
    assert splits["train"] + splits["eval"] == 386 and splits["eval"] > 0
    assert len(runs["prepare"]["manifest_hash"]) == 64
    assert [s["stage"] for s in out["ledger"]["stages"]] == ["ingest", "map", "clean",
                                                              "prepare", "evaluate"]
    assert not out["ledger"]["flagged"]
    assert [(s["stage"], s["outcome"]) for s in out["trace"]["steps"]] == [
        ("ingest", "kept"), ("map", "dropped")]
    # running it again replaces the demo project instead of failing on it (10 steps: the
    # candidate is not promotable, so nothing is exported and nothing asked)
    again = subprocess.run([BREWSLM, "demo", "--sample", "small", "--set", "max_steps=10",
                            "--json"],
                           capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["runs"]["ingest"]["status"] == (
        "succeeded")
