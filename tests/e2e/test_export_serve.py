"""Export and deploy as a user runs them, through the real CLI processes: a trained and
evaluated candidate is exported (GGUF and HF, parity proven), deployed (smoke test, promoted),
served by `brewslm serve` in its own process, asked one question with the official openai
client, and its telemetry read back; a rollback with no predecessor is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.store
BREWSLM = str(Path(sys.executable).with_name("brewslm"))


def brewslm(*args: str, code: int = 0) -> dict:
    proc = subprocess.run([BREWSLM, *args, "--json"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert proc.returncode == code, (proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("brewslm serve never became healthy")


def test_export_deploy_serve_with_the_openai_client(tmp_path):
    from openai import OpenAI

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"ticket {i}: app {i % 7} broken",
                                        "response": f"category {i % 3}"}) + "\n"
                            for i in range(40)))
    brewslm("project", "create", "shop", "--base-model", "builtin:tiny")
    brewslm("ingest", "-p", "shop", str(data))
    brewslm("map", "-p", "shop")
    brewslm("prepare", "-p", "shop")
    brewslm("train", "-p", "shop", "--set", "max_steps=8", "--set", "learning_rate=5e-3")
    judged = brewslm("evaluate", "-p", "shop", "--pack", "fast", "--set", "limit=8",
                     "--set", "generation.max_new_tokens=8")
    assert judged["promotable"] is True

    gguf = brewslm("export", "-p", "shop", "--format", "gguf", "--quant", "q8_0")
    assert gguf["parity"]["passed"] is True and gguf["artifacts"][0]["format"] == "gguf"
    assert Path(gguf["artifacts"][0]["path"]).stat().st_size > 0
    hf = brewslm("export", "-p", "shop", "--format", "hf")
    assert {"format", "path", "sha256"} <= set(hf["artifacts"][0])
    assert hf["parity"]["max_abs_diff"] <= 1e-4

    deployed = brewslm("deploy", "-p", "shop", "--export", hf["export_id"])
    assert {"deployment_id", "version", "status", "deployment_status", "endpoint"} <= set(
        deployed)
    assert (deployed["status"], deployed["version"], deployed["deployment_status"]) == (
        "succeeded", 1, "promoted")
    listed = brewslm("deploy", "list", "-p", "shop")
    assert [v["status"] for v in listed["versions"]] == ["promoted"]

    port = free_port()
    server = subprocess.Popen([BREWSLM, "serve", "-p", "shop", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=os.environ.copy())
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "ticket 12: app 5 broken"}],
            max_tokens=8, temperature=0)
        assert reply.model == "shop" and reply.choices[0].finish_reason in ("stop", "length")
    finally:
        server.terminate()
        server.wait(timeout=30)

    stats = brewslm("deploy", "telemetry", "-p", "shop")
    assert stats["requests"] == 1 and stats["errors"] == 0
    refused = brewslm("deploy", "rollback", "-p", "shop", code=2)
    assert refused["error"]["code"] == "deploy_no_predecessor"

    # Observability over the same events: the GGUF file traced back to the source file, why
    # its candidate was exported, and the refused rollback as a failure cluster.
    lineage = brewslm("audit", "-p", "shop", "lineage", gguf["artifacts"][0]["path"])
    kinds = [n["kind"] for n in lineage["nodes"]]
    assert kinds[0] == "export" and {"model", "manifest", "dataset", "snapshot"} <= set(kinds)
    assert [src["source"] for src in lineage["sources"]] == [str(data)]
    why = brewslm("audit", "-p", "shop", "why", gguf["candidate_id"])
    assert why["verdict"] == "promotable" and why["decided_by"] == judged["run_id"]
    clusters = brewslm("clusters", "-p", "shop")["clusters"]
    assert [c["reason_code"] for c in clusters] == ["deploy_no_predecessor"]
