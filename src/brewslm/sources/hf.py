"""The Hugging Face datasets source: `hf:ID[:split[:revision]]`.

    brewslm ingest -p NAME hf:my-org/tickets              # split "train"
    brewslm ingest -p NAME hf:my-org/tickets:test:v1.0    # split and revision
    brewslm ingest -p NAME hf:./saved_dataset:validation  # a save_to_disk folder

ID is either a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (read with
`datasets.load_from_disk`; the split picks from a DatasetDict, "train" by default) or anything
`datasets.load_dataset` accepts: a hub id, served from the local cache when HF_HUB_OFFLINE=1 or
HF_DATASETS_OFFLINE=1, or a local data folder. Rows become records "row N" (0-based) whose
`file` is the dataset id (the folder's name for a local folder, so no path reaches the snapshot).
The single SourceFile's sha256 hashes the split name and the dataset's Arrow files. `datasets`
is imported only when an hf: source is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brewslm.errors import InputError
from brewslm.sources.base import Item, OpenedSource, Record, SourceFile
from brewslm.sources.formats import arrow_rows

DEFAULT_SPLIT = "train"
BATCH = 1000
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class HfRef:
    id: str
    split: str | None
    revision: str | None


class HfSource:
    name = "hf"

    def claims(self, spec: str) -> bool:
        return spec.startswith("hf:")

    def open(self, spec: str, *, fmt: str | None = None, text_blocks: bool = False,
             workdir: Any = None) -> OpenedSource:
        ref = parse_spec(spec)
        dataset, split, label = load(ref)
        if len(dataset) == 0:
            raise InputError("ingest_empty_source", f"{spec}: split {split!r} has no rows",
                             split=split)
        sha, size = dataset_digest(dataset, split)
        return OpenedSource(spec=spec, kind="hf", files=[SourceFile(label, sha, size, "arrow")],
                            items=iter_rows(dataset, label),
                            options={"split": split, "revision": ref.revision})


def parse_spec(spec: str) -> HfRef:
    """`hf:ID[:split[:revision]]` into its parts; InputError for any other shape."""
    parts = spec.removeprefix("hf:").split(":")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts[1:]):
        raise InputError("ingest_source_unsupported",
                         f"{spec!r}: expected hf:ID[:split[:revision]]", spec=spec)
    parts += [None] * (3 - len(parts))
    return HfRef(parts[0], parts[1], parts[2])


def load(ref: HfRef) -> tuple[Any, str, str]:
    """(the datasets.Dataset, the split read, the label records carry)."""
    try:
        import datasets
    except ImportError as e:
        raise InputError("ingest_hf_unavailable", "hf: sources need the `datasets` package "
                         "(pip install datasets)") from e
    folder = Path(ref.id).expanduser()
    if is_saved_dataset(folder):
        return _from_disk(datasets, folder, ref)
    split = ref.split or DEFAULT_SPLIT
    label = folder.resolve().name if folder.is_dir() else ref.id
    try:
        dataset = datasets.load_dataset(ref.id, split=split, revision=ref.revision)
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFound, ...)
        raise _unavailable(ref, split, e) from e
    return dataset, split, label


def is_saved_dataset(folder: Path) -> bool:
    """True for a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk."""
    return folder.is_dir() and any((folder / n).is_file()
                                   for n in ("dataset_dict.json", "state.json"))


def _from_disk(datasets: Any, folder: Path, ref: HfRef) -> tuple[Any, str, str]:
    label = folder.resolve().name
    if _saved_without_data(folder):  # datasets cannot load a 0-row dataset saved with 0 shards
        raise InputError("ingest_empty_source", f"{label}: the saved dataset has no rows")
    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as e:
        raise InputError("ingest_hf_unavailable", f"{label}: cannot load the save_to_disk "
                         f"folder: {type(e).__name__}: {_short(e)}") from e
    if not isinstance(loaded, datasets.DatasetDict):
        # A plain Dataset has no splits to pick from; a named split is recorded, not checked.
        return loaded, ref.split or DEFAULT_SPLIT, label
    split = ref.split or _default_split(list(loaded))
    if split not in loaded:
        raise InputError("ingest_source_not_found", f"{label} has no split {split!r}; it has: "
                         f"{', '.join(loaded)}", split=split, splits=list(loaded))
    return loaded[split], split, label


def _saved_without_data(folder: Path) -> bool:
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []


def _default_split(splits: list[str]) -> str:
    # "train" when there is one; a dict of a single split needs no naming.
    return splits[0] if len(splits) == 1 and DEFAULT_SPLIT not in splits else DEFAULT_SPLIT


def iter_rows(dataset: Any, label: str) -> Iterator[Item]:
    """Rows as records "row N", read as Arrow batches (raw values, not decoded features)."""
    index = 0
    for table in dataset.with_format("arrow").iter(batch_size=BATCH):
        for row in arrow_rows(table):
            yield Record(label, f"row {index}", row)
            index += 1


def dataset_digest(dataset: Any, split: str) -> tuple[str, int]:
    """(sha256 over the split name and the Arrow files, their total size). An in-memory
    dataset has no files: its fingerprint stands in for the content."""
    digest = hashlib.sha256(f"{split}\0".encode())
    files = [Path(f["filename"]) for f in dataset.cache_files]
    if not files:
        digest.update(str(dataset._fingerprint).encode())
        return digest.hexdigest(), int(dataset.data.nbytes)
    size = 0
    for path in files:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


def _unavailable(ref: HfRef, split: str, error: Exception) -> InputError:
    offline = any(os.environ.get(v, "").lower() in _TRUE
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    why = ("the hub is not consulted (offline: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)"
           if offline else "the hub is unreachable or does not have it")
    return InputError("ingest_hf_unavailable",
                      f"hf dataset {ref.id!r} (split {split!r}) is not in the local cache and "
                      f"{why}: {type(error).__name__}: {_short(error)}",
                      dataset=ref.id, split=split, offline=offline)


def _short(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
