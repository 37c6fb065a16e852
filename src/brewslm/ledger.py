"""The row ledger: what each row stage did to every row, one Parquet file per stage run.

    with LedgerWriter(path, stage="clean", run_id=run_id) as ledger:
        ledger.count_in()                      # one input row read
        ledger.kept(row_id)                    # ...or changed / dropped(row_id, "too_short")
    ledger.stats                               # in, out, dropped, by_reason

Files live at PROJECT_DIR/ledger/<stage>/<run_id>.parquet; they are written in batches (bounded
memory at millions of rows) to a .tmp file that is renamed only when the run succeeds.
`stats` re-reads the files (two columns) to check in = out + dropped; `trace` follows one row
through every stage, including the child rows it was split into.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from brewslm.errors import BrewError
from brewslm.events import taxonomy

# kept / changed / dropped account for an input row (in = kept + changed + dropped);
# added is a new child row (a chunk, a split-off turn) and names its parent_row_id.
OUTCOMES = ("kept", "changed", "dropped", "added")
SCHEMA = pa.schema([
    ("row_id", pa.string()),
    ("outcome", pa.string()),
    ("reason_code", pa.string()),
    ("parent_row_id", pa.string()),
    ("source", pa.string()),
    ("position", pa.string()),
    ("split", pa.string()),
    ("truncated_tokens", pa.int32()),
    ("detail", pa.string()),
])
COLUMNS = SCHEMA.names


def make_row_id(namespace: str, position: int | str) -> str:
    """A stable row id: the same record of the same input always gets the same id."""
    return "r" + hashlib.blake2b(f"{namespace}:{position}".encode(), digest_size=8).hexdigest()


@dataclass
class LedgerStats:
    rows_in: int = 0
    kept: int = 0
    changed: int = 0
    dropped: int = 0
    added: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # drops by code
    notes: dict[str, int] = field(default_factory=dict)  # coded rows that were not dropped

    @property
    def out(self) -> int:
        return self.kept + self.changed

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.out + self.dropped

    def to_dict(self) -> dict[str, Any]:
        return {"in": self.rows_in, "out": self.out, "dropped": self.dropped, "kept": self.kept,
                "changed": self.changed, "added": self.added, "by_reason": dict(self.by_reason),
                "notes": dict(self.notes), "balanced": self.balanced}


class LedgerWriter:
    """Buffers ledger entries column by column and writes them as Parquet row groups."""

    def __init__(self, path: Path, *, stage: str, run_id: str, batch_rows: int = 65_536) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.stage, self.run_id, self.batch_rows = stage, run_id, batch_rows
        self.stats = LedgerStats()
        self._reasons: Counter[str] = Counter()  # drops by code
        self._notes: Counter[str] = Counter()  # kept / changed / added rows that carry a code
        self._cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        self._writer: pq.ParquetWriter | None = None
        self._known_codes: set[str] = set()

    def reasons(self) -> dict[str, int]:
        """Drops so far by reason code."""
        return dict(sorted(self._reasons.items()))

    def notes(self) -> dict[str, int]:
        """Rows kept, changed or added with a reason code (e.g. pii_found), by code."""
        return dict(sorted(self._notes.items()))

    def count_in(self, n: int = 1) -> None:
        self.stats.rows_in += n

    def kept(self, row_id: str, **cols: Any) -> None:
        self.record(row_id, "kept", **cols)

    def changed(self, row_id: str, how: str | dict[str, Any], **cols: Any) -> None:
        self.record(row_id, "changed", detail=how, **cols)

    def dropped(self, row_id: str, reason_code: str, **cols: Any) -> None:
        self.record(row_id, "dropped", reason_code=reason_code, **cols)

    def added(self, row_id: str, parent_row_id: str, **cols: Any) -> None:
        self.record(row_id, "added", parent_row_id=parent_row_id, **cols)

    def record(self, row_id: str, outcome: str, *, reason_code: str | None = None,
               detail: str | dict[str, Any] | None = None, **cols: Any) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"ledger outcome {outcome!r} is not one of {OUTCOMES}")
        if outcome == "dropped" and not reason_code:
            raise BrewError("ledger_reason_missing", f"row {row_id} dropped without a reason code")
        if reason_code:
            self._check_code(reason_code)
            (self._reasons if outcome == "dropped" else self._notes)[reason_code] += 1
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        values = {"row_id": row_id, "outcome": outcome, "reason_code": reason_code,
                  "detail": json.dumps(detail) if isinstance(detail, dict) else detail, **cols}
        for name in COLUMNS:
            self._cols[name].append(values.get(name))
        if len(self._cols["row_id"]) >= self.batch_rows:
            self._flush()

    def close(self) -> LedgerStats:
        """Write what is buffered and finish the .tmp file (the runner commits or aborts it)."""
        self._flush()
        if self._writer is None:  # a run that touched no rows still leaves an (empty) file
            self._writer = pq.ParquetWriter(self.tmp, SCHEMA)
        self._writer.close()
        self.stats.by_reason = self.reasons()
        self.stats.notes = self.notes()
        return self.stats

    def commit(self) -> Path:
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # aborting after a failure; the file goes
                self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def _check_code(self, code: str) -> None:
        if code not in self._known_codes:
            taxonomy.lookup(code)  # raises UnknownReasonCode: a ledger code must be registered
            self._known_codes.add(code)

    def _flush(self) -> None:
        if not self._cols["row_id"]:
            return
        batch = pa.RecordBatch.from_pydict(self._cols, schema=SCHEMA)
        if self._writer is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, SCHEMA, compression="zstd")
        self._writer.write_batch(batch)
        self._cols = {c: [] for c in COLUMNS}


def ledger_path(project_dir: Path, stage: str, run_id: str) -> Path:
    return project_dir / "ledger" / stage / f"{run_id}.parquet"


def recount(path: Path) -> LedgerStats:
    """Count outcomes and reasons from the file itself, a row group at a time."""
    stats, reasons, notes = LedgerStats(), Counter(), Counter()
    for batch in pq.ParquetFile(path).iter_batches(columns=["outcome", "reason_code"]):
        for outcome, n in _value_counts(batch.column("outcome")):
            setattr(stats, outcome, getattr(stats, outcome) + n)
        is_drop = pc.equal(batch.column("outcome"), "dropped")
        for code, n in _value_counts(pc.filter(batch.column("reason_code"), is_drop)):
            reasons[code] += n
        kept = pc.invert(is_drop)
        for code, n in _value_counts(pc.drop_null(pc.filter(batch.column("reason_code"), kept))):
            notes[code] += n
    stats.by_reason = dict(sorted(reasons.items()))
    stats.notes = dict(sorted(notes.items()))
    return stats


def _value_counts(array: pa.Array) -> list[tuple[Any, int]]:
    return [(vc["values"], vc["counts"]) for vc in pc.value_counts(array).to_pylist()]


def find_row(path: Path, row_id: str) -> list[dict[str, Any]]:
    """Entries of one file about a row: the row itself and the child rows it became."""
    hits = []
    for batch in pq.ParquetFile(path).iter_batches():
        mask = pc.or_kleene(pc.equal(batch.column("row_id"), row_id),
                            pc.equal(batch.column("parent_row_id"), row_id))
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            hits.extend(pa.Table.from_batches([batch]).filter(mask).to_pylist())
    return hits


def examples_by_reason(path: Path, per_reason: int = 1) -> dict[str, list[dict[str, Any]]]:
    """The first `per_reason` dropped entries of each reason code in a ledger file (with their
    source and position), read a row group at a time."""
    found: dict[str, list[dict[str, Any]]] = {}
    for batch in pq.ParquetFile(path).iter_batches():
        drops = pa.Table.from_batches([batch]).filter(
            pc.equal(batch.column("outcome"), "dropped"))
        for entry in drops.to_pylist():
            chosen = found.setdefault(entry["reason_code"], [])
            if len(chosen) < per_reason:
                chosen.append(entry)
    return dict(sorted(found.items()))


def truncation(path: Path) -> dict[str, int]:
    """How many rows of a ledger file were truncated, and how many tokens were cut in all."""
    rows = tokens = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["truncated_tokens"]):
        cut = pc.drop_null(batch.column("truncated_tokens"))
        cut = pc.filter(cut, pc.greater(cut, 0))
        rows += len(cut)
        tokens += pc.sum(cut).as_py() or 0
    return {"rows": rows, "tokens": tokens}
