"""Training data: a manifest split as a torch Dataset, and the collator that pads its batches.

    from brewslm.train.data import PadCollator, load_split
    train = load_split(manifest_dir, "train", max_length=512)   # rows of stage 06's Parquet
    loader = DataLoader(train, batch_size=16, collate_fn=PadCollator(tokenizer.pad_token_id))
    batch = next(iter(loader))      # input_ids, labels, attention_mask: (batch, longest) tensors

Rows are read from the manifest artifact's `<split>.parquet` (columns row_id, input_ids, labels,
n_tokens, n_trainable) as stage 06 wrote them: labels already hold IGNORE_INDEX (-100) wherever
the loss is masked. The collator pads input_ids with the pad id, labels with -100 (padding never
counts in the loss) and marks real tokens in attention_mask. packed() concatenates rows into
sequences of at most max_length tokens, for recipes with `packing: true`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from brewslm.prepare.encode import IGNORE_INDEX

COLUMNS = ("row_id", "input_ids", "labels")
PADDING_SIDES = ("right", "left")


class TokenizedSplit(Dataset):
    """Tokenized rows in memory: each item is {"row_id", "input_ids", "labels"} (lists)."""

    def __init__(self, rows: Iterable[dict[str, Any]], *, truncated_rows: int = 0) -> None:
        self.rows = [{key: row[key] for key in COLUMNS} for row in rows]
        self.truncated_rows = truncated_rows  # rows cut to max_length when loaded

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    @property
    def lengths(self) -> list[int]:
        """Tokens per row (for length-grouped sampling and memory estimates)."""
        return [len(row["input_ids"]) for row in self.rows]

    @property
    def trainable_tokens(self) -> int:
        return sum(sum(label != IGNORE_INDEX for label in row["labels"]) for row in self.rows)


def load_split(manifest_dir: Path | str, split: str, *,
               max_length: int | None = None) -> TokenizedSplit:
    """Read `<split>.parquet` of a manifest artifact; rows over max_length are cut at the end
    (as prepare's truncate policy does: the prompt stays whole, the answer's tail goes)."""
    table = pq.read_table(Path(manifest_dir) / f"{split}.parquet", columns=list(COLUMNS))
    rows = table.to_pylist()
    truncated = 0
    if max_length is not None:
        for row in rows:
            if len(row["input_ids"]) > max_length:
                row["input_ids"], row["labels"] = (row["input_ids"][:max_length],
                                                   row["labels"][:max_length])
                truncated += 1
    # A row whose answer was cut away entirely would only add padding-like noise.
    kept = [row for row in rows if any(label != IGNORE_INDEX for label in row["labels"])]
    return TokenizedSplit(kept, truncated_rows=truncated)


def packed(split: TokenizedSplit, max_length: int) -> TokenizedSplit:
    """Concatenate consecutive rows into sequences of at most max_length tokens (greedy, in
    order, so the result is deterministic). Rows stay whole; a longer row stays alone. Rows in
    one sequence attend to each other: fine for short independent examples, and it removes
    almost all padding."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for row in split.rows:
        fits = current is not None and (len(current["input_ids"]) + len(row["input_ids"])
                                        <= max_length)
        if fits:
            current["row_id"] += "+" + row["row_id"]
            current["input_ids"] = current["input_ids"] + row["input_ids"]
            current["labels"] = current["labels"] + row["labels"]
        else:
            current = dict(row)
            out.append(current)
    return TokenizedSplit(out, truncated_rows=split.truncated_rows)


def prompt_and_answer(row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of a single-answer row: the prompt is every token before the
    first trained label (what generation is given), the answer the trained tokens (the
    reference, closing special token included)."""
    labels = row["labels"]
    start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    answer = [label for label in labels[start:] if label != IGNORE_INDEX]
    return list(row["input_ids"][:start]), answer


@dataclass(frozen=True)
class PadCollator:
    """Pads a list of rows to the longest (optionally to a multiple of pad_to_multiple_of).

    Right padding for training; left padding for batched generation, so that every prompt ends
    where generation starts.
    """

    pad_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.padding_side not in PADDING_SIDES:
            raise ValueError(f"padding_side must be one of {PADDING_SIDES}")
        if self.pad_id is None or self.pad_id < 0:
            raise ValueError("pad_id must be a token id (the tokenizer has no pad token?)")

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = self._width(max(len(row["input_ids"]) for row in rows))
        input_ids = [self._pad(row["input_ids"], width, self.pad_id) for row in rows]
        labels = [self._pad(row.get("labels", row["input_ids"]), width, IGNORE_INDEX)
                  for row in rows]
        mask = [self._pad([1] * len(row["input_ids"]), width, 0) for row in rows]
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long)}

    def _width(self, longest: int) -> int:
        multiple = self.pad_to_multiple_of
        return -(-longest // multiple) * multiple if multiple else longest

    def _pad(self, values: Sequence[int], width: int, fill: int) -> list[int]:
        padding = [fill] * (width - len(values))
        return [*values, *padding] if self.padding_side == "right" else [*padding, *values]
