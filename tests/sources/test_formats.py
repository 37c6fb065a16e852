"""Format detection and the readers, on files with the defects real exports have: a BOM, CRLF
endings, blank lines, broken and non-object JSON, bytes that are not UTF-8, quoted CSV fields
with commas and newlines, short rows, binary and empty files. Counts, codes and positions are
asserted exactly: they are what the ledger records.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brewslm.errors import InputError
from brewslm.sources.base import Malformed, Record
from brewslm.sources.formats import check_file, detect_format, read_file


def items(path: Path, fmt: str | None = None, **kw):
    return list(read_file(path, fmt or detect_format(path), file=path.name, **kw))


def summary(found):
    """(kind, position, code) per item: the ledger's view of a read."""
    return [("ok", i.position, None) if isinstance(i, Record) else ("bad", i.position, i.code)
            for i in found]


def refused(path: Path, fmt: str | None = None, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        items(path, fmt, **kw)
    return info.value


# --- JSONL ----------------------------------------------------------------------------------

MESSY_JSONL = (
    b'\xef\xbb\xbf{"prompt": "Reset my password", "completion": "Use the link."}\r\n'  # 1
    b"\r\n"                                                                             # 2
    b'{"prompt": "Refund?", "completion": "Approved."}\r\n'                             # 3
    b"   \t\r\n"                                                                        # 4
    b'{"prompt": "broken", "completion": \r\n'                                          # 5
    b'["a", "list"]\r\n'                                                                # 6
    b'{"prompt": "caf\xe9 au lait"}\r\n'                                                # 7
    b"42\r\n"                                                                           # 8
    b'{"prompt": "last", "completion": "no final newline"}'                             # 9
)


def test_jsonl_keeps_good_lines_and_names_every_bad_one(tmp_path):
    path = tmp_path / "tickets.jsonl"
    path.write_bytes(MESSY_JSONL)
    found = items(path)
    assert summary(found) == [
        ("ok", "line 1", None), ("ok", "line 3", None), ("bad", "line 5", "malformed_json"),
        ("bad", "line 6", "not_a_record"), ("bad", "line 7", "undecodable_bytes"),
        ("bad", "line 8", "not_a_record"), ("ok", "line 9", None)]
    assert found[0].data == {"prompt": "Reset my password", "completion": "Use the link."}
    assert all(i.file == "tickets.jsonl" for i in found)
    bad = {i.position: i.detail for i in found if isinstance(i, Malformed)}
    assert '{"prompt": "broken", "completion":' in bad["line 5"]
    assert "list" in bad["line 6"] and '["a", "list"]' in bad["line 6"]
    assert "\\xe9" in bad["line 7"]
    assert "number" in bad["line 8"]
    assert all(len(d) <= 200 for d in bad.values())


def test_jsonl_excerpt_of_a_huge_bad_line_is_short(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text('{"ok": 1}\n{"text": "' + "x" * 10_000 + "\n")
    found = items(path)
    assert summary(found) == [("ok", "line 1", None), ("bad", "line 2", "malformed_json")]
    assert len(found[1].detail) <= 200


def test_jsonl_only_blank_lines_is_an_empty_source(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\xef\xbb\xbf\r\n  \n\t\n")
    assert refused(path).code == "ingest_empty_source"


def test_jsonl_streams_with_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"prompt": "How do I reset my password?", "completion": "Use the link."})
    path.write_text((line + "\n") * 20_000)  # ~1.7 MB of text, ~8 MB as parsed dicts
    tracemalloc.start()
    count = sum(1 for _ in read_file(path, "jsonl", file="big.jsonl"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20_000
    assert peak < 500_000


# --- JSON -----------------------------------------------------------------------------------

def test_json_array_positions_are_indexes_and_non_objects_are_named(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"q": "a"}, "just a string", {"q": "b"}, None], indent=2))
    found = items(path)
    assert summary(found) == [("ok", "record 0", None), ("bad", "record 1", "not_a_record"),
                              ("ok", "record 2", None), ("bad", "record 3", "not_a_record")]
    assert "string" in found[1].detail and "just a string" in found[1].detail


def test_json_object_of_records_keeps_each_key(tmp_path):
    path = tmp_path / "by_id.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"t-1": {"q": "a"}, "t-2": {"q": "b", "_key": "clobbered"}}).encode())
    found = items(path)
    assert summary(found) == [("ok", "key t-1", None), ("ok", "key t-2", None)]
    assert found[0].data == {"_key": "t-1", "q": "a"}
    assert found[1].data["_key"] == "t-2"


