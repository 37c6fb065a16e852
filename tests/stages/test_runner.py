"""The stage runner: events for every transition, reuse, failure classes, the contract, the
per-project lock across processes, and recovery of runs whose process was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from brewslm import artifacts, project
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.events import query
from brewslm.ledger import ledger_path
from brewslm.stages.base import StageContext
from brewslm.stages.runner import recover_interrupted, run_stage

pytestmark = pytest.mark.store


class FakeStage:
    """A small row stage whose behaviour each test picks."""

    name, number, version = "clean", 5, "1"
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("dataset",)

    def __init__(self, fail: BaseException | None = None, unbalanced: bool = False,
                 validate_error: InputError | None = None) -> None:
        self.fail, self.unbalanced, self.validate_error = fail, unbalanced, validate_error
        self.calls = 0

    def validate(self, ctx: StageContext) -> None:
        if self.validate_error:
            raise self.validate_error

    def run(self, ctx: StageContext) -> dict[str, Any]:
        self.calls += 1
        builder = ctx.new_artifact("dataset")
        (builder.dir / "rows.txt").write_text(f"rows for {ctx.params}")
        ctx.publish("dataset", builder)
        ctx.ledger.count_in(3 + self.unbalanced)
        ctx.ledger.kept("r1")
        ctx.ledger.changed("r2", "trimmed")
        ctx.ledger.dropped("r3", "synthetic_row_rejected")
        if self.fail:
            raise self.fail
        return {"answer": 42}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass


@pytest.fixture
def proj():
    return project.create("p1")


def _codes(result) -> list[str]:
    return [e["reason_code"] for e in result.events]


def test_success_records_run_outputs_ledger_and_events(proj):
    result = run_stage(FakeStage(), proj, params={"k": 1})
    assert result.status == "succeeded" and result.exit_code == 0
    assert _codes(result) == ["stage_started", "stage_succeeded"]
    out = result.to_dict()
    assert out["answer"] == 42
    assert out["counts"] == {"in": 3, "out": 2, "rejected": 1}
    assert out["rejections_by_reason"] == {"synthetic_row_rejected": 1}
    run = query.get_run(proj, result.run_id)
    assert run["status"] == "succeeded" and run["outputs"]["dataset"] == out["outputs"][
        "dataset"]["id"]
    assert run["parameters"] == {"k": 1} and run["duration_s"] is not None
    assert ledger_path(proj.dir, "clean", result.run_id).exists()
    assert [a.kind for a in artifacts.list_artifacts(proj)] == ["dataset"]


def test_same_inputs_and_parameters_reuse_the_result(proj):
    stage = FakeStage()
    first = run_stage(stage, proj, params={"k": 1})
    second = run_stage(stage, proj, params={"k": 1})
    assert stage.calls == 1
    assert second.status == "reused" and second.reused_from == first.run_id
    assert _codes(second) == ["stage_reused"]
    assert second.to_dict()["counts"] == first.to_dict()["counts"]
    third = run_stage(stage, proj, params={"k": 2})
    assert third.status == "succeeded" and stage.calls == 2


def test_reuse_is_skipped_when_an_output_was_removed(proj):
    stage = FakeStage()
    first = run_stage(stage, proj)
    art = artifacts.get(proj, first.outputs["dataset"]["id"])
    (art.path.parent / "artifact.json").unlink()
    assert run_stage(stage, proj).status == "succeeded" and stage.calls == 2


def test_crash_marks_run_failed_with_exception_type_and_discards_outputs(proj):
    result = run_stage(FakeStage(fail=ZeroDivisionError("boom")), proj)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert _codes(result) == ["stage_started", "stage_failed"]
    event = query.events(proj, query.make_filter(code="stage_failed"))[0]
    assert event["payload"]["cause"] == "stage_crashed"
    assert event["payload"]["exception_type"] == "ZeroDivisionError"
    assert "boom" in event["summary"] and "Traceback" in event["payload"]["traceback"]
    assert query.get_run(proj, result.run_id)["error_code"] == "stage_crashed"
    assert artifacts.list_artifacts(proj) == []
    assert not list((proj.dir / "artifacts").glob("[0-9a-f]*"))
    assert not ledger_path(proj.dir, "clean", result.run_id).exists()
    assert not list((proj.dir / "ledger").rglob("*.tmp"))


def test_bad_input_fails_with_exit_2_and_its_own_code(proj):
    err = InputError("stage_params_invalid", "rows must be positive", field="rows")
    result = run_stage(FakeStage(validate_error=err), proj)
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error["code"] == "stage_params_invalid"
    assert result.error["details"] == {"field": "rows"}


def test_a_gate_blocks_with_exit_3(proj):
    result = run_stage(FakeStage(fail=BlockedError("stage_blocked", "not promotable")), proj)
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert _codes(result) == ["stage_started", "stage_blocked"]
    assert query.get_run(proj, result.run_id)["status"] == "blocked"


def test_a_blocked_run_keeps_what_the_gate_found(proj):
    found = {"verdict": "BLOCK", "blockers": [{"reason_code": "preflight_memory_exceeded"}]}
    gate = BlockedError("preflight_blocked", "does not fit", result=found)
    result = run_stage(FakeStage(fail=gate), proj)
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert result.result == found
    out = result.to_dict()
    assert out["verdict"] == "BLOCK" and out["error"]["code"] == "preflight_blocked"
    assert query.get_run(proj, result.run_id)["result"] == found
    failed = run_stage(FakeStage(fail=BrewError("stage_crashed", "boom")), proj)
    assert failed.result == {} and query.get_run(proj, failed.run_id)["result"] == {}


def test_unbalanced_ledger_violates_the_contract(proj):
    result = run_stage(FakeStage(unbalanced=True), proj)
    assert result.status == "failed" and result.error["code"] == "contract_violated"
    assert "rows in (4) != out (2) + dropped (1)" in result.error["message"]
    event = query.events(proj, query.make_filter(code="stage_failed"))[0]
    assert event["severity"] == "error" and event["payload"]["cause"] == "contract_violated"
    assert artifacts.list_artifacts(proj) == []


def test_missing_declared_input_is_refused(proj):
    class NeedsInput(FakeStage):
        inputs = ("dataset",)

    result = run_stage(NeedsInput(), proj)
    assert (result.status, result.error["code"]) == ("failed", "stage_input_missing")
    result = run_stage(NeedsInput(), proj, inputs={"dataset": "deadbeef"})
    assert result.error["code"] == "stage_input_missing" and "deadbeef" in result.error[
        "message"]


def test_dropping_a_row_without_a_code_is_refused():
    from brewslm.ledger import LedgerWriter

    writer = LedgerWriter(ledger_path(project.create("p2").dir, "clean", "run-x"),
                          stage="clean", run_id="run-x")
    with pytest.raises(BrewError) as exc:
        writer.dropped("r1", "")
    assert exc.value.code == "ledger_reason_missing"


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from brewslm import project
    from brewslm.stages.runner import run_stage

    class Sleepy:
        name, number, version = "train", 8, "1"
        inputs, outputs = (), ()
        def validate(self, ctx): pass
        def check_contract(self, ctx, result): pass
        def run(self, ctx):
            Path(sys.argv[1]).write_text(ctx.run_id)
            time.sleep(60)
            return {}

    run_stage(Sleepy(), project.get("p1"))
""")


