"""Stage 05, clean (optional): quality filters, PII, dedup, chunking and a data-health report.

    brewslm clean -p NAME [--pii redact|block|warn] [--force] [--json]

Per row, in order: quality filters (drop with a code), PII (redact with typed placeholders,
or only report), dedup (exact, then MinHash near-duplicates: the ledger names the kept row each
dropped duplicate matched), and token-aware chunking of long plain-text documents (each chunk a
child row naming its parent). Then the health report: ok / warn / block per signal; a block
fails the stage (exit 3) unless --force, which is recorded. Thresholds live in the project's
`clean` setting (`brewslm project set NAME clean '{"min_answer_chars": 1}'`).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from typing import Any

import pyarrow.parquet as pq

from brewslm.clean import (
    Deduper,
    QualityConfig,
    check_quality,
    chunk_text,
    find_pii,
    map_text,
    redact,
    row_text,
)
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.events import query
from brewslm.ledger import make_row_id
from brewslm.stages.base import StageContext
from brewslm.stages.mapping import ROWS, SCHEMA, flush_rows, read_dataset, row_columns

PII_POLICIES = ("redact", "block", "warn")
QUALITY_CODES = ("empty_answer", "too_short", "too_long", "mostly_non_text", "repeated_lines",
                 "repeated_ngrams", "answer_equals_prompt")
DEFAULTS: dict[str, Any] = {
    "pii": "redact", "pii_block_share": 0.05, "near_dup_threshold": 0.85,
    "chunk_max_tokens": 512, "chunk_overlap": 64,
    "health": {"parse_failures": [0.01, 0.2], "low_quality": [0.05, 0.5],
               "duplicates": [0.1, 0.6], "pii": [0.01, None], "length_outliers": [0.02, 0.2]},
}
OUTLIER_FACTOR = 10  # a row longer than 10x the median is a length outlier


class CleanStage:
    name, number, version = "clean", 5, "1"
    inputs = ("dataset",)
    outputs = ("dataset", "health_report")

    def validate(self, ctx: StageContext) -> None:
        settings = {**DEFAULTS, **ctx.project.settings.get("clean", {}), **_given(ctx.params)}
        quality = {k: v for k, v in settings.items() if k not in DEFAULTS}
        ctx.scratch["quality"] = QualityConfig.from_dict(quality)
        if settings["pii"] not in PII_POLICIES:
            raise InputError("project_setting_invalid", f"--pii must be one of {PII_POLICIES}, "
                             f"got {settings['pii']!r}", field="pii")
        ctx.scratch["settings"] = settings

    def run(self, ctx: StageContext) -> dict[str, Any]:
        settings = ctx.scratch["settings"]
        tally = Tally()
        builder = ctx.new_artifact("dataset")
        with pq.ParquetWriter(builder.dir / ROWS, SCHEMA, compression="zstd") as out:
            written = self._clean_rows(ctx, settings, tally, out)
        health = health_report(ctx, settings, tally)
        self._gate(ctx, settings, health)
        source = ctx.inputs["dataset"]
        meta = {**{k: source.meta.get(k) for k in ("snapshot_id", "mapper", "mapping_id")},
                "source_dataset_id": source.id, "rows": written, "cleaned": True}
        (builder.dir / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        dataset = ctx.publish("dataset", builder, meta)
        report = ctx.new_artifact("health_report")
        (report.dir / "health.json").write_text(json.dumps(health, indent=2, sort_keys=True))
        ctx.publish("health_report", report, {"dataset_id": dataset.id})
        return {"dataset_id": dataset.id, "health": health, "pii_policy": settings["pii"],
                "rows_written": written}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        stats = ctx.ledger.stats
        expected = stats.out - ctx.scratch["expanded"] + stats.added
        if result["rows_written"] != expected:
            raise BrewError("contract_violated", f"clean wrote {result['rows_written']} rows; "
                            f"the ledger says out - expanded + added = {expected}")

    def _clean_rows(self, ctx: StageContext, settings: dict[str, Any], tally: Tally,
                    out: pq.ParquetWriter) -> int:
        cleaner = RowCleaner(ctx, settings, tally)
        cols = row_columns()
        written = 0
        for n, (row_id, row) in enumerate(read_dataset(ctx.inputs["dataset"].path), start=1):
            for new_id, new_row in cleaner.clean(row_id, row):
                written += 1
                flush_rows(out, cols, new_id, new_row)
            if n % 50_000 == 0:
                ctx.progress(n)
        flush_rows(out, cols)
        ctx.scratch["expanded"] = cleaner.chunker.expanded
        return written

    def _gate(self, ctx: StageContext, settings: dict[str, Any], health: dict[str, Any]) -> None:
        if settings["pii"] == "block" and health["pii_share"] > settings["pii_block_share"]:
            raise BlockedError("pii_blocked", f"{health['pii_share']:.1%} of rows contain PII "
                               f"(> {settings['pii_block_share']:.1%}) under --pii block",
                               health=health)
        blocked = [s for s, v in health["signals"].items() if v["status"] == "block"]
        if blocked and not ctx.params.get("force"):
            raise BlockedError("health_blocked", f"data health blocks on {', '.join(blocked)}: "
                               + "; ".join(_describe(s, health["signals"][s]) for s in blocked),
                               health=health)
        if blocked:
            ctx.emit("health_forced", f"--force overrode blocking health signals {blocked}",
                     signals={s: health["signals"][s] for s in blocked})


class RowCleaner:
    """One row at a time: quality, PII, dedup, chunking; each outcome into the ledger."""

    def __init__(self, ctx: StageContext, settings: dict[str, Any], tally: Tally) -> None:
        self.ctx, self.settings, self.tally = ctx, settings, tally
        self.ledger = ctx.ledger
        self.deduper = Deduper(threshold=settings["near_dup_threshold"])
        self.chunker = Chunker(ctx, settings)

    def clean(self, row_id: str, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The rows to write for one input row: none (dropped), itself, or its chunks."""
        self.ledger.count_in()
        length = len(row_text(row))
        code = check_quality(row, self.ctx.scratch["quality"])
        if code:
            self.tally.quality[code] += 1
            self.ledger.dropped(row_id, code)
            return []
        row, pii = _pii(row, self.settings["pii"])
        self.tally.pii_rows += bool(pii)
        dup = self.deduper.check(row_id, row_text(row))
        if dup:
            self.tally.duplicates[dup[0]] += 1
            self.ledger.dropped(row_id, dup[0], detail={"duplicate_of": dup[1]})
            return []
        self.tally.lengths.append(length)
        return self.chunker.split(row_id, row) or self._keep(row_id, row, pii)

    def _keep(self, row_id: str, row: dict[str, Any],
              pii: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
        if pii and self.settings["pii"] == "redact":
            self.ledger.changed(row_id, {"redacted": pii}, reason_code="pii_found")
        elif pii:
            self.ledger.kept(row_id, reason_code="pii_found", detail=json.dumps({"found": pii}))
        else:
            self.ledger.kept(row_id)
        return [(row_id, row)]


class Tally:
    """What the health report is computed from."""

    def __init__(self) -> None:
        self.quality: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.pii_rows = 0
        self.lengths: list[int] = []


class Chunker:
    """Splits long pretrain rows into child rows; loads the tokenizer only if one needs it."""

    def __init__(self, ctx: StageContext, settings: dict[str, Any]) -> None:
        self.ctx, self.settings = ctx, settings
        self.tokenizer = None
        self.expanded = 0

    def split(self, row_id: str, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if row.get("task") != "pretrain" or len(row.get("text") or "") < 200:
            return []  # a text under ~200 characters cannot pass any sane token window
        tokenizer = self._tokenizer()
        pieces = chunk_text(row["text"], tokenizer, self.settings["chunk_max_tokens"],
                            self.settings["chunk_overlap"])
        if len(pieces) < 2:
            return []
        ledger = self.ctx.ledger
        ledger.changed(row_id, {"chunks": len(pieces)}, reason_code="split_into_chunks")
        self.expanded += 1
        children = []
        for i, piece in enumerate(pieces):
            child_id = make_row_id(row_id, f"chunk {i}")
            ledger.added(child_id, row_id, position=f"chunk {i}", reason_code="split_into_chunks")
            children.append((child_id, {**row, "text": piece,
                                        "meta": {**row.get("meta", {}), "chunk": i}}))
        return children

    def _tokenizer(self):
        if self.tokenizer is None:
            from brewslm.stages.prepare import load_tokenizer

            self.tokenizer = load_tokenizer(self.ctx.project)
        return self.tokenizer


def _pii(row: dict[str, Any], policy: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The row (redacted under the redact policy) and the count of each PII kind found."""
    found: Counter[str] = Counter()

    def scan(text: str) -> str:
        spans = find_pii(text)
        found.update(s.kind for s in spans)
        return redact(text, spans) if spans and policy == "redact" else text

    new_row = map_text(row, scan)
    return (new_row if policy == "redact" else row), dict(sorted(found.items()))


def health_report(ctx: StageContext, settings: dict[str, Any], tally: Tally) -> dict[str, Any]:
    n_in = max(ctx.ledger.stats.rows_in, 1)
    values = {"parse_failures": _parse_failure_share(ctx),
              "low_quality": sum(tally.quality.values()) / n_in,
              "duplicates": sum(tally.duplicates.values()) / n_in,
              "pii": tally.pii_rows / n_in,
              "length_outliers": _outlier_share(tally.lengths)}
    signals = {}
    for name, value in values.items():
        # PII has no block threshold here: the --pii policy decides (pii_blocked under block).
        warn, block = settings["health"][name]
        status = ("block" if block is not None and value > block
                  else "warn" if value > warn else "ok")
        signals[name] = {"value": round(value, 4), "warn": warn, "block": block,
                         "status": status}
    return {"signals": signals, "rows_in": ctx.ledger.stats.rows_in,
            "quality": dict(sorted(tally.quality.items())),
            "duplicates": dict(sorted(tally.duplicates.items())),
            "pii_share": round(tally.pii_rows / n_in, 4),
            "verdict": max((s["status"] for s in signals.values()),
                           key=("ok", "warn", "block").index)}


def _parse_failure_share(ctx: StageContext) -> float:
    """Malformed share of the ingest run that produced the snapshot behind this dataset."""
    snapshot = ctx.inputs["dataset"].meta.get("snapshot_id")
    for run in reversed(query.runs(ctx.project, "ingest")):
        if run["outputs"].get("snapshot") == snapshot and run["ledger"]:
            return run["ledger"]["dropped"] / max(run["ledger"]["in"], 1)
    return 0.0


def _outlier_share(lengths: list[int]) -> float:
    if not lengths:
        return 0.0
    limit = OUTLIER_FACTOR * statistics.median(lengths)
    return sum(1 for n in lengths if n > limit) / len(lengths)


def _describe(signal: str, value: dict[str, Any]) -> str:  # only for blocking signals
    return f"{signal} {value['value']:.1%} > {value['block']:.1%}"


def _given(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in ("pii",) and v is not None}
