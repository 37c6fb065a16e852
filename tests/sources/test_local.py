"""The local source (a file or a folder) and the source registry (which source claims a spec,
plugins from entry points, unsupported schemes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import brewslm.sources as sources
from brewslm.errors import InputError
from brewslm.sources import open_source
from brewslm.sources.base import OpenedSource, Record


def summary(opened: OpenedSource):
    return [(i.file, i.position, None if isinstance(i, Record) else i.code) for i in opened.items]


def refused(spec: str, tmp_path: Path, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        open_source(spec, workdir=tmp_path, **kw)
    return info.value


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    root = tmp_path / "export"
    (root / "b_more" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.jsonl").write_text('{"q": "one"}\n[1]\n{"q": "two"}\n')
    (root / "b_more" / "tickets.csv").write_text('q,a\n"x, y",z\nshort\n')
    (root / "b_more" / "deep" / "notes.md").write_text("# Notes\n\nBody.\n")
    (root / "b_more" / "deep" / "rows.json").write_text('[{"q": "three"}]')
    (root / "README.rst").write_text("not data")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    (root / ".hidden.jsonl").write_text('{"q": "secret"}\n')
    (root / ".git" / "config.json").write_text("{}")
    return root


def test_folder_is_read_recursively_in_sorted_order(mixed_folder, tmp_path):
    opened = open_source(str(mixed_folder), workdir=tmp_path, text_blocks=True)
    assert opened.kind == "file"
    assert [(f.name, f.format) for f in opened.files] == [
        ("a.jsonl", "jsonl"), ("b_more/deep/notes.md", "markdown"),
        ("b_more/deep/rows.json", "json"), ("b_more/tickets.csv", "csv")]
    assert opened.options["skipped"] == ["README.rst", "image.png"]
    assert summary(opened) == [
        ("a.jsonl", "line 1", None), ("a.jsonl", "line 2", "not_a_record"),
        ("a.jsonl", "line 3", None), ("b_more/deep/notes.md", "block 1 (line 1)", None),
        ("b_more/deep/notes.md", "block 2 (line 3)", None),
        ("b_more/deep/rows.json", "record 0", None), ("b_more/tickets.csv", "line 2", None),
        ("b_more/tickets.csv", "line 3", "csv_field_count")]


def test_files_are_hashed_by_content(mixed_folder, tmp_path):
    opened = open_source(str(mixed_folder), workdir=tmp_path)
    first = opened.files[0]
    raw = (mixed_folder / "a.jsonl").read_bytes()
    assert (first.sha256, first.size_bytes) == (hashlib.sha256(raw).hexdigest(), len(raw))
    same = tmp_path / "same"
    for path in mixed_folder.rglob("*"):
        target = same / path.relative_to(mixed_folder)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert open_source(str(same), workdir=tmp_path).content_digest == opened.content_digest
    (same / "a.jsonl").write_text('{"q": "changed"}\n')
    assert open_source(str(same), workdir=tmp_path).content_digest != opened.content_digest


def test_single_file_records_carry_its_name(tmp_path):
    path = tmp_path / "sub" / "train.jsonl"
    path.parent.mkdir()
    path.write_text('{"q": 1}\n\n{"q": 2}\n')
    opened = open_source(str(path), workdir=tmp_path)
    assert [f.name for f in opened.files] == ["train.jsonl"]
    assert summary(opened) == [("train.jsonl", "line 1", None), ("train.jsonl", "line 3", None)]
    assert summary(open_source(path.as_uri(), workdir=tmp_path)) == summary(
        open_source(str(path), workdir=tmp_path))


def test_format_override_reads_every_file_of_a_folder(tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    (root / "day1.log").write_text('{"q": 1}\n')
    (root / "day2.log").write_text('{"q": 2}\n')
    opened = open_source(str(root), fmt="ndjson", workdir=tmp_path)
    assert [(f.name, f.format) for f in opened.files] == [("day1.log", "jsonl"),
                                                          ("day2.log", "jsonl")]
    assert len(list(opened.items)) == 2


def test_missing_path_and_folder_without_data_are_not_found(tmp_path):
    assert refused(str(tmp_path / "nope.jsonl"), tmp_path).code == "ingest_source_not_found"
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.rst").write_text("x")
    (empty / ".hidden.csv").write_text("a\n1\n")
    error = refused(str(empty), tmp_path)
    assert error.code == "ingest_source_not_found" and "known extension" in error.message


def test_a_bad_file_in_a_folder_fails_at_open_before_any_record(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.jsonl").write_text('{"q": 1}\n')
    (root / "b.csv").write_text("q,a\n")
    (root / "c.json").write_text("3")
    error = refused(str(root), tmp_path)
    assert (error.code, error.details["file"]) == ("ingest_empty_source", "b.csv")
    (root / "b.csv").write_text("q,a\n1,2\n")
    error = refused(str(root), tmp_path)
    assert (error.code, error.details["file"]) == ("ingest_not_a_format", "c.json")


def test_empty_and_binary_single_files(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blob").write_bytes(b"\x00\x01\x02" * 100)
    assert refused(str(tmp_path / "empty.jsonl"), tmp_path).code == "ingest_empty_source"
    assert refused(str(tmp_path / "blob"), tmp_path).code == "ingest_not_a_format"


def test_bad_format_option_is_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"q": 1}\n')
    assert refused(str(tmp_path / "a.jsonl"), tmp_path, fmt="xls").code == "ingest_format_unknown"


# --- the registry ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["s3://bucket/data.jsonl", "gs://b/x", "ftp://host/x.csv",
                                  "gdrive:abc", ""])
def test_unknown_schemes_are_unsupported(spec, tmp_path):
    assert refused(spec, tmp_path).code == "ingest_source_unsupported"


def test_builtins_claim_in_order(tmp_path):
    names = [s.name for s in sources.BUILTIN_SOURCES]
    assert names == ["hf", "kaggle", "http", "file"]
    picks = {spec: sources.find_source(spec).name for spec in (
        "hf:org/ds", "kaggle:dataset:o/s", "https://x/y.csv", "HTTP://x/y", "data/x.jsonl",
        "./odd:name.jsonl", "file:///tmp/x.jsonl")}
    assert picks == {"hf:org/ds": "hf", "kaggle:dataset:o/s": "kaggle", "https://x/y.csv": "http",
                     "HTTP://x/y": "http", "data/x.jsonl": "file", "./odd:name.jsonl": "file",
                     "file:///tmp/x.jsonl": "file"}


class _FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self._target = name, f"fake:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


class MemorySource:
    name = "memory"

    def claims(self, spec):
        return spec.startswith("mem:")

    def open(self, spec, *, fmt=None, text_blocks=False, workdir=None):
        rows = [Record(spec, "row 0", {"q": spec.removeprefix("mem:")})]
        return OpenedSource(spec=spec, kind="memory", files=[], items=iter(rows))


class ExplodingClaims(MemorySource):
    name = "explodes"

    def claims(self, spec):
        raise RuntimeError("bug in plugin")


def test_plugins_are_found_and_broken_ones_skipped(monkeypatch, tmp_path, capsys):
    eps = [_FakeEntryPoint("broken", ImportError("no module named brewslm_s3")),
           _FakeEntryPoint("memory", MemorySource), _FakeEntryPoint("not_a_source", json),
           _FakeEntryPoint("explodes", ExplodingClaims())]
    monkeypatch.setattr(sources, "entry_points", lambda group: eps if group ==
                        sources.ENTRY_POINT_GROUP else [])
    opened = open_source("mem:hello", workdir=tmp_path)
    assert [i.data for i in opened.items] == [{"q": "hello"}]
    err = capsys.readouterr().err
    assert "skipping source plugin 'broken'" in err and "brewslm_s3" in err
    assert "skipping source plugin 'not_a_source'" in err
    assert "claims() failed" in err
    assert [s.name for s in sources.registered_sources()][-2:] == ["explodes", "memory"]
    assert refused("s3://x", tmp_path).code == "ingest_source_unsupported"
