"""The autopilot's whole path on a small configuration (40 rows, 8 training steps, the fast
eval pack): at every row stage the ledger balances (in = out + dropped, and each stage takes in
what the one before let out); the manifest hash is the same for two runs on the same data; and
the answer the endpoint gives comes from the promoted version, following promote and rollback.
"""

from __future__ import annotations

import time

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from brewslm import artifacts, project, rows
from brewslm.api.app import create_app
from brewslm.autopilot import run_project
from brewslm.serving import deployments
from brewslm.stages import data
from brewslm.stages.deploy import deploy
from brewslm.stages.export import export

pytestmark = pytest.mark.store

FAST = {"overrides": ["max_steps=8", "learning_rate=5e-3"], "pack": "fast",
        "eval_overrides": ["limit=8", "generation.max_new_tokens=8"]}
QUESTION = "ticket 3: app 3 broken"


def step(summary, name):
    return next(s for s in summary["steps"] if s["stage"] == name)


def greedy(folder, question: str, max_new_tokens: int = 12) -> str:
    """The export's answer, generated here with transformers (not through the endpoint)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def ask(client, name: str) -> dict:
    reply = client.post(f"/serve/{name}/v1/chat/completions", json={
        "model": name, "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 12, "temperature": 0})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_ledger_balances_manifest_is_stable_and_the_promoted_version_answers(rows_file):
    first = run_project(project.create("first", base_model="builtin:tiny"),
                        data=str(rows_file), **FAST)
    assert first["status"] == "done"
    manifest = step(first, "prepare")["manifest_hash"]
    # A second project, from scratch, on the same file: the same manifest, byte for byte.
    second = project.create("second", base_model="builtin:tiny")
    data.ingest(second, str(rows_file))
    data.map_rows(second)
    data.clean(second)
    assert len(manifest) == 64 and data.prepare(second).result["manifest_hash"] == manifest
    again = run_project(project.get("first"), data=str(rows_file), **FAST)
    assert step(again, "prepare") | {"run_id": None} == step(again, "prepare") | {
        "run_id": None, "status": "reused", "manifest_hash": manifest}

    info = project.get("first")
    stats = rows.stats(info)
    assert not stats["flagged"]
    ledger = {s["stage"]: s for s in stats["stages"]}
    chain = ["ingest", "map", "clean", "prepare"]
    assert all(ledger[s]["in"] == ledger[s]["out"] + ledger[s]["dropped"] for s in chain)
    assert all(ledger[a]["out"] == ledger[b]["in"] for a, b in zip(chain, chain[1:], strict=False))
    assert ledger["ingest"]["in"] == 40

    v1 = deployments.active(info)
    assert (v1.version, v1.status) == (1, "promoted")
    folder_v1 = artifacts.get(info, v1.export_id).path
    hf = export(info, fmt="hf")
    assert deploy(info, export_id=hf.result["export_id"]).result["version"] == 2
    with TestClient(create_app()) as client:
        served = ask(client, "first")
        assert served["system_fingerprint"].endswith("-v2")
        deployments.rollback(info)
        served = ask(client, "first")  # the endpoint re-reads the promoted version (<= 1 s)
        for _ in range(20):
            if served["system_fingerprint"].endswith("-v1"):
                break
            time.sleep(0.2)
            served = ask(client, "first")
        assert served["system_fingerprint"] == f"brewslm-{v1.id}-v1"
        assert served["choices"][0]["message"]["content"] == greedy(folder_v1, QUESTION)
