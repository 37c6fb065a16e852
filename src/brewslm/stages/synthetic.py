"""A diagnostic row stage over generated rows: it drives the spine (runner, ledger, artifacts)
at any scale without real data. The ledger test, `benchmarks/ledger.py` and the demo use it.

    brewslm selftest -p NAME --rows 1000000

Row i is dropped with `synthetic_row_rejected` when i % reject_every == 0, changed (text
upper-cased) when i % change_every == 0, and kept otherwise. Output: a Parquet dataset of the
rows that survive, written in batches so memory stays bounded.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brewslm.errors import BrewError, InputError
from brewslm.ledger import make_row_id
from brewslm.stages.base import StageContext

BATCH = 65_536
DATASET_SCHEMA = pa.schema([("row_id", pa.string()), ("text", pa.string())])


class SyntheticStage:
    name = "synthetic"
    number = 0
    version = "1"
    inputs: tuple[str, ...] = ()
    outputs = ("dataset",)

    def validate(self, ctx: StageContext) -> None:
        for key in ("rows", "reject_every", "change_every"):
            value = ctx.params.get(key)
            if not isinstance(value, int) or value < (0 if key == "rows" else 1):
                raise InputError("stage_params_invalid",
                                 f"synthetic: parameter {key!r} must be a positive integer, "
                                 f"got {value!r}", field=key)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        p = ctx.params
        builder = ctx.new_artifact("dataset")
        with pq.ParquetWriter(builder.dir / "rows.parquet", DATASET_SCHEMA) as out:
            for start in range(0, p["rows"], BATCH):
                ids, texts = self._batch(ctx, start, min(start + BATCH, p["rows"]))
                out.write_batch(pa.RecordBatch.from_pydict({"row_id": ids, "text": texts},
                                                           schema=DATASET_SCHEMA))
                ctx.progress(min(start + BATCH, p["rows"]), p["rows"])
        art = ctx.publish("dataset", builder, {"rows": ctx.ledger.stats.out})
        return {"dataset_id": art.id}

    def _batch(self, ctx: StageContext, start: int, stop: int) -> tuple[list[str], list[str]]:
        p, ledger = ctx.params, ctx.ledger
        ids, texts = [], []
        for i in range(start, stop):
            row_id = make_row_id(f"synthetic:{p.get('seed', 0)}", i)
            ledger.count_in()
            if i % p["reject_every"] == 0:
                ledger.dropped(row_id, "synthetic_row_rejected", source="synthetic",
                               position=f"row {i}")
                continue
            text = f"synthetic row {i}"
            if i % p["change_every"] == 0:
                text = text.upper()
                ledger.changed(row_id, "upper-cased", source="synthetic", position=f"row {i}")
            else:
                ledger.kept(row_id, source="synthetic", position=f"row {i}")
            ids.append(row_id)
            texts.append(text)
        return ids, texts

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        written = pq.ParquetFile(ctx.outputs["dataset"].path / "rows.parquet").metadata.num_rows
        if written != ctx.ledger.stats.out:
            raise BrewError("contract_violated",
                            f"dataset has {written} rows, ledger says {ctx.ledger.stats.out}")
