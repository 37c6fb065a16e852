"""Stages 03 and 04, map: turn snapshot records into canonical training rows.

    brewslm map -p NAME --dry-run          # 03: preview before -> after, rejections by reason
    brewslm map -p NAME [--mapper ID] [--field-map JSON] [--mapping ID] [--force]   # 04: commit

The mapping is introspection's proposal (refused below confidence 0.8 unless --force) or the
one the user names. Every record is mapped or rejected with a reason code: the dry-run writes
nothing and counts exactly what the commit will do; the commit writes a dataset version
(rows.parquet: row_id, task, row as canonical JSON), the mapping as its own artifact (its id
re-runs it), and the ledger, where in = accepted + rejected holds exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brewslm.errors import BrewError, InputError
from brewslm.events import taxonomy
from brewslm.mappers import BUILTIN_MAPPERS, check_field_map, load_plugin_mappers
from brewslm.mappers.base import Mapper
from brewslm.mappers.common import MISSING, resolve
from brewslm.mappers.introspect import AUTO_PICK_THRESHOLD
from brewslm.mappers.schema import validate_canonical
from brewslm.stages.base import StageContext
from brewslm.stages.ingest import read_records
from brewslm.stages.introspect import read_report

BATCH = 10_000
PREVIEW = 5
ROWS = "rows.parquet"
SCHEMA = pa.schema([("row_id", pa.string()), ("task", pa.string()), ("row", pa.string())])


class _MapBase:
    version = "1"
    inputs = ("snapshot",)

    def validate(self, ctx: StageContext) -> None:
        mappers = self._mappers(ctx)
        mapping = choose_mapping(ctx.params, _report(ctx))
        if mapping["mapper"] not in mappers:
            raise InputError("mapper_unknown", f"no mapper {mapping['mapper']!r}; known: "
                             f"{', '.join(sorted(mappers))}", mapper=mapping["mapper"])
        mapper = mappers[mapping["mapper"]]
        check_field_map(mapper, mapping["field_map"])
        ctx.scratch.update(mapper=mapper, mapping=mapping)

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass  # in = accepted + rejected is the runner's ledger check

    def _mappers(self, ctx: StageContext) -> dict[str, Mapper]:
        modules = list(ctx.project.settings.get("mapper_plugins", []))
        modules += [m for m in ctx.params.get("plugins", []) if m not in modules]
        plugins, errors = load_plugin_mappers(modules)
        for err in errors:
            ctx.emit("extension_load_failed", f"mapper plugin {err['module']} did not load: "
                     f"{err['error']}", **err)
        return {**BUILTIN_MAPPERS, **plugins}

    def _map_all(self, ctx: StageContext, on_accept, on_reject) -> None:
        mapper, field_map = ctx.scratch["mapper"], ctx.scratch["mapping"]["field_map"]
        for n, (row_id, file, position, record) in enumerate(
                read_records(ctx.inputs["snapshot"].path), start=1):
            row, code, detail = map_one(mapper, record, field_map)
            if row is not None:
                on_accept(row_id, file, position, record, row)
            else:
                on_reject(row_id, file, position, record, code, detail)
            if n % 50_000 == 0:
                ctx.progress(n)


class MapDryRunStage(_MapBase):
    """03: map every record in memory, keep counts, a preview and one example per reason."""

    name, number = "map_dry_run", 3
    outputs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> dict[str, Any]:
        counts = {"in": 0, "out": 0, "rejected": 0}
        by_reason: dict[str, int] = {}
        preview: list[dict[str, Any]] = []
        examples: dict[str, dict[str, Any]] = {}

        def accept(row_id, file, position, record, row):
            counts["in"] += 1
            counts["out"] += 1
            if len(preview) < PREVIEW:
                preview.append({"row_id": row_id, "source": file, "position": position,
                                "before": record, "after": row})

        def reject(row_id, file, position, record, code, detail):
            counts["in"] += 1
            counts["rejected"] += 1
            by_reason[code] = by_reason.get(code, 0) + 1
            examples.setdefault(code, {"row_id": row_id, "source": file, "position": position,
                                       "detail": detail, "before": record})

        self._map_all(ctx, accept, reject)
        return {"mapping": ctx.scratch["mapping"], "counts": counts,
                "rejections_by_reason": dict(sorted(by_reason.items())), "preview": preview,
                "examples": examples, "written": False}


class MapStage(_MapBase):
    """04: the commit: a dataset version, the mapping, and a ledger entry per record."""

    name, number = "map", 4
    outputs = ("dataset", "mapping")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        mapping = ctx.scratch["mapping"]
        saved = ctx.new_artifact("mapping")
        (saved.dir / "mapping.json").write_text(json.dumps(
            {"mapper": mapping["mapper"], "field_map": mapping["field_map"]}, sort_keys=True))
        mapping_art = ctx.publish("mapping", saved, {"mapper": mapping["mapper"]})
        builder = ctx.new_artifact("dataset")
        with pq.ParquetWriter(builder.dir / ROWS, SCHEMA, compression="zstd") as out:
            accepted = self._commit_rows(ctx, out)
        meta = {"snapshot_id": ctx.inputs["snapshot"].id, "mapping_id": mapping_art.id,
                "mapper": mapping["mapper"], "field_map": mapping["field_map"], "rows": accepted}
        (builder.dir / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        dataset = ctx.publish("dataset", builder, meta)
        return {"dataset_id": dataset.id, "mapping_id": mapping_art.id, "mapping": mapping}

    def _commit_rows(self, ctx: StageContext, out: pq.ParquetWriter) -> int:
        ledger, mapper_id = ctx.ledger, ctx.scratch["mapping"]["mapper"]
        cols = row_columns()

        def accept(row_id, file, position, record, row):
            ledger.count_in()
            ledger.changed(row_id, f"mapped by {mapper_id}", source=file, position=position)
            flush_rows(out, cols, row_id, row)

        def reject(row_id, file, position, record, code, detail):
            ledger.count_in()
            ledger.dropped(row_id, code, source=file, position=position, detail=detail)

        self._map_all(ctx, accept, reject)
        flush_rows(out, cols)
        return ledger.stats.out


def row_columns() -> dict[str, list[Any]]:
    return {n: [] for n in SCHEMA.names}


def flush_rows(out: pq.ParquetWriter, cols: dict[str, list[Any]], row_id: str | None = None,
               row: dict[str, Any] | None = None) -> None:
    """Buffer one canonical row (if given) and write the buffer when full, or when called
    without a row (the final flush)."""
    if row_id is not None:
        cols["row_id"].append(row_id)
        cols["task"].append(row["task"])
        cols["row"].append(json.dumps(row, ensure_ascii=False, sort_keys=True))
        if len(cols["row_id"]) < BATCH:
            return
    if cols["row_id"]:
        out.write_batch(pa.RecordBatch.from_pydict(cols, schema=SCHEMA))
        for values in cols.values():
            values.clear()


def _report(ctx: StageContext) -> dict[str, Any] | None:
    art = ctx.inputs.get("introspection")
    return read_report(art.path) if art else None


def choose_mapping(params: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """The user's mapper (with their field map, or introspection's for that mapper), else the
    proposal — refused below the threshold unless forced."""
    if params.get("mapper"):
        field_map = params.get("field_map") or _hypothesis_map(report, params["mapper"])
        return {"mapper": params["mapper"], "field_map": field_map or {}, "chosen_by": "user",
                "confidence": None}
    proposal = (report or {}).get("proposal")
    if proposal is None:
        raise InputError("mapping_low_confidence", "introspection found no shape that fits; "
                         "pass --mapper ID and --field-map JSON")
    if proposal["confidence"] < AUTO_PICK_THRESHOLD and not params.get("force"):
        raise InputError("mapping_low_confidence",
                         f"best proposal {proposal['mapper']} {proposal['field_map']} has "
                         f"confidence {proposal['confidence']:.2f} < {AUTO_PICK_THRESHOLD}: pass "
                         "--mapper (and --field-map) or --force to accept it",
                         proposal=proposal)
    field_map = params.get("field_map") or proposal["field_map"]
    return {"mapper": proposal["mapper"], "field_map": field_map,
            "chosen_by": "forced" if proposal["confidence"] < AUTO_PICK_THRESHOLD
            else "introspection", "confidence": proposal["confidence"]}


def _hypothesis_map(report: dict[str, Any] | None, mapper: str) -> dict[str, str] | None:
    for hyp in (report or {}).get("hypotheses", []):
        if hyp["mapper"] == mapper:
            return hyp["field_map"]
    return None


def map_one(mapper: Mapper, record: dict[str, Any],
            field_map: dict[str, str]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(row, None, None) or (None, code, detail) — a plugin that raises rejects the row."""
    try:
        row, code = mapper.map(record, field_map)
    except Exception as exc:  # noqa: BLE001 — plugins may raise; the row is rejected, coded
        return None, "mapper_error", f"{type(exc).__name__}: {exc}"
    if row is None:
        return None, code, _explain(code, record, field_map, mapper.required)
    problem = validate_canonical(row)
    if problem:
        raise BrewError("contract_violated", f"mapper {mapper.id} produced a row that is not "
                        f"canonical: {problem}", mapper=mapper.id)
    return row, None, None


def _explain(code: str | None, record: dict[str, Any], field_map: dict[str, str],
             required: tuple[str, ...]) -> str:
    missing = [f"{slot}<-{field}" for slot, field in field_map.items()
               if slot in required and resolve(record, field) in (MISSING, None)]
    meaning = taxonomy.lookup(code).meaning if code and taxonomy.is_known(code) else ""
    if code == "missing_field" and missing:
        return f"missing {', '.join(missing)}"
    return meaning


def read_dataset(dataset_dir: Path, limit: int | None = None):
    """Yield (row_id, canonical row) from a dataset version."""
    seen = 0
    for batch in pq.ParquetFile(dataset_dir / ROWS).iter_batches(batch_size=BATCH):
        for row_id, row in zip(batch.column("row_id").to_pylist(),
                               batch.column("row").to_pylist(), strict=True):
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield row_id, json.loads(row)
