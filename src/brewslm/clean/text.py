"""The text of a canonical row, seen the three ways stage 05 (clean) needs it.

    from brewslm.clean.text import map_text, prompt_and_answer, row_text
    row_text(row)                  # every text field, newline-joined: what dedup hashes
    prompt, answer = prompt_and_answer(row)   # what the quality filters compare
    redacted = map_text(row, fn)   # a copy with fn applied to every text field (PII redaction)

Rows follow the canonical schema of `brewslm.mappers.base`. Text fields are the message
`content`s (of `messages`, `chosen` and `rejected`) and `text`. Tool-call arguments, tool
schemas and `meta` are not text here: they are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Row = dict[str, Any]
MESSAGE_LISTS = ("messages", "chosen", "rejected")


def task_of(row: Row) -> str:
    """The row's task; rows without one are inferred from the fields they fill."""
    task = row.get("task")
    if task in ("sft", "preference", "pretrain"):
        return task
    if row.get("chosen") is not None:
        return "preference"
    if row.get("text") is not None and not row.get("messages"):
        return "pretrain"
    return "sft"


def _contents(messages: list[dict[str, Any]] | None) -> Iterator[tuple[str, str]]:
    """(role, content) of each message that has string content."""
    for message in messages or ():
        content = message.get("content")
        if isinstance(content, str):
            yield message.get("role", ""), content


def _join(parts: Iterator[str] | list[str]) -> str:
    return "\n".join(p for p in parts if p)


def row_text(row: Row) -> str:
    """All text of a row: messages, chosen and rejected contents, then `text`, newline-joined."""
    parts = [c for key in MESSAGE_LISTS for _, c in _contents(row.get(key))]
    if isinstance(row.get("text"), str):
        parts.append(row["text"])
    return _join(parts)


def prompt_and_answer(row: Row) -> tuple[str, str]:
    """(prompt, answer): sft non-assistant vs assistant text; preference prompt vs chosen;
    pretrain ("", text)."""
    task = task_of(row)
    if task == "pretrain":
        return "", row.get("text") or ""
    if task == "preference":
        return (_join(c for _, c in _contents(row.get("messages"))),
                _join(c for _, c in _contents(row.get("chosen"))))
    turns = list(_contents(row.get("messages")))
    return (_join(c for role, c in turns if role != "assistant"),
            _join(c for role, c in turns if role == "assistant"))


def has_tool_calls(row: Row) -> bool:
    """Whether an answer turn (assistant, or chosen) calls a tool: such a turn may have no
    text and still be a real answer."""
    key = "chosen" if task_of(row) == "preference" else "messages"
    return any(m.get("tool_calls") for m in row.get(key) or ()
               if m.get("role") == "assistant")


def _map_messages(messages: list[dict[str, Any]], fn: Callable[[str], str]) -> list[dict]:
    return [{**m, "content": fn(m["content"])} if isinstance(m.get("content"), str) else dict(m)
            for m in messages]


def map_text(row: Row, fn: Callable[[str], str]) -> Row:
    """A copy of the row with fn applied to every message content and to `text`.

    The input row is not modified; tool calls, tools and meta are carried over unchanged.
    """
    out = dict(row)
    for key in MESSAGE_LISTS:
        if isinstance(row.get(key), list):
            out[key] = _map_messages(row[key], fn)
    if isinstance(row.get("text"), str):
        out["text"] = fn(row["text"])
    return out
