"""The preference mapper: a prompt with a chosen and a rejected answer (DPO / reward data).

chosen and rejected are either strings (the answers; the prompt slot then gives the user turn)
or lists of turns, OpenAI style or ShareGPT style. When the lists are whole conversations that
repeat the prompt, their common prefix becomes the row's "messages" and only the differing
assistant continuations stay in "chosen" and "rejected":

    PREFERENCE.map({"chosen": [{"role": "user", "content": "2+2?"},
                               {"role": "assistant", "content": "4"}],
                    "rejected": [{"role": "user", "content": "2+2?"},
                                 {"role": "assistant", "content": "5"}]},
                   {"chosen": "chosen", "rejected": "rejected"})
    # messages: [user "2+2?"], chosen: [assistant "4"], rejected: [assistant "5"]
"""

from __future__ import annotations

from typing import Any

from brewslm.mappers.common import (
    BuiltinMapper,
    Fields,
    check_order,
    parse_conversation,
    turn,
    with_system,
)

Messages = list[dict[str, Any]]


def _side(f: Fields, slot: str) -> Messages | None:
    """One answer as messages: a string is one assistant turn; a list is parsed as turns."""
    value = f.raw(slot)
    if value is None:
        return None
    if isinstance(value, str):
        return [turn("assistant", value)] if value.strip() else f.fail("empty_text")
    messages, code = parse_conversation(value)
    return f.fail(code) if code else messages


def _same(a: Messages, b: Messages) -> bool:
    """Equal up to surrounding whitespace: such a pair teaches nothing."""
    strip = [{**m, "content": m["content"].strip()} for m in a]
    return strip == [{**m, "content": m["content"].strip()} for m in b]


def _split_point(chosen: Messages, rejected: Messages) -> int | None:
    """The length of the shared prompt: the longest common prefix after which both sides go
    on with an assistant turn (None when there is no such point)."""
    common = 0
    while common < min(len(chosen), len(rejected)) and chosen[common] == rejected[common]:
        common += 1
    for k in range(common, -1, -1):
        if k < len(chosen) and k < len(rejected) \
                and chosen[k]["role"] == rejected[k]["role"] == "assistant":
            return k
    return None


def _prompt_turns(prefix: Messages, prompt: str | None, system: str | None) -> Messages:
    """The row's prompt: the shared prefix, else the prompt slot as a user turn."""
    messages = list(prefix)
    if prompt and not any(m["role"] == "user" for m in messages):
        messages.append(turn("user", prompt))
    return with_system(messages, system)


def _build(f: Fields) -> dict[str, Any] | None:
    prompt, system = f.text("prompt", required=False), f.text("system", required=False)
    chosen, rejected = _side(f, "chosen"), _side(f, "rejected")
    if not f.ok or chosen is None or rejected is None:
        return None
    code = check_order(chosen) or check_order(rejected)
    if code:
        return f.fail(code)
    if _same(chosen, rejected):
        return f.fail("identical_preference")
    k = _split_point(chosen, rejected)
    if k is None:  # the two sides answer different prompts
        return f.fail("roles_out_of_order")
    messages = _prompt_turns(chosen[:k], prompt, system)
    if not any(m["role"] == "user" for m in messages):
        return f.fail("missing_field")  # no prompt in the slot nor in the turns
    chosen, rejected = chosen[k:], rejected[k:]
    code = check_order(messages + chosen) or check_order(messages + rejected)
    if code:
        return f.fail(code)
    return {"task": "preference", "messages": messages, "chosen": chosen, "rejected": rejected,
            "text": None, "tools": None, "meta": f.meta()}


PREFERENCE = BuiltinMapper(
    id="preference",
    description="Preference pairs: a prompt, a chosen and a rejected answer (strings or turns).",
    slots=("prompt", "chosen", "rejected", "system"),
    required=("chosen", "rejected"),
    build=_build,
)