def _start_holder(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ready)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        assert proc.poll() is None, "holder process died"
        assert time.monotonic() < deadline, "holder never started its stage"
        time.sleep(0.05)
    return proc, ready.read_text()


def test_second_run_while_one_runs_is_refused_naming_the_holder(proj, tmp_path):
    proc, holder_run = _start_holder(tmp_path)
    try:
        with pytest.raises(InputError) as exc:
            run_stage(FakeStage(), proj)
        assert exc.value.code == "stage_locked" and exc.value.exit_code == 2
        assert f"stage 'train' run {holder_run}" in exc.value.message
        assert f"pid {proc.pid}" in exc.value.message
        locked = query.events(proj, query.make_filter(code="stage_locked"))
        assert len(locked) == 1 and locked[0]["payload"]["holder"]["pid"] == proc.pid
        assert recover_interrupted() == []  # the holder is alive: its run is not interrupted
    finally:
        proc.kill()
        proc.wait()


def test_run_left_running_by_a_killed_process_is_marked_interrupted(proj, tmp_path):
    proc, holder_run = _start_holder(tmp_path)
    proc.kill()
    proc.wait()
    assert query.get_run(proj, holder_run)["status"] == "running"
    assert recover_interrupted() == [holder_run]
    run = query.get_run(proj, holder_run)
    assert (run["status"], run["error_code"]) == ("failed", "stage_interrupted")
    event = query.events(proj, query.make_filter(code="stage_interrupted"))[0]
    assert event["run_id"] == holder_run and event["severity"] == "error"
    assert recover_interrupted() == []
    assert run_stage(FakeStage(), proj).status == "succeeded"  # the lock is free again


def test_progress_reports_reach_the_reporter(proj):
    from brewslm import progress
    from brewslm.stages.synthetic import BATCH, SyntheticStage

    seen = []
    with progress.reporting(lambda task, done, total, fields: seen.append((task, done, total))):
        run_stage(SyntheticStage(), proj,
                  params={"rows": BATCH + 10, "reject_every": 7, "change_every": 5})
    assert seen == [("synthetic", BATCH, BATCH + 10), ("synthetic", BATCH + 10, BATCH + 10)]