def test_json_single_object_is_one_document(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"prompt": "p", "meta": {"lang": "en"}}))
    found = items(path)
    assert summary(found) == [("ok", "document", None)]
    assert found[0].data == {"prompt": "p", "meta": {"lang": "en"}}


@pytest.mark.parametrize("content", ["42", '"a string"', "null", "true"])
def test_json_scalar_file_is_not_a_format(tmp_path, content):
    path = tmp_path / "scalar.json"
    path.write_text(content)
    error = refused(path)
    assert error.code == "ingest_not_a_format"
    assert "not a record" in error.message


def test_invalid_json_file_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2,,}\n]\n')
    error = refused(path)
    assert error.code == "ingest_not_a_format"
    assert "line 3, column 11" in error.message
    assert (error.details["line"], error.details["column"]) == (3, 11)


@pytest.mark.parametrize("content", ["[]", "{}", " \n"])
def test_json_without_records_is_an_empty_source(tmp_path, content):
    path = tmp_path / "none.json"
    path.write_text(content)
    assert refused(path).code == "ingest_empty_source"


def test_a_json_file_that_is_really_jsonl_is_read_as_jsonl(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('{"q": "a"}\n{"q": "b"}\nnot json\n')
    assert detect_format(path) == "jsonl"
    assert summary(items(path)) == [("ok", "line 1", None), ("ok", "line 2", None),
                                    ("bad", "line 3", "malformed_json")]


def test_forcing_json_on_jsonl_content_hints_at_jsonl(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('{"q": "a"}\n{"q": "b"}\n')
    error = refused(path, "json")
    assert error.code == "ingest_not_a_format" and "--format jsonl" in error.message


# --- CSV / TSV ------------------------------------------------------------------------------

TICKETS_CSV = (
    b"\xef\xbb\xbfid,subject,body\r\n"                                        # 1 header
    b'1,"Refund, please","I was charged twice."\r\n'                          # 2
    b'2,Login,"Line one\r\nline two, with a comma\r\nline three"\r\n'          # 3-5
    b"3,short row\r\n"                                                        # 6
    b"\r\n"                                                                   # 7 blank
    b'4,"Caf\xe9",latin-1 bytes\r\n'                                          # 8
    b'5,"He said ""hi""",quotes\r\n'                                          # 9
    b"6,too,many,fields\r\n"                                                  # 10
)


def test_csv_rows_start_at_their_physical_line(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_bytes(TICKETS_CSV)
    found = items(path)
    assert summary(found) == [
        ("ok", "line 2", None), ("ok", "line 3", None), ("bad", "line 6", "csv_field_count"),
        ("bad", "line 8", "undecodable_bytes"), ("ok", "line 9", None),
        ("bad", "line 10", "csv_field_count")]
    assert found[0].data == {"id": "1", "subject": "Refund, please", "body": "I was charged twice."}
    assert found[1].data["body"] == "Line one\r\nline two, with a comma\r\nline three"
    assert found[4].data["subject"] == 'He said "hi"'
    assert "2 fields, the header has 3" in found[2].detail
    assert "4 fields" in found[5].detail


def test_tsv_is_tab_separated(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("prompt\tcompletion\nhello, world\thi\nno tab here\n\tempty prompt\n")
    found = items(path)
    assert summary(found) == [("ok", "line 2", None), ("bad", "line 3", "csv_field_count"),
                              ("ok", "line 4", None)]
    assert found[0].data == {"prompt": "hello, world", "completion": "hi"}
    assert found[2].data == {"prompt": "", "completion": "empty prompt"}


def test_header_only_csv_is_an_empty_source(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("id,prompt,completion\r\n\r\n")
    error = refused(path)
    assert error.code == "ingest_empty_source" and "header" in error.message


def test_csv_duplicate_and_blank_header_names_keep_every_column(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,text, ,label\na,b,c,d\n")
    assert items(path)[0].data == {"text": "a", "text_2": "b", "column_3": "c", "label": "d"}


def test_csv_streams_with_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    row = '"Where is my order, please?",Tracking link.\n'
    path.write_text("prompt,completion\n" + row * 20_000)  # ~1 MB; ~8 MB as dicts
    tracemalloc.start()
    count = sum(1 for _ in read_file(path, "csv", file="big.csv"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20_000
    assert peak < 500_000


# --- Parquet --------------------------------------------------------------------------------

def test_parquet_rows_across_row_groups(tmp_path):
    path = tmp_path / "rows.parquet"
    table = pa.table({"prompt": [f"p{i}" for i in range(2500)], "n": list(range(2500)),
                      "when": [dt.datetime(2024, 1, 1, 12, 0)] * 2500})
    pq.write_table(table, path, row_group_size=1000)
    found = items(path)
    assert len(found) == 2500 and all(isinstance(i, Record) for i in found)
    assert [i.position for i in found[:2]] == ["row 0", "row 1"]
    assert found[-1].position == "row 2499"
    assert found[1234].data == {"prompt": "p1234", "n": 1234, "when": "2024-01-01T12:00:00"}


def test_broken_parquet_is_not_a_format(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    assert refused(path).code == "ingest_not_a_format"


def test_parquet_without_rows_is_an_empty_source(tmp_path):
    path = tmp_path / "none.parquet"
    pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), path)
    assert refused(path).code == "ingest_empty_source"


# --- text and markdown ----------------------------------------------------------------------

NOTES = "\n\nFirst paragraph,\nstill first.\n\n\n   \nSecond paragraph.\r\n\r\nThird.\n\n"


def test_text_is_one_document_per_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(NOTES, newline="")
    found = items(path)
    assert summary(found) == [("ok", "document", None)]
    assert found[0].data == {"text": "First paragraph,\nstill first.\n\n\n   \n"
                                     "Second paragraph.\n\nThird."}


def test_text_blocks_are_numbered_with_their_first_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(NOTES, newline="")
    found = items(path, text_blocks=True)
    assert summary(found) == [("ok", "block 1 (line 3)", None), ("ok", "block 2 (line 8)", None),
                              ("ok", "block 3 (line 10)", None)]
    assert [i.data["text"] for i in found] == ["First paragraph,\nstill first.",
                                               "Second paragraph.", "Third."]


def test_markdown_blocks_do_not_split_a_fenced_code_block(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("# Title\n\n```python\nx = 1\n\ny = 2\n```\n\nAfter.\n")
    found = items(path, text_blocks=True)
    assert summary(found) == [("ok", "block 1 (line 1)", None), ("ok", "block 2 (line 3)", None),
                              ("ok", "block 3 (line 9)", None)]
    assert found[1].data["text"] == "```python\nx = 1\n\ny = 2\n```"


def test_text_block_with_bad_bytes_is_undecodable(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"good block\n\nbad \xff block\nmore\n\nlast\n")
    assert summary(items(path, text_blocks=True)) == [
        ("ok", "block 1 (line 1)", None), ("bad", "block 2 (line 3)", "undecodable_bytes"),
        ("ok", "block 3 (line 6)", None)]
    assert summary(items(path)) == [("bad", "document", "undecodable_bytes")]


# --- detection and file-level refusals ------------------------------------------------------

def test_sniffing_files_without_an_extension(tmp_path):
    (tmp_path / "lines").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "array").write_text('\n  [{"a": 1}]')
    (tmp_path / "doc").write_text('{\n  "a": 1\n}\n')
    pq.write_table(pa.table({"a": [1]}), tmp_path / "columns")
    assert [detect_format(tmp_path / n) for n in ("lines", "array", "doc", "columns")] == [
        "jsonl", "json", "json", "parquet"]


def test_unrecognisable_content_is_format_unknown(tmp_path):
    path = tmp_path / "README"
    path.write_text("just some words\n")
    with pytest.raises(InputError) as info:
        detect_format(path)
    assert info.value.code == "ingest_format_unknown" and "--format" in info.value.message
    assert detect_format(path, "txt") == "text"
    assert summary(items(path, "text")) == [("ok", "document", None)]


def test_unknown_format_name_is_refused(tmp_path):
    with pytest.raises(InputError) as info:
        detect_format(tmp_path / "x", "xlsx")
    assert info.value.code == "ingest_format_unknown"


def test_format_override_beats_the_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text('{"a": 1}\n')
    assert detect_format(path, "jsonl") == "jsonl"
    assert summary(items(path, "jsonl")) == [("ok", "line 1", None)]


def test_binary_files_are_not_a_format(tmp_path):
    blob = bytes(range(256)) * 8
    (tmp_path / "model.bin").write_bytes(blob)
    (tmp_path / "fake.jsonl").write_bytes(b'{"a": 1}\n' + blob)
    with pytest.raises(InputError) as info:
        detect_format(tmp_path / "model.bin")
    assert info.value.code == "ingest_not_a_format"
    assert refused(tmp_path / "fake.jsonl").code == "ingest_not_a_format"


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.json", "empty.txt",
                                  "empty.parquet", "empty"])
def test_a_zero_byte_file_is_an_empty_source(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InputError) as info:
        check_file(path, detect_format(path) if "." in name else "jsonl", file=name)
    assert info.value.code == "ingest_empty_source"
    if "." not in name:
        with pytest.raises(InputError) as info:
            detect_format(path)
        assert info.value.code == "ingest_empty_source"
