"""Stage 02, introspect: read a sample of the snapshot, profile its fields, rank mapping
hypotheses with a confidence and a rationale, and propose one.

    brewslm introspect -p NAME [--snapshot ID] [--json]

Contract: reads, never writes rows. The report (fields, hypotheses, proposal) is an artifact
that map reads; below confidence 0.8 the proposal is not auto-picked (map refuses without
--mapper or --force).
"""

from __future__ import annotations

import json
from typing import Any

from brewslm.mappers.introspect import AUTO_PICK_THRESHOLD, profile_fields, propose
from brewslm.stages.base import StageContext
from brewslm.stages.ingest import sample_records

SAMPLE = 1000
REPORT = "introspection.json"


class IntrospectStage:
    name, number, version = "introspect", 2, "1"
    inputs = ("snapshot",)
    outputs = ("introspection",)

    def validate(self, ctx: StageContext) -> None:
        pass  # the runner has checked the snapshot exists and is complete

    def run(self, ctx: StageContext) -> dict[str, Any]:
        records = sample_records(ctx.inputs["snapshot"].path, SAMPLE)
        fields = [f.to_dict() for f in profile_fields(records)]
        hypotheses = [h.to_dict() for h in propose(records)]
        proposal = _proposal(hypotheses)
        report = {"snapshot_id": ctx.inputs["snapshot"].id, "sampled": len(records),
                  "fields": fields, "hypotheses": hypotheses, "proposal": proposal,
                  "threshold": AUTO_PICK_THRESHOLD}
        builder = ctx.new_artifact("introspection")
        (builder.dir / REPORT).write_text(json.dumps(report, indent=2, sort_keys=True))
        ctx.publish("introspection", builder, {"snapshot_id": report["snapshot_id"]})
        self._warn(ctx, proposal, hypotheses)
        return {"proposal": proposal, "hypotheses": hypotheses, "fields": fields,
                "sampled": len(records), "snapshot_id": report["snapshot_id"]}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass  # no rows are written: the runner finds no ledger to check

    def _warn(self, ctx: StageContext, proposal: dict[str, Any] | None,
              hypotheses: list[dict[str, Any]]) -> None:
        if proposal is None:
            ctx.emit("introspect_no_shape", "no known shape fits the sampled records")
        elif not proposal["auto_pick"]:
            ctx.emit("introspect_low_confidence",
                     f"best hypothesis {proposal['mapper']} has confidence "
                     f"{proposal['confidence']:.2f} < {AUTO_PICK_THRESHOLD}",
                     hypotheses=hypotheses[:3])


def _proposal(hypotheses: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not hypotheses:
        return None
    best = hypotheses[0]
    return {"mapper": best["mapper"], "field_map": best["field_map"],
            "confidence": best["confidence"], "rationale": best["rationale"],
            "auto_pick": best["confidence"] >= AUTO_PICK_THRESHOLD}


def read_report(introspection_dir) -> dict[str, Any]:
    return json.loads((introspection_dir / REPORT).read_text())
