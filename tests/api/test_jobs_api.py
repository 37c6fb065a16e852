"""Every stage through the REST API as a job, against the CLI on the same inputs: the job's
result equals what `brewslm STAGE --json` prints (up to run ids, timings and paths), and a
project goes from ingest to a model answering at /serve/NAME/v1 with the API alone. Also the
job routes' refusals and the server-sent progress stream."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from brewslm import project
from brewslm.api.app import create_app
from brewslm.cli import app as cli_app
from brewslm.jobs import worker

pytestmark = pytest.mark.store

# Values that differ between any two runs: ids of runs and of artifacts that embed them,
# wall-clock figures, event ids and timestamps.
VOLATILE = {"run_id", "duration_s", "events", "reused_from", "started_at", "finished_at",
            "created_at", "updated_at", "train_seconds", "tokens_per_second", "latency_s",
            "latency", "samples_per_second", "measured_peak_bytes", "peak_rss_bytes",
            "wall_s", "free_bytes", "ranks", "deployment_id", "candidate_run", "report_html",
            "decided_at", "smoke", "path", "checkpoint", "memory", "disk", "answers",
            "available_bytes", "detail", "evidence", "hardware", "value", "base_value",
            "message", "budget_bytes"}
TIMED = ("_s", "per_second", "_bytes", "_seconds")  # wall-clock and memory readings
HEX = re.compile(r"\b(?:run-|job-|dep-)?[0-9a-f]{12,64}\b")


def normalise(obj, names):
    if isinstance(obj, dict):
        return {k: normalise(v, names) for k, v in obj.items()
                if k not in VOLATILE and not k.endswith(TIMED)}
    if isinstance(obj, list):
        return [normalise(v, names) for v in obj]
    if isinstance(obj, str):
        for name in names:
            obj = obj.replace(name, "<project>")
        return HEX.sub("<id>", obj)
    if isinstance(obj, float):
        return round(obj, 3)
    return obj


def differences(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def cli(*args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(cli_app, [*args, "--json"])
    assert result.exit_code == code, result.stdout
    return json.loads(result.stdout)


def api_job(client: TestClient, name: str, stage: str, body: dict) -> dict:
    started = client.post(f"/api/projects/{name}/stages/{stage}", json=body)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "queued" and job["kind"] == stage
    assert worker.run_worker(once=True) == 1
    done = client.get(f"/api/jobs/{job['id']}").json()
    log = client.get(f"/api/jobs/{job['id']}/log", params={"tail": 30}).json()["lines"]
    assert done["status"] == "succeeded", (stage, done["error_code"], done["error_message"],
                                           log)
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert result.status_code == 200
    assert result.json() == done["result"]
    return done


def test_every_stage_as_an_api_job_equals_the_cli_and_ends_served(rows_file):
    from openai import OpenAI  # noqa: F401  (the endpoint is checked with plain HTTP here)

    for name in ("viacli", "viaapi"):
        project.create(name, base_model="builtin:tiny")
    client = TestClient(create_app())
    steps = [
        ("ingest", [str(rows_file)], {"source": str(rows_file)}),
        ("introspect", [], {}),
        ("map", ["--dry-run"], {"dry_run": True}),
        ("map", [], {}),
        ("clean", [], {}),
        ("prepare", [], {}),
        ("preflight", [], {}),
        ("train", ["--set", "max_steps=8", "--set", "learning_rate=5e-3"],
         {"overrides": ["max_steps=8", "learning_rate=5e-3"]}),
        ("evaluate", ["--pack", "fast", "--set", "limit=8", "--set",
                      "generation.max_new_tokens=8"],
         {"pack": "fast", "overrides": ["limit=8", "generation.max_new_tokens=8"]}),
        ("export", ["--format", "hf"], {"fmt": "hf"}),
        ("deploy", [], {}),
    ]
    for stage, args, body in steps:
        by_cli = cli(stage, "-p", "viacli", *args)
        job = api_job(client, "viaapi", stage, body)
        assert job["status"] == "succeeded", (stage, job["error_code"], job["error_message"])
        names = ("viacli", "viaapi")
        assert differences(normalise(job["result"], names), normalise(by_cli, names)) == [], \
            stage

    # The API alone serves the promoted version: /serve/NAME/v1 (OpenAI-compatible).
    models = client.get("/serve/viaapi/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["viaapi"]
    answer = client.post("/serve/viaapi/v1/chat/completions", json={
        "model": "viaapi", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "ticket 3: app 3 broken"}]})
    assert answer.status_code == 200 and answer.headers["x-brewslm-version"] == "1"
    assert client.get("/serve/nobody/v1/models").status_code == 404

    jobs = client.get("/api/jobs", params={"project": "viaapi"}).json()["jobs"]
    assert len(jobs) == len(steps) and {j["status"] for j in jobs} == {"succeeded"}
    stream = client.get(f"/api/jobs/{jobs[0]['id']}/events")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "event: progress" in stream.text and 'event: end\ndata: {"status": "succeeded"}' \
        in stream.text


def test_job_routes_refuse_what_they_cannot_do(rows_file):
    project.create("refused", base_model="builtin:tiny")
    client = TestClient(create_app())
    unknown = client.post("/api/projects/refused/stages/ingest", json={"sauce": 1})
    assert unknown.status_code == 422
    bad = client.post("/api/projects/refused/jobs", json={"kind": "bake", "params": {}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "job_kind_unknown"
    job = client.post("/api/projects/refused/stages/ingest",
                      json={"source": str(rows_file)}).json()
    pending = client.get(f"/api/jobs/{job['id']}/result")
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "job_not_finished"
    assert client.get(f"/api/jobs/{job['id']}/progress").json()["status"] == "queued"
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/api/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_cancellable"
    assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 202
    assert client.get("/api/jobs/job-nope").status_code == 404
    stages = client.get("/api/stages").json()["stages"]
    assert stages["ingest"]["source"]["required"] is True and "overrides" in stages["train"]
