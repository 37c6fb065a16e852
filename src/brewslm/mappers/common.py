"""Shared machinery of the built-in mappers: field access, turn parsing, order checks, rows.

Each built-in mapper is a `BuiltinMapper`: an id, its slots, and a `build` function that reads
the record through a `Fields` accessor. The accessor never raises: every defect it meets is
recorded as a reason code and the accessor returns None, so `build` reads all its slots, then
stops if `f.ok` is false. `BuiltinMapper.map` reports the earliest code in `CODE_ORDER`, so a
record with several defects always gets the same code, whatever order the slots were read in.

    f = Fields(record, {"instruction": "prompt", "output": "meta.answer"})
    instruction, output = f.text("instruction"), f.text("output")
    if not f.ok: ...   # worst(f.codes) is the reason
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from brewslm.mappers.base import MapResult

MISSING = object()

# The order in which reason codes are checked. When a record has several defects, the earliest
# here wins: field-level problems first, then turn-level ones, then whole-conversation ones.
CODE_ORDER = ("missing_field", "wrong_type", "empty_text", "empty_conversation", "null_turn",
              "unknown_role", "invalid_tool_call", "roles_out_of_order", "no_assistant_turn",
              "identical_preference")

FUNCTION_CALL = "function_call"  # a ShareGPT pseudo-role: an assistant turn that calls a tool
ROLE_ALIASES = {
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "bot": "assistant",
    "chatgpt": "assistant",
    "system": "system", "developer": "system",
    "function_call": FUNCTION_CALL,
    "tool": "tool", "observation": "tool", "function": "tool",
}
SCALARS = (str, int, float, bool)


def worst(codes: Iterable[str]) -> str | None:
    """The code checked first among those found (None when there are none)."""
    return min(codes, key=CODE_ORDER.index, default=None)


def resolve(record: Any, path: Any) -> Any:
    """The value at a field path, or MISSING. A literal key wins over a dotted path; a path
    segment of digits indexes a list ("turns.0.value")."""
    if not isinstance(record, dict) or not isinstance(path, str) or not path:
        return MISSING
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit() \
                and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


# --- turns -------------------------------------------------------------------------------------

def _first_key(turn: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first key present (even if null), else MISSING."""
    for key in keys:
        if key in turn:
            return turn[key]
    return MISSING


def json_arguments(value: Any) -> str | None:
    """Tool-call arguments as JSON text of an object; None when they are not one."""
    if value is None or value is MISSING:
        return "{}"  # a call with no arguments is valid
    if isinstance(value, dict):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # not JSON-like after all
            return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(parsed, dict) else None
    return None


def parse_call(entry: Any) -> dict[str, Any] | None:
    """One tool call, OpenAI style ({"function": {...}}) or flat ({"name", "arguments"})."""
    if not isinstance(entry, dict):
        return None
    fn = entry["function"] if isinstance(entry.get("function"), dict) else entry
    name = fn.get("name")
    arguments = json_arguments(_first_key(fn, ("arguments", "parameters")))
    if not isinstance(name, str) or not name.strip() or arguments is None:
        return None
    call = {"name": name, "arguments": arguments}
    if isinstance(entry.get("id"), str) and entry["id"]:
        call["id"] = entry["id"]
    return call


