"""The hf: source on save_to_disk folders, and an uncached id offline. Never touches the network:
the hub is switched off both by environment and in the already-imported libraries' settings
(which datasets and huggingface_hub read once, at import)."""

from __future__ import annotations

import pytest

from brewslm.errors import InputError
from brewslm.sources import open_source
from brewslm.sources.base import Record
from brewslm.sources.hf import parse_spec

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-home" / "datasets")
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


ROWS = [{"prompt": "Reset my password", "completion": "Use the link.", "n": 1},
        {"prompt": "Refund?", "completion": "Approved.", "n": 2},
        {"prompt": "Hours?", "completion": "9 to 5.", "n": 3}]


def test_a_saved_dataset_is_read_row_by_row(tmp_path):
    folder = tmp_path / "tickets_ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    opened = open_source(f"hf:{folder}", workdir=tmp_path)
    assert opened.kind == "hf"
    assert [(f.name, f.format) for f in opened.files] == [("tickets_ds", "arrow")]
    items = list(opened.items)
    assert all(isinstance(i, Record) for i in items)
    assert [(i.file, i.position) for i in items] == [
        ("tickets_ds", "row 0"), ("tickets_ds", "row 1"), ("tickets_ds", "row 2")]
    assert [i.data for i in items] == ROWS
    again = open_source(f"hf:{folder}", workdir=tmp_path)
    assert again.content_digest == opened.content_digest


def test_a_dataset_dict_picks_the_split(tmp_path):
    folder = tmp_path / "dd"
    full = datasets.Dataset.from_list(ROWS)
    datasets.DatasetDict({"train": full.select([0, 1]), "test": full.select([2])}).save_to_disk(
        str(folder))
    train = open_source(f"hf:{folder}", workdir=tmp_path)
    test = open_source(f"hf:{folder}:test", workdir=tmp_path)
    assert [i.data["n"] for i in train.items] == [1, 2]
    assert [(i.position, i.data["n"]) for i in test.items] == [("row 0", 3)]
    assert (train.options["split"], test.options["split"]) == ("train", "test")
    assert train.content_digest != test.content_digest
    with pytest.raises(InputError) as info:
        open_source(f"hf:{folder}:validation", workdir=tmp_path)
    assert info.value.code == "ingest_source_not_found"
    assert "train" in info.value.message and "test" in info.value.message


def test_an_empty_dataset_is_an_empty_source(tmp_path):
    empty = datasets.Dataset.from_dict({"prompt": []})
    empty.save_to_disk(str(tmp_path / "no_shards"))  # datasets itself cannot load this one
    empty.save_to_disk(str(tmp_path / "one_shard"), num_shards=1)
    for name in ("no_shards", "one_shard"):
        with pytest.raises(InputError) as info:
            open_source(f"hf:{tmp_path / name}", workdir=tmp_path)
        assert info.value.code == "ingest_empty_source"


def test_an_uncached_id_offline_is_unavailable(tmp_path):
    with pytest.raises(InputError) as info:
        open_source("hf:nobody-here/no-such-dataset:train", workdir=tmp_path)
    assert info.value.code == "ingest_hf_unavailable"
    assert "not in the local cache" in info.value.message
    assert "offline" in info.value.message and info.value.details["offline"] is True


@pytest.mark.parametrize("spec", ["hf:", "hf::train", "hf:a:b:c:d", "hf:org/ds:"])
def test_malformed_hf_specs_are_unsupported(spec, tmp_path):
    with pytest.raises(InputError) as info:
        open_source(spec, workdir=tmp_path)
    assert info.value.code == "ingest_source_unsupported"


def test_spec_parts():
    assert parse_spec("hf:org/ds") == parse_spec("hf:org/ds")
    ref = parse_spec("hf:org/ds:test:v1.0")
    assert (ref.id, ref.split, ref.revision) == ("org/ds", "test", "v1.0")
    assert parse_spec("hf:org/ds").split is None


def test_a_local_data_folder_goes_through_load_dataset(tmp_path):
    folder = tmp_path / "raw_tickets"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.jsonl").write_text(
        "".join(f'{{"prompt": "{r["prompt"]}", "n": {r["n"]}}}\n' for r in ROWS))
    opened = open_source(f"hf:{folder}", workdir=tmp_path)
    assert [(i.file, i.position, i.data["n"]) for i in opened.items] == [
        ("raw_tickets", "row 0", 1), ("raw_tickets", "row 1", 2), ("raw_tickets", "row 2", 3)]
    assert list((tmp_path / "hf-home" / "datasets").rglob("*.arrow"))  # cached in the test's home
