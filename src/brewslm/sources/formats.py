"""File formats for ingest: detection and one streaming reader per format.

    fmt = detect_format(path)                  # or detect_format(path, "csv") to override
    for item in read_file(path, fmt, file="data/train.csv"):
        ...                                    # Record or Malformed, in source order

Formats: jsonl, json, csv, tsv, parquet, text, markdown. The format comes from `fmt`, else the
file extension, else the first bytes (a JSON object per line, a JSON document, the PAR1 magic).
Every reader is a generator of `Record | Malformed`: a bad line or row becomes a `Malformed`
with a reason code, the position and a short excerpt, and the reader goes on. A file that cannot
be read at all (empty, binary, a JSON scalar, a broken Parquet file) raises `InputError` before
its first item. JSONL, CSV/TSV, Parquet and text blocks stream with bounded memory; a .json file
and a whole text document are loaded whole (one document has to be parsed as one).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brewslm.errors import InputError
from brewslm.sources.base import Item, Malformed, Record

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "markdown")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
              ".tsv": "tsv", ".parquet": "parquet", ".txt": "text", ".md": "markdown",
              ".markdown": "markdown"}
ALIASES = {"ndjson": "jsonl", "txt": "text", "md": "markdown"}
TEXT_FORMATS = frozenset(FORMATS) - {"parquet"}

BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 1 << 20  # enough for the first line of any sane JSONL file
BINARY_PROBE = 8192
DETAIL_MAX = 200
EXCERPT_MAX = 120
PARQUET_BATCH = 1024
# One CSV field may hold a whole document; the csv module's default cap (128 KiB) is too small,
# while no cap at all would let one unbalanced quote swallow a whole file into memory.
CSV_FIELD_LIMIT = 64 << 20


# --- detection ------------------------------------------------------------------------------

def normalize_format(fmt: str) -> str:
    """The canonical name of a user-given --format; InputError if it is not one we read."""
    name = ALIASES.get(fmt.strip().lower(), fmt.strip().lower())
    if name not in FORMATS:
        raise InputError("ingest_format_unknown",
                         f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", format=fmt)
    return name


def format_from_name(name: str) -> str | None:
    """The format an extension names (case-insensitive), or None."""
    return EXTENSIONS.get(Path(name).suffix.lower())


def detect_format(path: Path, fmt: str | None = None, *, name: str | None = None,
                  hint: str | None = None) -> str:
    """`fmt` if given, else the extension of `name` (default: the path), else `hint` (say, from
    a Content-Type), else sniffed content.

    A .json file that is really JSON Lines (a complete object on its first line and more lines
    after it) is read as jsonl: exports mislabelled so are common, and json cannot read them."""
    if fmt:
        return normalize_format(fmt)
    label = name or path.name
    found = format_from_name(label) or hint
    if found == "json" and _sniff_jsonl(_head(path)):
        return "jsonl"
    return found or sniff_format(path, name=label)


def sniff_format(path: Path, *, name: str | None = None) -> str:
    """Tell the format from the first bytes; InputError when they say nothing we read."""
    label = name or path.name
    head = _head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\0" in head[:BINARY_PROBE]:
        raise _binary(label, "a known format")
    body = head.removeprefix(BOM).lstrip()
    if not body:
        raise _empty(label)
    if _sniff_jsonl(head):
        return "jsonl"
    if body[:1] in (b"[", b"{"):
        return "json"
    raise InputError("ingest_format_unknown",
                     f"cannot tell the format of {label} from its name or content; "
                     f"pass --format ({', '.join(FORMATS)})", file=label)


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


def _sniff_jsonl(head: bytes) -> bool:
    """True if the first non-blank line is a JSON object on its own and another line follows."""
    lines = head.removeprefix(BOM).lstrip().split(b"\n", 1)
    if len(lines) < 2 or not lines[1].strip() or not lines[0].startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except ValueError:
        return False


# --- reading --------------------------------------------------------------------------------

def read_file(path: Path, fmt: str, *, file: str, text_blocks: bool = False) -> Iterator[Item]:
    """The items of one file in source order; raises InputError for a file that holds none."""
    fmt = normalize_format(fmt)
    if path.stat().st_size == 0:
        raise _empty(file)
    if fmt in TEXT_FORMATS:
        _reject_binary(path, file, fmt)
    if fmt == "jsonl":
        items = read_jsonl(path, file)
    elif fmt == "json":
        items = read_json(path, file)
    elif fmt in ("csv", "tsv"):
        items = read_csv(path, file, delimiter="," if fmt == "csv" else "\t")
    elif fmt == "parquet":
        items = read_parquet(path, file)
    else:
        items = read_text(path, file, blocks=text_blocks, markdown=fmt == "markdown")
    return _require_items(items, file)


def check_file(path: Path, fmt: str, *, file: str, text_blocks: bool = False) -> None:
    """Raise now, not mid-ingest, what read_file would raise before its first item."""
    items = read_file(path, fmt, file=file, text_blocks=text_blocks)
    try:
        next(items, None)
    finally:
        items.close()


def read_jsonl(path: Path, file: str) -> Iterator[Item]:
    """One record per non-blank line, "line N" (1-based physical line). Bytes are decoded per
    line so that one line in another encoding spoils only that line."""
    loads = json.loads
    with path.open("rb") as f:
        if f.read(3) != BOM:
            f.seek(0)
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Malformed(file, f"line {number}", code="undecodable_bytes",
                                detail=_detail(f"not UTF-8 at byte {e.start}", raw))
                continue
            try:
                value = loads(text)
            except ValueError as e:
                yield Malformed(file, f"line {number}", code="malformed_json",
                                detail=_detail(_json_problem(e), text))
                continue
            if isinstance(value, dict):
                yield Record(file, f"line {number}", value)
            else:
                yield Malformed(file, f"line {number}", code="not_a_record",
                                detail=_detail(f"a JSON {_kind(value)}, not an object", text))


def read_json(path: Path, file: str) -> Iterator[Item]:
    """A JSON document, loaded whole: an array of records ("record N", 0-based), an object of
    records ("key K", the key kept as "_key"), or one object that is itself a record."""
    doc = _load_document(path, file)
    if isinstance(doc, list):
        for index, value in enumerate(doc):
            if isinstance(value, dict):
                yield Record(file, f"record {index}", value)
            else:
                yield Malformed(file, f"record {index}", code="not_a_record",
                                detail=_detail(f"a JSON {_kind(value)}, not an object",
                                               json.dumps(value, ensure_ascii=False)))
    elif doc and all(isinstance(v, dict) for v in doc.values()):
        for key, value in doc.items():
            record = {"_key": key}
            record.update(value)
            record["_key"] = key  # the document's key wins over a field of the same name
            yield Record(file, f"key {key}", record)
    elif doc:
        yield Record(file, "document", doc)


def _load_document(path: Path, file: str) -> dict[str, Any] | list[Any]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("ingest_not_a_format", f"{file} is not UTF-8 text (byte {e.start})",
                         file=file) from e
    if not text.strip():
        raise _empty(file)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (one JSON value per line? pass --format jsonl)" if e.msg == "Extra data" else ""
        raise InputError("ingest_not_a_format", f"{file} is not valid JSON: {e.msg} at line "
                         f"{e.lineno}, column {e.colno}{hint}", file=file, line=e.lineno,
                         column=e.colno) from e
    if not isinstance(doc, dict | list):
        raise InputError("ingest_not_a_format", f"{file} holds a JSON {_kind(doc)}, "
                         "not a record or a list of records", file=file)
    return doc


def read_csv(path: Path, file: str, *, delimiter: str = ",") -> Iterator[Item]:
    """CSV/TSV with a header row; "line N" is the physical line where the row starts (a quoted
    field may span lines). Duplicate or blank header names get a suffix so no column is lost."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with path.open("rb") as f:
        bad: list[tuple[int, bytes]] = []
        reader = csv.reader(_decoded_lines(f, bad), delimiter=delimiter)
        header = next((row for row in reader if _has_data(row)), None)
        if header is None:
            return
        names, data_rows = _column_names(header), 0
        bad.clear()  # a header that was not UTF-8 still names columns (with U+FFFD)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                _take_bad(bad, reader.line_num)
                data_rows += 1
                yield Malformed(file, f"line {start}", code="csv_field_count",
                                detail=_detail(f"unreadable row: {e}", ""))
                continue
            undecodable = _take_bad(bad, reader.line_num)
            if not _has_data(row):
                continue
            data_rows += 1
            yield _csv_item(file, start, names, row, undecodable, delimiter)
        if not data_rows:
            raise InputError("ingest_empty_source", f"{file} has a header row but no data rows",
                             file=file)


