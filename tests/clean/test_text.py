"""brewslm.clean.text: a row's text, its prompt and answer, and mapping a function over it."""

from __future__ import annotations

import copy

from brewslm.clean.text import has_tool_calls, map_text, prompt_and_answer, row_text

SFT = {
    "task": "sft",
    "messages": [
        {"role": "system", "content": "You are a support bot."},
        {"role": "user", "content": "Where is order 123?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"name": "lookup", "arguments": '{"order": "123"}'}]},
        {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1"},
        {"role": "assistant", "content": "It shipped yesterday."},
    ],
    "chosen": None, "rejected": None, "text": None, "tools": None, "meta": {"label": "x"},
}
PREF = {
    "task": "preference",
    "messages": [{"role": "user", "content": "Say hi."}],
    "chosen": [{"role": "assistant", "content": "Hi there!"}],
    "rejected": [{"role": "assistant", "content": "No."}],
    "text": None, "tools": None, "meta": {},
}
PRETRAIN = {"task": "pretrain", "messages": [], "chosen": None, "rejected": None,
            "text": "Plain document text.", "tools": None, "meta": {}}


def test_row_text_joins_every_content_and_text_with_newlines():
    assert row_text(SFT) == ("You are a support bot.\nWhere is order 123?\n"
                             '{"status": "shipped"}\nIt shipped yesterday.')
    assert row_text(PREF) == "Say hi.\nHi there!\nNo."
    assert row_text(PRETRAIN) == "Plain document text."


def test_prompt_and_answer_per_task():
    assert prompt_and_answer(SFT) == (
        'You are a support bot.\nWhere is order 123?\n{"status": "shipped"}',
        "It shipped yesterday.")
    assert prompt_and_answer(PREF) == ("Say hi.", "Hi there!")
    assert prompt_and_answer(PRETRAIN) == ("", "Plain document text.")


def test_task_is_inferred_when_missing():
    no_task = {k: v for k, v in PRETRAIN.items() if k != "task"}
    assert prompt_and_answer(no_task) == ("", "Plain document text.")
    assert prompt_and_answer({"chosen": PREF["chosen"], "messages": PREF["messages"]}) == (
        "Say hi.", "Hi there!")


def test_map_text_applies_to_contents_and_text_but_not_tool_calls():
    before = copy.deepcopy(SFT)
    out = map_text(SFT, str.upper)
    assert before == SFT  # the input row is untouched
    assert [m["content"] for m in out["messages"]] == [
        "YOU ARE A SUPPORT BOT.", "WHERE IS ORDER 123?", "", '{"STATUS": "SHIPPED"}',
        "IT SHIPPED YESTERDAY."]
    assert out["messages"][2]["tool_calls"] == [{"name": "lookup",
                                                  "arguments": '{"order": "123"}'}]
    assert out["meta"] == {"label": "x"}
    pref = map_text(PREF, str.upper)
    assert (pref["chosen"][0]["content"], pref["rejected"][0]["content"]) == ("HI THERE!", "NO.")
    assert map_text(PRETRAIN, str.upper)["text"] == "PLAIN DOCUMENT TEXT."


def test_none_contents_are_skipped_and_kept():
    row = {"task": "sft", "messages": [{"role": "user", "content": None},
                                       {"role": "assistant", "content": "ok"}]}
    assert row_text(row) == "ok"
    assert map_text(row, str.upper)["messages"][0]["content"] is None


def test_has_tool_calls_looks_at_answer_turns():
    assert has_tool_calls(SFT)
    assert not has_tool_calls(PREF)
