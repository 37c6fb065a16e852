"""Conversation mappers: sharegpt ({"from", "value"} turns) and openai_messages
({"role", "content"} messages, content parts, tool_calls).

Both read the whole conversation into canonical messages (role aliases resolved, ShareGPT
function_call / observation turns turned into assistant tool_calls and tool results), then
check that the conversation is trainable (system first, no two user or two assistant turns in
a row, tool results after a call, at least one assistant turn).

    SHAREGPT.map({"conversations": [{"from": "human", "value": "Hi"},
                                    {"from": "gpt", "value": "Hello!"}]},
                 {"conversations": "conversations"})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brewslm.mappers.common import BuiltinMapper, Fields, check_order, with_system


def _conversation(slot: str) -> Callable[[Fields], dict[str, Any] | None]:
    """A build function for a conversation held in `slot`, with optional system and tools."""

    def build(f: Fields) -> dict[str, Any] | None:
        messages = f.conversation(slot)
        system = f.text("system", required=False)
        tools = f.tools("tools")
        if not f.ok:
            return None
        messages = with_system(messages, system)
        code = check_order(messages)
        if code:
            return f.fail(code)
        return f.sft_row(messages, tools)

    return build


SHAREGPT = BuiltinMapper(
    id="sharegpt",
    description="ShareGPT conversations: a list of {from, value} turns (human/gpt/system, "
                "function_call/observation for tool use).",
    slots=("conversations", "system", "tools"),
    required=("conversations",),
    build=_conversation("conversations"),
)
OPENAI_MESSAGES = BuiltinMapper(
    id="openai_messages",
    description="OpenAI chat messages: a list of {role, content} with content parts, "
                "tool_calls and tool results.",
    slots=("messages", "tools"),
    required=("messages",),
    build=_conversation("messages"),
)
