"""The canonical training schema, the Mapper protocol, and introspection's result types.

Canonical row (what `map` writes, one per accepted record):

    {
      "task": "sft" | "preference" | "pretrain",
      "messages": [Message, ...],   # sft: the conversation; preference: the prompt turns;
                                    # pretrain: []
      "chosen":   [Message, ...] | None,   # preference only: the preferred continuation
      "rejected": [Message, ...] | None,   # preference only: the dispreferred continuation
      "text": str | None,                  # pretrain only
      "tools": [dict, ...] | None,         # tool / function schemas offered to the model
      "meta": {...}                        # label, slice and other passthrough fields
    }
    Message = {"role": "system" | "user" | "assistant" | "tool", "content": str,
               optional "tool_calls": [{"name": str, "arguments": str (JSON text),
                                        optional "id": str}],
               optional "name": str, optional "tool_call_id": str}

A mapper never raises on data: it returns (row, None) or (None, reason_code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ROLES = ("system", "user", "assistant", "tool")
TASKS = ("sft", "preference", "pretrain")

MapResult = tuple[dict[str, Any] | None, str | None]


class Mapper(Protocol):
    id: str  # "alpaca", "sharegpt", "openai_messages", "prompt_completion", "question_answer",
    #          "preference", "text", "classification"
    description: str
    slots: tuple[str, ...]  # the mapper's field slots, e.g. ("instruction", "input", "output")
    required: tuple[str, ...]  # the slots that must be mapped to a source field

    def map(self, record: dict[str, Any], field_map: dict[str, str]) -> MapResult:
        """field_map: slot -> source field name (a dotted path reaches into nested objects)."""
        ...


@dataclass(frozen=True)
class FieldProfile:
    name: str
    kind: str  # text, chat_messages, role_turns, categorical, numeric, boolean, list, object,
    #            path, empty
    present: float  # share of sampled records that have the field (not null)
    distinct: int
    examples: list[Any] = field(default_factory=list)  # up to 3, long strings cut to 80 chars

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "present": self.present,
                "distinct": self.distinct, "examples": self.examples}


@dataclass(frozen=True)
class Hypothesis:
    mapper: str
    field_map: dict[str, str]
    confidence: float  # 0..1
    rationale: str
    sample_accept_rate: float  # share of the sample this mapping accepts

    def to_dict(self) -> dict[str, Any]:
        return {"mapper": self.mapper, "field_map": self.field_map,
                "confidence": round(self.confidence, 3), "rationale": self.rationale,
                "sample_accept_rate": round(self.sample_accept_rate, 3)}
