"""Manifest splits as a Dataset, the padding collator, packing and prompt/answer cuts."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from brewslm.prepare.encode import IGNORE_INDEX
from brewslm.stages.prepare import SCHEMA
from brewslm.train.data import PadCollator, load_split, packed, prompt_and_answer

M = IGNORE_INDEX
ROWS = [  # (row_id, input_ids, labels): a masked prompt, then the answer
    ("r1", [5, 6, 7, 8], [M, M, 7, 8]),
    ("r2", [9, 10], [M, 10]),
    ("r3", [11, 12, 13, 14, 15, 16], [M, M, M, 14, 15, 16]),
]


@pytest.fixture
def manifest_dir(tmp_path):
    """A manifest folder with train.parquet in stage 06's schema."""
    columns = {name: [] for name in SCHEMA.names}
    for row_id, ids, labels in ROWS:
        for name, value in zip(SCHEMA.names, (row_id, ids, labels, len(ids),
                                              sum(x != M for x in labels), None, None),
                               strict=True):
            columns[name].append(value)
    pq.write_table(pa.Table.from_pydict(columns, schema=SCHEMA), tmp_path / "train.parquet")
    return tmp_path


def test_load_split_reads_rows_in_order(manifest_dir):
    split = load_split(manifest_dir, "train")
    assert len(split) == 3
    assert split[0] == {"row_id": "r1", "input_ids": [5, 6, 7, 8], "labels": [M, M, 7, 8]}
    assert split.lengths == [4, 2, 6]
    assert split.trainable_tokens == 6 and split.truncated_rows == 0


def test_max_length_cuts_the_end_and_drops_rows_left_without_answer(manifest_dir):
    split = load_split(manifest_dir, "train", max_length=3)
    assert [row["row_id"] for row in split] == ["r1", "r2"]  # r3's answer was cut away
    assert split[0]["input_ids"] == [5, 6, 7] and split[0]["labels"] == [M, M, 7]
    assert split.truncated_rows == 2


def test_collator_pads_ids_with_pad_labels_with_ignore_and_masks_attention(manifest_dir):
    batch = PadCollator(pad_id=3)(list(load_split(manifest_dir, "train"))[:2])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 3, 3]]
    assert batch["labels"].tolist() == [[M, M, 7, 8], [M, 10, M, M]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collator_left_pads_and_rounds_width():
    rows = [{"input_ids": [1, 2, 3]}, {"input_ids": [4]}]
    batch = PadCollator(pad_id=0, padding_side="left", pad_to_multiple_of=4)(rows)
    assert batch["input_ids"].tolist() == [[0, 1, 2, 3], [0, 0, 0, 4]]
    assert batch["labels"].tolist() == [[M, 1, 2, 3], [M, M, M, 4]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]


def test_collator_works_in_a_dataloader(manifest_dir):
    loader = DataLoader(load_split(manifest_dir, "train"), batch_size=2,
                        collate_fn=PadCollator(pad_id=3))
    shapes = [tuple(batch["input_ids"].shape) for batch in loader]
    assert shapes == [(2, 4), (1, 6)]


def test_collator_refuses_bad_settings():
    with pytest.raises(ValueError):
        PadCollator(pad_id=0, padding_side="middle")
    with pytest.raises(ValueError, match="pad"):
        PadCollator(pad_id=None)  # type: ignore[arg-type]


def test_packed_concatenates_whole_rows_up_to_max_length(manifest_dir):
    split = packed(load_split(manifest_dir, "train"), max_length=6)
    assert [row["row_id"] for row in split] == ["r1+r2", "r3"]
    assert split[0]["input_ids"] == [5, 6, 7, 8, 9, 10]
    assert split[0]["labels"] == [M, M, 7, 8, M, 10]
    assert split.trainable_tokens == 6  # nothing gained or lost


def test_prompt_and_answer_cut_at_the_first_trained_label():
    prompt, answer = prompt_and_answer({"input_ids": [1, 2, 3, 4, 5],
                                        "labels": [M, M, 3, 4, M]})
    assert (prompt, answer) == ([1, 2], [3, 4])
