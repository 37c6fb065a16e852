"""The kaggle: source without the kaggle package or the network: missing credentials, the
package not installed, and (with a stand-in for kaggle's API module) download, unzip and read.
"""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import pytest

from brewslm.errors import InputError
from brewslm.sources import open_source
from brewslm.sources.base import Record
from brewslm.sources.kaggle import find_credentials, parse_spec

SPEC = "kaggle:dataset:acme/support-tickets"


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch, tmp_path):
    """A home without ~/.kaggle and no KAGGLE_* variables; the kaggle package unimportable."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "kaggle", None)


def refused(spec: str, tmp_path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        open_source(spec, workdir=tmp_path / "work")
    return info.value


def test_no_credentials_names_both_variables_and_the_file(tmp_path):
    error = refused(SPEC, tmp_path)
    assert error.code == "ingest_kaggle_credentials_missing"
    config = tmp_path / "home" / ".kaggle" / "kaggle.json"
    assert error.message == ("kaggle: sources need credentials: KAGGLE_USERNAME and KAGGLE_KEY "
                             f"are not set, and {config} does not exist")


def test_a_missing_key_is_named_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    error = refused(SPEC, tmp_path)
    assert error.code == "ingest_kaggle_credentials_missing"
    assert error.details["missing"] == ["KAGGLE_KEY"]
    assert "KAGGLE_KEY is not set" in error.message and "KAGGLE_USERNAME" not in error.message


def test_kaggle_json_without_a_key_is_named(tmp_path, monkeypatch):
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "alice"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    error = refused(SPEC, tmp_path)
    assert error.code == "ingest_kaggle_credentials_missing"
    assert f'{config / "kaggle.json"} has no "key"' in error.message


def test_credentials_from_env_or_file(tmp_path, monkeypatch):
    assert find_credentials({"KAGGLE_USERNAME": "a", "KAGGLE_KEY": "k"}) == "environment"
    config = tmp_path / "home" / ".kaggle"
    config.mkdir(parents=True)
    (config / "kaggle.json").write_text(json.dumps({"username": "a", "key": "k"}))
    assert find_credentials({}) == str(config / "kaggle.json")


def test_package_not_installed_is_kaggle_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    error = refused(SPEC + "?file=train.csv", tmp_path)
    assert error.code == "ingest_kaggle_failed"
    assert "not installed" in error.message and "pip install kaggle" in error.message


@pytest.mark.parametrize("spec", ["kaggle:competition:titanic", "kaggle:dataset:noslash",
                                  "kaggle:dataset:a/b/c", "kaggle:acme/tickets"])
def test_other_kaggle_forms_are_unsupported(spec, tmp_path):
    assert refused(spec, tmp_path).code == "ingest_source_unsupported"


def test_spec_with_a_file():
    ref = parse_spec(SPEC + "?file=data%2Ftrain.csv")
    assert (ref.dataset, ref.file) == ("acme/support-tickets", "data/train.csv")


def _fake_kaggle(monkeypatch, calls: list, *, fail: Exception | None = None):
    """Stand in for kaggle.api.kaggle_api_extended: downloads write what Kaggle would."""

    class KaggleApi:
        def authenticate(self):
            calls.append(("authenticate",))

        def dataset_download_files(self, dataset, path, force, quiet, unzip):
            calls.append(("files", dataset))
            if fail:
                raise fail
            with zipfile.ZipFile(Path(path) / "support-tickets.zip", "w") as zf:
                zf.writestr("train.jsonl", '{"q": "a"}\n{"q": \n')
                zf.writestr("extra/test.csv", "q,a\n1,2\n")
                zf.writestr("LICENSE", "CC0")

        def dataset_download_file(self, dataset, file_name, path, force, quiet):
            calls.append(("file", dataset, file_name))
            (Path(path) / file_name).write_text("q,a\n1,2\n3\n")

    root = types.ModuleType("kaggle")
    api = types.ModuleType("kaggle.api")
    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = KaggleApi
    for name, module in (("kaggle", root), ("kaggle.api", api),
                         ("kaggle.api.kaggle_api_extended", extended)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")


def test_download_unzip_and_read_like_a_folder(tmp_path, monkeypatch):
    calls: list = []
    _fake_kaggle(monkeypatch, calls)
    opened = open_source(SPEC, workdir=tmp_path / "work")
    assert calls == [("authenticate",), ("files", "acme/support-tickets")]
    assert opened.kind == "kaggle"
    assert [f.name for f in opened.files] == ["extra/test.csv", "train.jsonl"]
    assert opened.options["skipped"] == ["LICENSE"]
    assert [(i.file, i.position, None if isinstance(i, Record) else i.code)
            for i in opened.items] == [("extra/test.csv", "line 2", None),
                                       ("train.jsonl", "line 1", None),
                                       ("train.jsonl", "line 2", "malformed_json")]


def test_download_one_file(tmp_path, monkeypatch):
    calls: list = []
    _fake_kaggle(monkeypatch, calls)
    opened = open_source(SPEC + "?file=tickets.csv", workdir=tmp_path / "work")
    assert calls[-1] == ("file", "acme/support-tickets", "tickets.csv")
    assert [(i.position, getattr(i, "code", None)) for i in opened.items] == [
        ("line 2", None), ("line 3", "csv_field_count")]


def test_an_api_error_is_kaggle_failed(tmp_path, monkeypatch):
    _fake_kaggle(monkeypatch, [], fail=RuntimeError("403 Forbidden"))
    error = refused(SPEC, tmp_path)
    assert error.code == "ingest_kaggle_failed" and "403 Forbidden" in error.message
