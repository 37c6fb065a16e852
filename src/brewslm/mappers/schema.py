"""Validation of canonical rows against the schema in mappers/base.py.

`validate_canonical(row)` returns None for a valid row, else a one-line description of the
first problem. The map stage calls it on every accepted row (a built-in or plugin mapper that
emits a non-canonical row is a bug, caught before anything is written); the tests call it on
every row the mappers accept.

    validate_canonical({"task": "pretrain", "messages": [], "chosen": None, "rejected": None,
                        "text": "hi", "tools": None, "meta": {}})   # -> None
"""

from __future__ import annotations

import json
from typing import Any

from brewslm.mappers.base import ROLES, TASKS

ROW_KEYS = ("task", "messages", "chosen", "rejected", "text", "tools", "meta")
MESSAGE_KEYS = {"role", "content", "tool_calls", "name", "tool_call_id"}
CALL_KEYS = {"name", "arguments", "id"}


def validate_canonical(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"a row is a dict, not {type(row).__name__}"
    if set(row) != set(ROW_KEYS):
        return f"a row has exactly the keys {', '.join(ROW_KEYS)}; got {', '.join(map(str, row))}"
    if row["task"] not in TASKS:
        return f"task {row['task']!r} is not one of {', '.join(TASKS)}"
    return (_messages("messages", row["messages"], allow_empty=True) or _tools(row["tools"])
            or _meta(row["meta"]) or _TASK_CHECKS[row["task"]](row) or _serializable(row))


def _sft(row: dict[str, Any]) -> str | None:
    if row["chosen"] is not None or row["rejected"] is not None or row["text"] is not None:
        return "an sft row has chosen, rejected and text null"
    if not any(m["role"] == "assistant" for m in row["messages"]):
        return "an sft row has at least one assistant message"
    return None


def _preference(row: dict[str, Any]) -> str | None:
    if row["text"] is not None:
        return "a preference row has text null"
    if not row["messages"]:
        return "a preference row has its prompt turns in messages"
    return (_messages("chosen", row["chosen"], allow_empty=False)
            or _messages("rejected", row["rejected"], allow_empty=False))


def _pretrain(row: dict[str, Any]) -> str | None:
    if row["messages"] or row["chosen"] is not None or row["rejected"] is not None:
        return "a pretrain row has messages [] and chosen, rejected null"
    if not isinstance(row["text"], str) or not row["text"].strip():
        return "a pretrain row has non-empty text"
    return None


_TASK_CHECKS = {"sft": _sft, "preference": _preference, "pretrain": _pretrain}


def _messages(key: str, value: Any, allow_empty: bool) -> str | None:
    if not isinstance(value, list):
        return f"{key} is a list of messages, not {type(value).__name__}"
    if not value and not allow_empty:
        return f"{key} holds at least one message"
    for i, msg in enumerate(value):
        problem = _message(msg)
        if problem:
            return f"{key}[{i}]: {problem}"
    return None


def _message(msg: Any) -> str | None:
    if not isinstance(msg, dict):
        return "a message is a dict"
    if not set(msg) <= MESSAGE_KEYS or "role" not in msg or "content" not in msg:
        return f"a message has role, content and optionally tool_calls, name, tool_call_id; " \
               f"got {', '.join(map(str, msg))}"
    if msg["role"] not in ROLES:
        return f"role {msg['role']!r} is not one of {', '.join(ROLES)}"
    if not isinstance(msg["content"], str):
        return "content is a string"
    for key in ("name", "tool_call_id"):
        if key in msg and not isinstance(msg[key], str):
            return f"{key} is a string"
    if "tool_calls" in msg:
        return _tool_calls(msg)
    return None


def _tool_calls(msg: dict[str, Any]) -> str | None:
    calls = msg["tool_calls"]
    if msg["role"] != "assistant":
        return "only assistant messages carry tool_calls"
    if not isinstance(calls, list) or not calls:
        return "tool_calls is a non-empty list"
    for call in calls:
        if not isinstance(call, dict) or not set(call) <= CALL_KEYS:
            return "a tool call is {name, arguments} (and optionally id)"
        if not isinstance(call.get("name"), str) or not call["name"]:
            return "a tool call has a name"
        if not _is_json_object(call.get("arguments")):
            return "a tool call's arguments are the JSON text of an object"
    return None


def _is_json_object(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _tools(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        return "tools is null or a list of objects"
    return None


def _serializable(row: dict[str, Any]) -> str | None:
    """The map stage stores rows as JSON: a plugin's stray object must not reach it."""
    try:
        json.dumps(row, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"a row is JSON-serializable ({exc})"
    return None


def _meta(meta: Any) -> str | None:
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        return "meta is an object with string keys"
    return None