def _csv_item(file: str, start: int, names: list[str], row: list[str],
              undecodable: bytes | None, delimiter: str) -> Item:
    position = f"line {start}"
    if undecodable is not None:
        return Malformed(file, position, code="undecodable_bytes",
                         detail=_detail("not UTF-8", undecodable))
    if len(row) != len(names):
        return Malformed(file, position, code="csv_field_count",
                         detail=_detail(f"{len(row)} fields, the header has {len(names)}",
                                        delimiter.join(row)))
    return Record(file, position, dict(zip(names, row, strict=True)))


def _decoded_lines(f: Iterable[bytes], bad: list[tuple[int, bytes]]) -> Iterator[str]:
    """Physical lines as text for the csv module; lines that are not UTF-8 are decoded with
    U+FFFD (so parsing goes on) and noted in `bad` as (line number, raw bytes)."""
    for number, raw in enumerate(f, 1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((number, raw))
            yield raw.decode("utf-8", "replace")


def _take_bad(bad: list[tuple[int, bytes]], last_line: int) -> bytes | None:
    """Pop the undecodable lines up to `last_line`; the first one's bytes, if any."""
    if not bad or bad[0][0] > last_line:
        return None
    first = bad[0][1]
    while bad and bad[0][0] <= last_line:
        bad.pop(0)
    return first


def _has_data(row: list[str]) -> bool:
    # csv yields [] for a blank line and [" "] for a whitespace-only one: neither is a row.
    return bool(row) and not (len(row) == 1 and not row[0].strip())


def _column_names(header: list[str]) -> list[str]:
    names: list[str] = []
    for index, raw in enumerate(header, 1):
        base = raw.strip() or f"column_{index}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def read_parquet(path: Path, file: str) -> Iterator[Item]:
    """Rows in file order, "row N" (0-based), read a batch at a time."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError("ingest_not_a_format", f"{file} is not a readable Parquet file: {e}",
                         file=file) from e
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
            for row in arrow_rows(batch):
                yield Record(file, f"row {index}", row)
                index += 1
    except (pa.ArrowException, OSError) as e:
        raise InputError("ingest_not_a_format", f"{file} is damaged near row {index}: {e}",
                         file=file) from e
    finally:
        parquet.close()


def read_text(path: Path, file: str, *, blocks: bool = False,
              markdown: bool = False) -> Iterator[Item]:
    """{"text": ...}: the whole file ("document"), or with `blocks` each blank-line-separated
    block ("block N (line L)", N 1-based, L the block's first line). Markdown blocks do not split
    inside ``` / ~~~ fences."""
    if blocks:
        yield from _text_blocks(path, file, markdown)
        return
    raw = path.read_bytes().removeprefix(BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Malformed(file, "document", code="undecodable_bytes",
                        detail=_detail(f"not UTF-8 at byte {e.start}", raw[max(0, e.start - 40):]))
        return
    text = _strip_blank_lines(text.replace("\r\n", "\n").split("\n"))
    if text:
        yield Record(file, "document", {"text": text})


def _text_blocks(path: Path, file: str, markdown: bool) -> Iterator[Item]:
    block: list[str] = []
    start, count, fenced, undecodable = 0, 0, False, None
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            line, raw_bad = _text_line(raw.removeprefix(BOM) if number == 1 else raw)
            if markdown and line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            if line.strip() or fenced:
                if not block:
                    start, undecodable = number, None
                block.append(line)
                undecodable = undecodable or raw_bad
                continue
            if block:
                count += 1
                yield _block_item(file, count, start, block, undecodable)
                block = []
    if block:
        yield _block_item(file, count + 1, start, block, undecodable)


def _text_line(raw: bytes) -> tuple[str, bytes | None]:
    try:
        return raw.decode("utf-8").rstrip("\r\n"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace").rstrip("\r\n"), raw


def _block_item(file: str, n: int, start: int, lines: list[str], bad: bytes | None) -> Item:
    position = f"block {n} (line {start})"
    if bad is not None:
        return Malformed(file, position, code="undecodable_bytes", detail=_detail("not UTF-8", bad))
    return Record(file, position, {"text": "\n".join(lines)})


def _strip_blank_lines(lines: list[str]) -> str:
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), -1)
    return "\n".join(lines[first:last + 1])


# --- shared helpers -------------------------------------------------------------------------

def arrow_rows(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """A batch's rows as JSON-safe dicts (dates, decimals and bytes become strings)."""
    rows = batch.to_pylist()
    convert = [f.name for f in batch.schema if not _json_native(f.type)]
    for row in rows:
        for name in convert:
            row[name] = jsonable(row[name])
    return rows


def _json_native(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return all(_json_native(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _json_native(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))


def jsonable(value: Any) -> Any:
    """A value made of JSON types only; used for Arrow values such as timestamps and bytes."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)  # a float would lose digits
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def sha256_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes), reading the file in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _require_items(items: Iterator[Item], file: str) -> Iterator[Item]:
    empty = True
    for item in items:
        empty = False
        yield item
    if empty:
        raise _empty(file)


def _reject_binary(path: Path, file: str, fmt: str) -> None:
    with path.open("rb") as f:
        head = f.read(BINARY_PROBE)
    if b"\0" in head:
        raise _binary(file, fmt)


def _binary(file: str, expected: str) -> InputError:
    return InputError("ingest_not_a_format", f"{file} looks binary (NUL bytes), not {expected}; "
                      "UTF-16 text must be re-encoded as UTF-8", file=file)


def _empty(file: str) -> InputError:
    return InputError("ingest_empty_source", f"{file} holds no records (empty or blank)",
                      file=file)


def _json_problem(e: ValueError) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON ({e.msg}, column {e.colno})"
    return f"invalid JSON ({e})"


def _kind(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _detail(problem: str, raw: bytes | str) -> str:
    """'problem: excerpt', at most DETAIL_MAX characters, on one line."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    if len(text) > EXCERPT_MAX:
        text = text[:EXCERPT_MAX - 1] + "…"
    detail = f"{problem}: {text}" if text else problem
    return detail if len(detail) <= DETAIL_MAX else detail[:DETAIL_MAX - 1] + "…"
