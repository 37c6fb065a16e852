"""Plain-text mappers: text (continued pretraining) and classification (text -> label as sft).

    TEXT.map({"text": "Once upon a time"}, {"text": "text"})
    # -> ({"task": "pretrain", "messages": [], "text": "Once upon a time", ...}, None)
    CLASSIFICATION.map({"review": "Great!", "stars": 5}, {"text": "review", "label": "stars"})
    # -> user "Great!", assistant "5", meta {"label": 5}
"""

from __future__ import annotations

from typing import Any

from brewslm.mappers.common import BuiltinMapper, Fields, turn, with_system


def _text(f: Fields) -> dict[str, Any] | None:
    text = f.text("text")
    if not f.ok:
        return None
    return {"task": "pretrain", "messages": [], "chosen": None, "rejected": None,
            "text": text, "tools": None, "meta": f.meta()}


def _classification(f: Fields) -> dict[str, Any] | None:
    text, label = f.text("text"), f.scalar("label")
    system = f.text("system", required=False)
    if not f.ok or text is None:
        return None
    row = f.sft_row(with_system([turn("user", text), turn("assistant", str(label))], system))
    # The label keeps its own type in meta (5, not "5"), for slicing evaluation by class.
    row["meta"]["label"] = label
    return row


TEXT = BuiltinMapper(
    id="text",
    description="Raw text for continued pretraining (no chat turns).",
    slots=("text",),
    required=("text",),
    build=_text,
)
CLASSIFICATION = BuiltinMapper(
    id="classification",
    description="Text with a label, trained as sft: the user gives the text, the assistant the "
                "label.",
    slots=("text", "label", "system"),
    required=("text", "label"),
    build=_classification,
)
