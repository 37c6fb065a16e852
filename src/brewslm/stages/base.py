"""The Stage protocol and the context the runner hands each stage.

A stage module reads like a recipe:

    class Clean:
        name, number, version = "clean", 5, "1"
        inputs, outputs = ("dataset",), ("dataset", "health_report")
        def validate(self, ctx): ...          # refuse bad input: raise InputError (exit 2)
        def run(self, ctx) -> dict: ...       # the work: ctx.ledger, ctx.new_artifact, ctx.emit
        def check_contract(self, ctx, result): ...   # extra promises beyond in = out + dropped

The runner (stages/runner.py) does the rest: lock, reuse, events, contract, recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from brewslm import artifacts, progress
from brewslm.artifacts import ArtifactBuilder, ArtifactInfo
from brewslm.events import emit_event
from brewslm.ledger import LedgerStats, LedgerWriter, ledger_path
from brewslm.project import ProjectInfo


class Stage(Protocol):
    name: str
    number: int
    version: str  # bump when the stage's output for the same input changes (breaks reuse)
    inputs: tuple[str, ...]  # artifact slots the stage reads
    outputs: tuple[str, ...]  # artifact slots it must produce

    def validate(self, ctx: StageContext) -> None: ...

    # Optional: `cache_key(ctx) -> dict` adds to the reuse fingerprint what parameters cannot
    # tell (ingest: the sha256 of the source's content). It may raise InputError.

    def run(self, ctx: StageContext) -> dict[str, Any]: ...

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None: ...


@dataclass
class StageContext:
    project: ProjectInfo
    stage: str
    run_id: str
    parent_run_id: str | None
    params: dict[str, Any]
    inputs: dict[str, ArtifactInfo] = field(default_factory=dict)
    outputs: dict[str, ArtifactInfo] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)  # passed from cache_key/validate to run
    _builders: list[ArtifactBuilder] = field(default_factory=list)
    _ledger: LedgerWriter | None = None
    gate: Any = None  # a BlockedError set by refuse_after_outputs()

    def emit(self, reason_code: str, summary: str, *, severity: str | None = None,
             **payload: Any) -> int | None:
        return emit_event(reason_code, summary, project_id=self.project.id, run_id=self.run_id,
                          parent_run_id=self.parent_run_id, stage=self.stage, severity=severity,
                          payload=payload)

    def progress(self, done: int, total: int | None = None, **fields: Any) -> None:
        """Report how far the run is (rows, steps); shown as a bar or stored by a job."""
        progress.report(self.stage, done, total, run_id=self.run_id, **fields)

    @property
    def ledger(self) -> LedgerWriter:
        """This run's ledger, opened on first use (stages that touch no rows never open it)."""
        if self._ledger is None:
            path = ledger_path(self.project.dir, self.stage, self.run_id)
            self._ledger = LedgerWriter(path, stage=self.stage, run_id=self.run_id)
        return self._ledger

    def new_artifact(self, kind: str) -> ArtifactBuilder:
        builder = ArtifactBuilder(self.project.dir, kind)
        self._builders.append(builder)
        return builder

    def publish(self, slot: str, builder: ArtifactBuilder,
                meta: dict[str, Any] | None = None) -> ArtifactInfo:
        """Publish a filled builder as this run's output `slot`."""
        art = artifacts.publish(builder, meta)
        self.outputs[slot] = art
        return art

    def refuse_after_outputs(self, exc: Any) -> None:
        """End the run `blocked` by a gate (exit 3) but keep its outputs and ledger: the
        evidence of a refusal (an eval report of a candidate that is not promotable) is an
        output the user needs. `exc` is the BlockedError to record."""
        self.gate = exc

    # --- used by the runner -------------------------------------------------------------
    def close_ledger(self) -> LedgerStats | None:
        return self._ledger.close() if self._ledger else None

    def commit(self) -> None:
        if self._ledger:
            self._ledger.commit()
        for art in self.outputs.values():
            artifacts.register(self.project, art, self.run_id)

    def abort(self) -> None:
        if self._ledger:
            self._ledger.abort()
        for builder in self._builders:
            builder.discard()
        for art in self.outputs.values():
            if art.created_new:
                artifacts.remove_unregistered(self.project, art)
