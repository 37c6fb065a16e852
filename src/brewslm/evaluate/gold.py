"""A locked gold set: the user's own fixed eval rows, encoded exactly as prepare encodes rows.

    from brewslm.evaluate.gold import load_gold
    gold = load_gold("gold.jsonl", tokenizer, chat_template=None, train_prompts=prompts)
    gold.rows, gold.sha256, gold.leaked     # rows like the manifest's; sha256 of the file

Each JSONL line is a canonical chat row ({"messages": [..., {"role": "assistant", ...}]}, the
last assistant turn being the reference) or {"prompt": "...", "reference": "..."} (one user
turn and its answer). Rows are encoded by prepare's encode_row with the manifest's template
policy, so base, candidate and eval split all see the same rendering. "Locked": the file's
sha256 goes into the result, and a pack that pins `gold_sha256` refuses any other file
(`eval_gold_changed`), so a gold set cannot drift between evaluations unnoticed. A gold prompt
that also occurs in the train split is counted in `leaked` (the stage warns: such a row measures
memory, not generalisation). Gold rows have no upstream ledger story and are not in the ledger;
their results are in the report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brewslm.errors import InputError
from brewslm.ledger import make_row_id

MAX_TOKENS = 4096


@dataclass
class GoldSet:
    path: str
    sha256: str
    rows: list[dict[str, Any]]
    leaked: list[str] = field(default_factory=list)  # row ids whose prompt is in train


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_gold(path: str | Path, tokenizer: Any, *, chat_template: str | None,
              train_prompts: set[tuple[int, ...]]) -> GoldSet:
    from brewslm.prepare.encode import encode_row
    from brewslm.train.data import prompt_and_answer

    path = Path(path)
    sha = file_sha256(path)
    rows, leaked = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        canonical = _canonical(line, path, n)
        encoded = encode_row(canonical, tokenizer, chat_template=chat_template,
                             max_tokens=MAX_TOKENS)
        if isinstance(encoded, tuple):
            raise InputError("eval_gold_invalid", f"{path}:{n}: the row cannot be encoded "
                             f"({encoded[1]})", file=str(path), line=n, reason=encoded[1])
        row = {"row_id": make_row_id(f"gold:{sha}", n), "input_ids": encoded.input_ids,
               "labels": encoded.labels, "position": n}
        if tuple(prompt_and_answer(row)[0]) in train_prompts:
            leaked.append(row["row_id"])
        rows.append(row)
    if not rows:
        raise InputError("eval_gold_invalid", f"{path} has no rows", file=str(path))
    return GoldSet(str(path), sha, rows, leaked)


def _canonical(line: str, path: Path, n: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise InputError("eval_gold_invalid", f"{path}:{n}: not JSON ({exc})", file=str(path),
                         line=n) from None
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        messages = record["messages"]
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            return {"task": "sft", "messages": messages}
    if isinstance(record, dict) and isinstance(record.get("prompt"), str) and isinstance(
            record.get("reference"), str):
        return {"task": "sft", "messages": [{"role": "user", "content": record["prompt"]},
                                            {"role": "assistant",
                                             "content": record["reference"]}]}
    raise InputError("eval_gold_invalid", f"{path}:{n}: a gold row is {{\"messages\": [..., "
                     "an assistant turn]}} or {\"prompt\": ..., \"reference\": ...}",
                     file=str(path), line=n)
