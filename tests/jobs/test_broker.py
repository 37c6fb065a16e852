"""Jobs through the task queue (RQ over a real Redis): a broker job is left alone by the
embedded worker and run by `brewslm worker --once`; two workers never run a job twice, even
one enqueued twice; a 2-process training job runs through it; an unreachable Redis leaves the
job queued with job_queue_unavailable until a worker enqueues it again.

    make test-queue         # installs Debian's redis-server when missing, then runs this file

Each test module run starts its own redis-server on 127.0.0.1 (a free port, no persistence);
the module is skipped when redis-server is not on PATH.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest

from brewslm.events import query
from brewslm.jobs import broker, service, worker

pytestmark = [pytest.mark.store, pytest.mark.queue]

if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not on PATH (`make test-queue` installs it)",
                allow_module_level=True)
pytest.importorskip("rq", reason="rq is not installed (pip install -e '.[queue]')")
redis = pytest.importorskip("redis", reason="redis is not installed (pip install -e '.[queue]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port():
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    yield port
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def queue_url(redis_port, monkeypatch):
    with redis.Redis(port=redis_port) as client:
        client.flushdb()
    address = f"redis://127.0.0.1:{redis_port}/0"
    monkeypatch.setenv("BREWSLM_QUEUE_URL", address)
    return address


@pytest.fixture
def info():
    from brewslm import project

    return project.create("queued", base_model="builtin:tiny")


def rows(tmp_path, name: str = "rows", n: int = 40):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(f'{{"instruction": "{name} ticket {i}: app {i % 7} broken", '
                            f'"response": "category {i % 3}"}}\n' for i in range(n)))
    return path


def run_workers(count: int = 1, timeout: float = 300) -> list[str]:
    """`brewslm worker --once` in `count` processes at once; their stderr."""
    procs = [subprocess.Popen([sys.executable, "-m", "brewslm", "worker", "--once"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    errs = []
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        errs.append(err)
    return errs


def events_of(info, code: str) -> list[dict]:
    return [e for e in query.events(info) if e["reason_code"] == code]


def test_a_broker_job_is_left_to_brewslm_worker_and_gets_the_cli_result(info, tmp_path):
    job = service.submit(info, "ingest", {"source": str(rows(tmp_path))})
    assert (job["status"], job["queue"], job["error_code"]) == ("queued", "broker", None)
    assert worker.run_worker(once=True) == 0  # the embedded worker leaves it alone
    assert service.get(job["id"])["status"] == "queued"
    dropped = service.cancel(service.submit(info, "introspect", {})["id"])  # still on the queue

    run_workers()
    assert service.get(dropped["id"])["status"] == "cancelled"  # its claim failed: not run
    done = service.get(job["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    assert done["result"]["stage"] == "ingest" and done["result"]["status"] == "succeeded"
    assert done["result"]["counts"] == {"in": 40, "out": 40, "rejected": 0}
    assert done["worker"] and done["worker"] != service.this_worker()
    assert service.log_tail(done["id"])["lines"][-1].endswith("succeeded")


def test_two_workers_run_each_job_once_even_when_enqueued_twice(info, tmp_path):
    jobs = [service.submit(info, "ingest", {"source": str(rows(tmp_path, f"part{i}"))})
            for i in range(3)]
    for job in jobs:
        assert broker.enqueue(job["id"])  # a second copy on the queue: the claim refuses it

    logs = run_workers(2)
    assert not any("stranded" in log for log in logs)  # all held by the queue already
    for job in jobs:
        done = service.get(job["id"])
        assert done["status"] == "succeeded", done  # never stage_locked: one per project
        started = [line for line in service.log_tail(job["id"], 0)["lines"]
                   if line.endswith(f"job {job['id']}: ingest on project queued with "
                                    f"{job['params']}")]
        assert len(started) == 1
    succeeded = [e["payload"]["job_id"] for e in events_of(info, "job_succeeded")]
    assert sorted(succeeded) == sorted(job["id"] for job in jobs)


def test_a_two_process_training_job_runs_through_the_queue(prepare_small):
    prepared = prepare_small("brokered")
    job = service.submit(prepared, "train", {"processes": 2, "overrides": ["max_steps=4"]})
    assert job["queue"] == "broker"
    run_workers(timeout=600)
    done = service.get(job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["world_size"] == 2 and result["steps"] == 4
    assert sorted(r["rank"] for r in result["ranks"]) == [0, 1]
    assert len({r["pid"] for r in result["ranks"]}) == 2
    assert done["run_id"] == result["run_id"]


def test_an_unreachable_queue_leaves_the_job_queued_until_a_worker_enqueues_it(
        info, tmp_path, monkeypatch, queue_url):
    monkeypatch.setenv("BREWSLM_QUEUE_URL", f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    job = service.submit(info, "ingest", {"source": str(rows(tmp_path))})  # returns the job
    assert (job["status"], job["queue"]) == ("queued", "broker")
    assert job["error_code"] == "job_queue_unavailable"
    assert "cannot reach the task queue" in job["error_message"]
    assert "s3cret" not in job["error_message"]
    [event] = events_of(info, "job_queue_unavailable")
    assert event["payload"]["job_id"] == job["id"] and "s3cret" not in str(event)

    monkeypatch.setenv("BREWSLM_QUEUE_URL", queue_url)  # Redis is back
    [log] = run_workers()  # its start-up sweep enqueues the stranded job, then runs it
    assert f"enqueued stranded jobs {job['id']}" in log
    done = service.get(job["id"])
    assert (done["status"], done["error_code"]) == ("succeeded", None)


def test_a_missing_client_or_a_wrong_url_is_recorded_not_raised(info, tmp_path,
                                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "rq", None)  # as if the queue extra were not installed
    job = service.submit(info, "ingest", {"source": str(rows(tmp_path))})
    assert job["error_code"] == "job_queue_unavailable" and "brewslm[queue]" in job[
        "error_message"]
    monkeypatch.delitem(sys.modules, "rq")
    monkeypatch.setenv("BREWSLM_QUEUE_URL", "amqp://127.0.0.1/")
    job = service.submit(info, "ingest", {"source": str(rows(tmp_path))})
    assert job["error_code"] == "job_queue_unavailable" and "not a Redis URL" in job[
        "error_message"]
    assert service.get(job["id"])["status"] == "queued"
