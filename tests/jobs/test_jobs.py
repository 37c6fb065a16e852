"""Jobs: parameters checked at submit time, the embedded worker runs a job in a child process
and stores the CLI's result, queued jobs wait for a locked project, cancel and retry follow
their rules, a job whose worker died is failed with a reason code, a running training job
cancels with a checkpoint."""

from __future__ import annotations

import threading
import time

import pytest

from brewslm import locks
from brewslm.errors import InputError, NotFoundError
from brewslm.events import query
from brewslm.jobs import service, worker

pytestmark = pytest.mark.store


@pytest.fixture
def info():
    from brewslm import project

    return project.create("jobbed", base_model="builtin:tiny")


def codes(info) -> list[str]:
    return [e["reason_code"] for e in query.events(info)]


def test_bad_kinds_and_parameters_are_refused_at_submit(info):
    with pytest.raises(InputError) as unknown:
        service.submit(info, "bake", {})
    assert unknown.value.code == "job_kind_unknown"
    with pytest.raises(InputError) as bad:
        service.submit(info, "ingest", {"sauce": "x"})
    assert bad.value.code == "job_params_invalid"
    assert bad.value.details["unknown"] == ["sauce"] and bad.value.details["missing"] == [
        "source"]
    with pytest.raises(NotFoundError):
        service.get("job-nope")
    assert service.list_jobs(info) == []


def test_the_worker_runs_a_job_and_stores_the_cli_result(info, rows_file):
    job = service.submit(info, "ingest", {"source": str(rows_file)})
    assert job["status"] == "queued" and job["queue"] == "embedded"
    assert worker.run_worker(once=True) == 1
    done = service.get(job["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    assert done["result"]["stage"] == "ingest" and done["result"]["status"] == "succeeded"
    assert done["result"]["counts"] == {"in": 40, "out": 40, "rejected": 0}
    assert done["run_id"] is None or done["run_id"] == done["result"]["run_id"]
    log = service.log_tail(job["id"])["lines"]
    assert any("ingest on project jobbed" in line for line in log)
    assert log[-1].endswith("succeeded")
    assert {"job_queued", "job_succeeded"} <= set(codes(info))


def test_a_failing_stage_fails_its_job_and_retry_queues_it_again(info, tmp_path):
    job = service.submit(info, "ingest", {"source": str(tmp_path / "missing.jsonl")})
    worker.run_worker(once=True)
    failed = service.get(job["id"])
    assert failed["status"] == "failed" and failed["exit_code"] == 2
    assert failed["error_code"] == failed["result"]["error"]["code"]
    with pytest.raises(InputError) as finished:
        service.cancel(job["id"])
    assert finished.value.code == "job_not_cancellable"
    again = service.retry(job["id"])
    assert again["retry_of"] == job["id"] and again["params"] == job["params"]
    assert service.cancel(again["id"])["status"] == "cancelled"  # queued: at once
    with pytest.raises(InputError) as retried:
        service.retry(service.submit(info, "introspect", {})["id"])
    assert retried.value.code == "job_not_retryable"
    assert "job_failed" in codes(info)


def test_a_locked_project_keeps_its_job_queued(info, rows_file):
    job = service.submit(info, "ingest", {"source": str(rows_file)})
    with locks.project_lock(info.dir, project=info.name, stage="clean", run_id="run-x"):
        assert worker.run_worker(once=True) == 0
        assert service.get(job["id"])["status"] == "queued"
    assert worker.run_worker(once=True) == 1
    assert service.get(job["id"])["status"] == "succeeded"


def test_a_job_whose_worker_died_is_failed_with_a_reason(info, rows_file):
    job = service.submit(info, "ingest", {"source": str(rows_file)})
    assert service.claim(job["id"], "ghost:1")
    assert not service.claim(job["id"], "other:2")  # claimed once only
    assert service.recover_lost() == []  # its heartbeat is fresh
    time.sleep(0.05)
    assert service.recover_lost(lost_after_s=0.01) == [job["id"]]
    lost = service.get(job["id"])
    assert (lost["status"], lost["error_code"]) == ("failed", "job_worker_lost")
    assert "job_worker_lost" in codes(info)
    assert service.retry(job["id"])["status"] == "queued"


def test_cancelling_a_running_training_job_leaves_a_checkpoint(prepare_small):
    prepared = prepare_small("longtrain")
    job = service.submit(prepared, "train", {"overrides": [
        "max_steps=2000", "save_every=5", "logging_every=1"]})
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_worker, kwargs={"stop": stop, "poll_s": 0.1})
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            progress = service.get(job["id"])["progress"] or {}
            if progress.get("task") == "train" and (progress.get("done") or 0) >= 6:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"training never progressed: {service.get(job['id'])}")
        assert service.cancel(job["id"])["cancel_requested"] is True
        while service.get(job["id"])["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    done = service.get(job["id"])
    assert done["status"] == "cancelled" and done["error_code"] == "train_cancelled"
    error = done["result"]["error"]
    assert error["details"]["checkpoint"] and "checkpoint-" in error["details"]["checkpoint"]