def _calls(entries: list[Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    calls = [parse_call(e) for e in entries]
    if not calls or any(c is None for c in calls):
        return None, "invalid_tool_call"
    return calls, None


def parse_call_value(value: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """A ShareGPT function_call turn's value: JSON text (or an object) of one call or a list."""
    if value is None or value is MISSING:
        return None, "null_turn"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None, "invalid_tool_call"
    return _calls(value if isinstance(value, list) else [value])


def parse_tool_calls(turn: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    """An OpenAI assistant turn's tool_calls (or legacy function_call); [] when it has none."""
    raw = turn.get("tool_calls")
    if raw is None or raw == []:
        legacy = turn.get("function_call")
        if legacy is None:
            return [], None
        raw = [legacy]
    if not isinstance(raw, list):
        return None, "invalid_tool_call"
    return _calls(raw)


def text_from_parts(parts: list[Any]) -> tuple[str | None, str | None]:
    """OpenAI content parts: the text parts joined; image and other parts are left out."""
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif part is None:
            return None, "null_turn"
        elif not isinstance(part, dict):
            return None, "wrong_type"
        elif part.get("type", "text") == "text":
            text = part.get("text")
            if not isinstance(text, str):
                return None, "null_turn" if text is None else "wrong_type"
            texts.append(text)
    return "\n".join(texts), None


def parse_content(raw: Any, needs_text: bool) -> tuple[str | None, str | None]:
    if raw is None or raw is MISSING:
        return None, "null_turn"
    if isinstance(raw, list):
        text, code = text_from_parts(raw)
        if code:
            return None, code
    elif isinstance(raw, str):
        text = raw
    else:
        return None, "wrong_type"
    if needs_text and not text.strip():
        return None, "empty_text"
    return text, None


def _role(turn: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = _first_key(turn, ("role", "from"))
    if raw is MISSING or raw is None:
        return None, "unknown_role"
    if not isinstance(raw, str):
        return None, "wrong_type"
    role = ROLE_ALIASES.get(raw.strip().lower())
    return role, None if role else "unknown_role"


def parse_turn(turn: Any) -> tuple[dict[str, Any] | None, str | None]:
    """One turn, ShareGPT ({"from", "value"}) or OpenAI ({"role", "content", ...}) style,
    as a canonical message, or the worst code among its defects."""
    if turn is None:
        return None, "null_turn"
    if not isinstance(turn, dict):
        return None, "wrong_type"
    role, role_code = _role(turn)
    raw = _first_key(turn, ("content", "value"))
    if role == FUNCTION_CALL:
        role, content = "assistant", ""
        calls, code = parse_call_value(raw)
    else:
        content, calls, code = _content_and_calls(turn, role, raw)
    code = worst(c for c in (role_code, code) if c)
    if code:
        return None, code
    return _message(turn, role, content, calls), None


def _content_and_calls(turn: dict[str, Any], role: str | None, raw: Any,
                       ) -> tuple[str | None, list[dict[str, Any]] | None, str | None]:
    """An ordinary turn's text and (an assistant's) tool calls, or the worst defect."""
    calls, call_code = parse_tool_calls(turn) if role == "assistant" else ([], None)
    calling = bool(calls) or call_code is not None  # a bad call is still a call: say so
    if calling and (raw is None or raw is MISSING):
        return "", calls, call_code  # an assistant turn that only calls tools
    content, content_code = parse_content(raw, needs_text=role != "tool" and not calling)
    return content, calls, worst(c for c in (call_code, content_code) if c)


def _message(turn: dict[str, Any], role: str, content: str,
             calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": role, "content": content}
    if calls:
        msg["tool_calls"] = calls
    if isinstance(turn.get("name"), str) and turn["name"]:
        msg["name"] = turn["name"]
    if role == "tool" and isinstance(turn.get("tool_call_id"), str) and turn["tool_call_id"]:
        msg["tool_call_id"] = turn["tool_call_id"]
    return msg


def parse_conversation(value: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    if not isinstance(value, list):
        return None, "wrong_type"
    if not value:
        return None, "empty_conversation"
    parsed = [parse_turn(turn) for turn in value]
    code = worst(c for _, c in parsed if c)
    return (None, code) if code else ([m for m, _ in parsed], None)


def check_order(messages: list[dict[str, Any]]) -> str | None:
    """roles_out_of_order or no_assistant_turn when the conversation is not trainable."""
    for i, msg in enumerate(messages):
        role, prev = msg["role"], messages[i - 1] if i else None
        if role == "system" and i:
            return "roles_out_of_order"
        if prev and role in ("user", "assistant") and prev["role"] == role:
            return "roles_out_of_order"
        # A tool result answers a call: it follows the calling assistant turn or another result.
        if role == "tool" and not (prev and (prev["role"] == "tool" or (
                prev["role"] == "assistant" and prev.get("tool_calls")))):
            return "roles_out_of_order"
    if not any(m["role"] == "assistant" for m in messages):
        return "no_assistant_turn"
    return None


def with_system(messages: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """Prepend the system slot's prompt unless the conversation has its own system turn."""
    if system and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


# --- field access ------------------------------------------------------------------------------

def parse_tools(value: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Tool schemas: a list of objects, one object, or either as JSON text; empty -> None."""
    if isinstance(value, str):
        if not value.strip():
            return None, None
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None, "wrong_type"
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        return None, "wrong_type"
    return value or None, None


class Fields:
    """Reads a record's slots through a field map, recording a reason code for each defect."""

    def __init__(self, record: dict[str, Any], field_map: Any) -> None:
        self.record = record
        self.field_map = field_map if isinstance(field_map, dict) else {}
        self.codes: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.codes

    def fail(self, code: str) -> None:
        self.codes.append(code)

    def raw(self, slot: str, required: bool = True) -> Any:
        """The slot's value; None (and missing_field if required) when absent or null."""
        value = resolve(self.record, self.field_map.get(slot))
        if value is MISSING or value is None:
            if required:
                self.fail("missing_field")
            return None
        return value

    def text(self, slot: str, required: bool = True) -> str | None:
        """A text slot. An optional one that is empty reads as absent."""
        value = self.raw(slot, required)
        if value is None:
            return None
        if not isinstance(value, str):
            return self.fail("wrong_type")
        if not value.strip():
            return self.fail("empty_text") if required else None
        return value

    def scalar(self, slot: str) -> str | int | float | bool | None:
        value = self.raw(slot)
        if value is None:
            return None
        if not isinstance(value, SCALARS):
            return self.fail("wrong_type")
        if isinstance(value, str) and not value.strip():
            return self.fail("empty_text")
        return value

    def conversation(self, slot: str) -> list[dict[str, Any]] | None:
        value = self.raw(slot)
        if value is None:
            return None
        messages, code = parse_conversation(value)
        return self.fail(code) if code else messages

    def tools(self, slot: str = "tools") -> list[dict[str, Any]] | None:
        value = self.raw(slot, required=False)
        if value is None:
            return None
        tools, code = parse_tools(value)
        return self.fail(code) if code else tools

    def meta(self) -> dict[str, Any]:
        """Every top-level scalar field the map does not use, passed through."""
        paths = [p for p in self.field_map.values() if isinstance(p, str)]
        used = set(paths) | {p.split(".")[0] for p in paths}
        return {k: v for k, v in self.record.items()
                if isinstance(k, str) and k not in used and isinstance(v, SCALARS)}

    def sft_row(self, messages: list[dict[str, Any]],
                tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"task": "sft", "messages": messages, "chosen": None, "rejected": None,
                "text": None, "tools": tools, "meta": self.meta()}


def turn(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


@dataclass(frozen=True)
class BuiltinMapper:
    """A Mapper whose logic is one function of a `Fields` accessor."""

    id: str
    description: str
    slots: tuple[str, ...]
    required: tuple[str, ...]
    build: Callable[[Fields], dict[str, Any] | None] = field(repr=False, compare=False)

    def map(self, record: dict[str, Any], field_map: dict[str, str]) -> MapResult:
        if not isinstance(record, dict):
            return None, "wrong_type"
        f = Fields(record, field_map)
        row = self.build(f)
        return (None, worst(f.codes)) if f.codes else (row, None)
