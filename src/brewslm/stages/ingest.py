"""Stage 01, ingest: read a source into an immutable, content-addressed raw snapshot.

    brewslm ingest -p NAME SOURCE [--format F] [--blocks] [--json]

Contract: every source record is in the snapshot or in the ledger as malformed, with its file
and position. The snapshot (records.parquet: row_id, file, position, record as JSON) holds no
path or time, so the same input gives the same snapshot id; the run's reuse key is the source's
content digest, so re-ingesting unchanged data reuses the earlier run. A source that cannot be
read at all fails with exit 2 and nothing written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brewslm.ledger import make_row_id
from brewslm.sources import open_source
from brewslm.sources.base import Malformed, OpenedSource
from brewslm.stages.base import StageContext

BATCH = 10_000
PROGRESS_EVERY = 50_000
RECORDS = "records.parquet"
SCHEMA = pa.schema([("row_id", pa.string()), ("file", pa.string()),
                    ("position", pa.string()), ("record", pa.string())])


class IngestStage:
    name, number, version = "ingest", 1, "1"
    inputs: tuple[str, ...] = ()
    outputs = ("snapshot",)

    def cache_key(self, ctx: StageContext) -> dict[str, Any]:
        # The content, not the spelling of the path: the same data reuses the same snapshot.
        return {"source": None, "content": self._open(ctx).content_digest}

    def cleanup(self, ctx: StageContext) -> None:
        shutil.rmtree(ctx.scratch.get("workdir", ""), ignore_errors=True)

    def validate(self, ctx: StageContext) -> None:
        self._open(ctx)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        opened: OpenedSource = ctx.scratch["opened"]
        namespaces = {f.name: f.sha256 for f in opened.files}
        builder = ctx.new_artifact("snapshot")
        with pq.ParquetWriter(builder.dir / RECORDS, SCHEMA, compression="zstd") as out:
            records = self._write(ctx, opened, namespaces, out)
        self._write_manifest(builder.dir, opened, records)
        art = ctx.publish("snapshot", builder, {"source": opened.spec, "kind": opened.kind,
                                                "records": records})
        stats = ctx.ledger.stats
        ctx.emit("snapshot_created", f"snapshot {art.id[:12]}: {records} records, "
                 f"{stats.dropped} malformed", snapshot_id=art.id, records=records,
                 malformed=ctx.ledger.reasons())
        return {"snapshot_id": art.id, "source": opened.spec, "files": len(opened.files)}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass  # in = records + malformed is the runner's ledger check

    def _open(self, ctx: StageContext) -> OpenedSource:
        if "opened" not in ctx.scratch:
            workdir = Path(tempfile.mkdtemp(prefix="brewslm-ingest-"))
            ctx.scratch["workdir"] = workdir
            ctx.scratch["opened"] = open_source(ctx.params["source"], fmt=ctx.params.get("format"),
                                                text_blocks=bool(ctx.params.get("text_blocks")),
                                                workdir=workdir)
        return ctx.scratch["opened"]

    def _write(self, ctx: StageContext, opened: OpenedSource, namespaces: dict[str, str],
               out: pq.ParquetWriter) -> int:
        ledger, cols, records = ctx.ledger, {n: [] for n in SCHEMA.names}, 0
        for item in opened.items:
            ledger.count_in()
            row_id = make_row_id(f"{namespaces.get(item.file, '')}:{item.file}", item.position)
            if isinstance(item, Malformed):
                ledger.dropped(row_id, item.code, source=item.file, position=item.position,
                               detail=item.detail)
            else:
                ledger.kept(row_id, source=item.file, position=item.position)
                for name, value in zip(SCHEMA.names, (row_id, item.file, item.position,
                                                      _dump(item.data)), strict=True):
                    cols[name].append(value)
                records += 1
                if len(cols["row_id"]) >= BATCH:
                    cols = _flush(out, cols)
            if ledger.stats.rows_in % PROGRESS_EVERY == 0:
                ctx.progress(ledger.stats.rows_in)
        _flush(out, cols)
        return records

    def _write_manifest(self, folder: Path, opened: OpenedSource, records: int) -> None:
        manifest = {"kind": opened.kind, "records": records, "options": opened.options,
                    "files": [{"name": f.name, "sha256": f.sha256, "size_bytes": f.size_bytes,
                               "format": f.format} for f in opened.files]}
        (folder / "snapshot.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


def _flush(out: pq.ParquetWriter, cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
    if cols["row_id"]:
        out.write_batch(pa.RecordBatch.from_pydict(cols, schema=SCHEMA))
    return {n: [] for n in SCHEMA.names}


def read_records(snapshot_dir: Path, *, batch_size: int = BATCH):
    """Yield (row_id, file, position, record dict) from a snapshot, a batch at a time."""
    for batch in pq.ParquetFile(snapshot_dir / RECORDS).iter_batches(batch_size=batch_size):
        cols = batch.to_pydict()
        for row_id, file, position, record in zip(cols["row_id"], cols["file"],
                                                  cols["position"], cols["record"], strict=True):
            yield row_id, file, position, json.loads(record)


def sample_records(snapshot_dir: Path, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to `limit` records spread evenly over the snapshot (deterministic)."""
    file = pq.ParquetFile(snapshot_dir / RECORDS)
    step = max(1, file.metadata.num_rows // limit)
    picked, offset = [], 0
    for batch in file.iter_batches(batch_size=BATCH, columns=["record"]):
        texts = batch.column("record").to_pylist()
        first = (-offset) % step  # the first index in this batch that is a multiple of step
        picked += [json.loads(t) for t in texts[first::step]]
        offset += len(texts)
    return picked[:limit]
