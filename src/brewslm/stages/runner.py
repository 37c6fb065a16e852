"""The stage runner: every stage run goes through `run_stage`, which owns the spine's promises.

    result = run_stage(MyStage(), project.get("tickets"), params={...}, inputs={"dataset": id})
    result.status, result.exit_code, result.to_dict()

In order: take the project's lock (refusing with the holder's name), resolve input artifacts,
reuse an identical earlier run, emit stage_started, validate, run, check the contract
(declared outputs present; ledger in = out + dropped), then commit outputs and ledger and emit
stage_succeeded. Any failure discards what the run half-wrote and leaves the run failed (or
blocked) with a reason-coded event. A run whose process died is marked stage_interrupted by
`recover_interrupted`, which every CLI command calls first.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from brewslm import artifacts, locks
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.events import collect_events, emit_event
from brewslm.ledger import LedgerStats
from brewslm.project import ProjectInfo
from brewslm.stages.base import Stage, StageContext
from brewslm.store import session
from brewslm.store.models import Project, StageRun


@dataclass
class StageResult:
    stage: str
    run_id: str
    status: str  # succeeded / failed / blocked / reused
    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    exit_code: int = 0
    reused_from: str | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"stage": self.stage, "run_id": self.run_id, "status": self.status,
               "events": self.events, "outputs": self.outputs, **self.result,
               "duration_s": self.duration_s}
        if self.ledger:
            out["counts"] = {"in": self.ledger["in"], "out": self.ledger["out"],
                             "rejected": self.ledger["dropped"]}
            out["rejections_by_reason"] = self.ledger["by_reason"]
            if self.ledger.get("notes"):  # rows kept or changed with a code (pii_found, ...)
                out["notes_by_reason"] = self.ledger["notes"]
        if self.reused_from:
            out["reused_from"] = self.reused_from
        if self.error:
            out["error"] = self.error
        return out


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:16]


def fingerprint(stage: Stage, params: dict[str, Any], inputs: dict[str, str]) -> str:
    key = {"stage": stage.name, "version": stage.version, "params": params, "inputs": inputs}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def run_stage(stage: Stage, project: ProjectInfo, *, params: dict[str, Any] | None = None,
              inputs: dict[str, str] | None = None, parent_run_id: str | None = None,
              reuse: bool = True) -> StageResult:
    """Run one stage on a project; raises InputError(stage_locked) if the project is busy."""
    run_id = new_run_id()
    ctx = StageContext(project, stage.name, run_id, parent_run_id, dict(params or {}))
    with collect_events() as events:
        try:
            with locks.project_lock(project.dir, project=project.name, stage=stage.name,
                                    run_id=run_id):
                result = _run_locked(stage, ctx, inputs or {}, reuse)
        except InputError as exc:
            if exc.code == "stage_locked":
                emit_event("stage_locked", exc.message, project_id=project.id, stage=stage.name,
                           parent_run_id=parent_run_id, payload=exc.details)
            raise
    result.events = events
    return result


def _run_locked(stage: Stage, ctx: StageContext, inputs: dict[str, str],
                reuse: bool) -> StageResult:
    _insert_run(ctx)
    started = time.monotonic()
    try:
        ctx.inputs = _resolve_inputs(stage, ctx, inputs)
        # A stage may key reuse on more than its parameters (ingest: the source's content).
        extra = stage.cache_key(ctx) if hasattr(stage, "cache_key") else {}
        input_ids = {k: a.id for k, a in ctx.inputs.items()}
        fp = fingerprint(stage, {**ctx.params, **extra}, input_ids)
        _set_run(ctx.run_id, fingerprint=fp, inputs=input_ids)
        prior = _reusable_run(ctx, fp) if reuse else None
        if prior is not None:
            return _record_reuse(ctx, prior)
        ctx.emit("stage_started", f"{ctx.stage} started", params=ctx.params)
        stage.validate(ctx)
        result = stage.run(ctx) or {}
        ledger = ctx.close_ledger()
        _check_contract(stage, ctx, result, ledger)
    except BaseException as exc:
        ctx.abort()
        failed = _record_failure(ctx, exc, time.monotonic() - started)
        if not isinstance(exc, Exception):
            raise
        return failed
    finally:
        if hasattr(stage, "cleanup"):  # optional: temporary files the stage made
            stage.cleanup(ctx)
    ctx.commit()
    if ctx.gate is not None:  # refused by a gate, with its outputs kept as evidence
        return _record_gated(ctx, result, ledger, time.monotonic() - started)
    return _record_success(ctx, result, ledger, time.monotonic() - started)


def _resolve_inputs(stage: Stage, ctx: StageContext, inputs: dict[str, str]):
    missing = [slot for slot in stage.inputs if slot not in inputs]
    if missing:
        raise InputError("stage_input_missing",
                         f"{ctx.stage} needs input artifact(s) {missing}; run the stage that "
                         "produces them first", missing=missing)
    resolved = {}
    for slot, art_id in inputs.items():
        try:
            resolved[slot] = artifacts.get(ctx.project, art_id)
        except InputError as exc:
            raise InputError("stage_input_missing",
                             f"{ctx.stage} input {slot!r}: {exc.message}", slot=slot) from None
    return resolved


def _check_contract(stage: Stage, ctx: StageContext, result: dict[str, Any],
                    ledger: LedgerStats | None) -> None:
    missing = [slot for slot in stage.outputs if slot not in ctx.outputs]
    if missing:
        raise BrewError("contract_violated", f"{ctx.stage} did not produce {missing}",
                        missing=missing)
    if ledger is not None and not ledger.balanced:
        raise BrewError("contract_violated",
                        f"{ctx.stage}: rows in ({ledger.rows_in}) != out ({ledger.out}) + "
                        f"dropped ({ledger.dropped})", ledger=ledger.to_dict())
    stage.check_contract(ctx, result)


def _insert_run(ctx: StageContext) -> None:
    with session() as s:
        s.add(StageRun(run_id=ctx.run_id, project_id=ctx.project.id,
                       parent_run_id=ctx.parent_run_id, stage=ctx.stage, status="running",
                       parameters=ctx.params, inputs={}, outputs={}, result={},
                       pid=os.getpid(), host=locks.this_host()))


def _set_run(run_id: str, **values: Any) -> None:
    with session() as s:
        row = s.get(StageRun, run_id)
        for key, value in values.items():
            setattr(row, key, value)


def _finish(run_id: str, status: str, duration: float, **values: Any) -> None:
    _set_run(run_id, status=status, finished_at=datetime.now(UTC), duration_s=duration, **values)


def _reusable_run(ctx: StageContext, fp: str) -> StageRun | None:
    with session() as s:
        prior = s.scalars(select(StageRun).where(
            StageRun.project_id == ctx.project.id, StageRun.fingerprint == fp,
            StageRun.status == "succeeded").order_by(StageRun.started_at.desc())).first()
    if prior is None:
        return None
    for art_id in prior.outputs.values():
        try:
            artifacts.get(ctx.project, art_id)
        except InputError:
            return None  # an output was removed since: compute afresh
    return prior


def _record_reuse(ctx: StageContext, prior: StageRun) -> StageResult:
    _finish(ctx.run_id, "reused", 0.0, outputs=prior.outputs, result=prior.result,
            reused_from=prior.run_id)
    ctx.emit("stage_reused", f"{ctx.stage} reused run {prior.run_id} (same inputs and "
             "parameters)", reused_from=prior.run_id)
    outputs = {slot: artifacts.get(ctx.project, art_id).to_dict()
               for slot, art_id in prior.outputs.items()}
    return StageResult(ctx.stage, ctx.run_id, "reused", outputs=outputs, result=prior.result,
                       ledger=prior.ledger, reused_from=prior.run_id, duration_s=0.0)


def _record_success(ctx: StageContext, result: dict[str, Any], ledger: LedgerStats | None,
                    duration: float) -> StageResult:
    outputs = {slot: art.id for slot, art in ctx.outputs.items()}
    ledger_dict = ledger.to_dict() if ledger else None
    _finish(ctx.run_id, "succeeded", duration, outputs=outputs, result=result, ledger=ledger_dict)
    ctx.emit("stage_succeeded", f"{ctx.stage} succeeded in {duration:.2f}s",
             outputs=outputs, ledger=ledger_dict)
    return StageResult(ctx.stage, ctx.run_id, "succeeded",
                       outputs={k: a.to_dict() for k, a in ctx.outputs.items()}, result=result,
                       ledger=ledger_dict, duration_s=round(duration, 3))


def _record_gated(ctx: StageContext, result: dict[str, Any], ledger: LedgerStats | None,
                  duration: float) -> StageResult:
    exc = ctx.gate
    outputs = {slot: art.id for slot, art in ctx.outputs.items()}
    ledger_dict = ledger.to_dict() if ledger else None
    error = {**exc.to_dict(), "exception_type": type(exc).__name__}
    _finish(ctx.run_id, "blocked", duration, outputs=outputs, result=result, ledger=ledger_dict,
            error_code=exc.code, error_message=exc.message)
    ctx.emit("stage_blocked", f"{ctx.stage} blocked [{exc.code}]: {exc.message}", cause=exc.code,
             outputs=outputs, **{k: v for k, v in error.items() if k != "code"})
    return StageResult(ctx.stage, ctx.run_id, "blocked",
                       outputs={k: a.to_dict() for k, a in ctx.outputs.items()}, result=result,
                       ledger=ledger_dict, error=error, exit_code=exc.exit_code,
                       duration_s=round(duration, 3))


def _record_failure(ctx: StageContext, exc: BaseException, duration: float) -> StageResult:
    status, code, exit_code, error = _classify(exc)
    # A gate may say what it found (BlockedError.result): kept, so a blocked run explains itself.
    result = getattr(exc, "result", None) or {}
    _finish(ctx.run_id, status, duration, error_code=code, error_message=error["message"],
            result=result)
    event = "stage_blocked" if status == "blocked" else "stage_failed"
    ctx.emit(event, f"{ctx.stage} {status} [{code}]: {error['message']}", cause=code,
             **{k: v for k, v in error.items() if k != "code"})
    return StageResult(ctx.stage, ctx.run_id, status, result=result, error=error,
                       exit_code=exit_code, duration_s=round(duration, 3))


def _classify(exc: BaseException) -> tuple[str, str, int, dict[str, Any]]:
    if isinstance(exc, BrewError):
        status = "blocked" if isinstance(exc, BlockedError) else "failed"
        return status, exc.code, exc.exit_code, {**exc.to_dict(),
                                                 "exception_type": type(exc).__name__}
    code = "stage_crashed" if isinstance(exc, Exception) else "stage_interrupted"
    error = {"code": code, "message": f"{type(exc).__name__}: {exc}",
             "exception_type": type(exc).__name__,
             "traceback": "".join(traceback.format_exception(exc))[-4000:]}
    return "failed", code, 1, error


def recover_interrupted() -> list[str]:
    """Mark failed every run of this host left `running` by a process that no longer holds its
    project's lock (it was killed or crashed); returns their run ids."""
    with session() as s:
        rows = s.execute(select(StageRun.run_id, StageRun.stage, StageRun.parent_run_id,
                                StageRun.pid, Project.id, Project.name)
                         .join(Project, Project.id == StageRun.project_id)
                         .where(StageRun.status == "running",
                                StageRun.host == locks.this_host())).all()
    recovered = []
    for run_id, stage, parent, pid, project_id, name in rows:
        info = ProjectInfo(project_id, name, None, None)
        if locks.is_locked(info.dir):
            continue
        _finish(run_id, "failed", 0.0, error_code="stage_interrupted",
                error_message=f"process {pid} died while the run was in progress")
        emit_event("stage_interrupted", f"{stage} run {run_id} was interrupted (process {pid} "
                   "died); marked failed", project_id=project_id, run_id=run_id,
                   parent_run_id=parent, stage=stage, payload={"pid": pid})
        recovered.append(run_id)
    return recovered
