"""The built-in mappers on realistic records of every shape, and on defective ones.

Accepted records are checked against their exact canonical rows; rejected ones against their
exact reason codes (codes are API). The registry, field-map checks and plugin loading too.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from brewslm.errors import InputError
from brewslm.events import taxonomy
from brewslm.mappers import BUILTIN_MAPPERS, check_field_map, get_mapper, load_plugin_mappers
from brewslm.mappers.common import CODE_ORDER
from brewslm.mappers.schema import validate_canonical

ALPACA_MAP = {"instruction": "instruction", "input": "input", "output": "output"}
SHAREGPT_MAP = {"conversations": "conversations", "tools": "tools"}
OPENAI_MAP = {"messages": "messages", "tools": "tools"}
PREF_MAP = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}
CONV_MAP = {"conversations": "conversations"}


def mapped(mapper_id: str, record: dict, field_map: dict) -> dict:
    row, code = get_mapper(mapper_id).map(record, field_map)
    assert code is None, f"rejected with {code}"
    assert validate_canonical(row) is None, validate_canonical(row)
    return row


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def sft(messages: list, meta: dict | None = None, tools: list | None = None) -> dict:
    return {"task": "sft", "messages": messages, "chosen": None, "rejected": None,
            "text": None, "tools": tools, "meta": meta or {}}


def gpt_turns(*pairs: tuple[str, object]) -> list[dict]:
    return [{"from": who, "value": value} for who, value in pairs]


# --- accepted shapes ---------------------------------------------------------------------------

def test_alpaca_with_input_joins_instruction_and_input():
    record = {"instruction": "Summarize the text.", "input": "Cats sleep a lot. Dogs bark.",
              "output": "Pets have habits.", "id": "a-1", "source": "alpaca_gpt4", "score": 4.5,
              "reviewed": True, "tags": ["pets"]}
    assert mapped("alpaca", record, ALPACA_MAP) == sft(
        [user("Summarize the text.\n\nCats sleep a lot. Dogs bark."),
         assistant("Pets have habits.")],
        meta={"id": "a-1", "source": "alpaca_gpt4", "score": 4.5, "reviewed": True})


@pytest.mark.parametrize("extra", [{"input": ""}, {"input": "   "}, {"input": None}, {}])
def test_alpaca_without_input_is_the_instruction_alone(extra):
    record = {"instruction": "Name a primary color.", "output": "Red.", **extra}
    row = mapped("alpaca", record, ALPACA_MAP)
    assert row["messages"] == [user("Name a primary color."), assistant("Red.")]


def test_alpaca_system_slot_becomes_the_first_message():
    record = {"instruction": "Hi", "output": "Hello!", "sys": "Be brief."}
    row = mapped("alpaca", record, {"instruction": "instruction", "output": "output",
                                    "system": "sys"})
    assert row["messages"][0] == {"role": "system", "content": "Be brief."}
    assert row["meta"] == {}  # the system field is used, so it is not passed through


def test_sharegpt_with_function_call_observation_and_tools_as_json_text():
    tools = [{"name": "get_weather", "description": "Weather by city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    record = {"id": "glaive-9", "tools": json.dumps(tools), "conversations": gpt_turns(
        ("system", "You can call functions."),
        ("human", "Weather in Paris?"),
        ("function_call", '{"name": "get_weather", "arguments": {"city": "Paris"}}'),
        ("observation", '{"temp_c": 21}'),
        ("gpt", "It is 21 °C in Paris."))}
    assert mapped("sharegpt", record, SHAREGPT_MAP) == sft([
        {"role": "system", "content": "You can call functions."},
        user("Weather in Paris?"),
        {"role": "assistant", "content": "",
         "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]},
        {"role": "tool", "content": '{"temp_c": 21}'},
        assistant("It is 21 °C in Paris.")], meta={"id": "glaive-9"}, tools=tools)


def test_sharegpt_role_aliases_and_string_arguments():
    record = {"conversations": gpt_turns(
        ("user", "a"), ("model", "b"), ("human", "c"), ("bot", "d"), ("User", "e"),
        ("chatgpt", "f"), ("human", "g"),
        ("function_call", '{"name": "f", "arguments": "{\\"x\\": 1}"}'),
        ("function", "ok"), ("tool", "ok too"), ("assistant", "done"))}
    row = mapped("sharegpt", record, CONV_MAP)
    assert [m["role"] for m in row["messages"]] == [
        "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant",
        "tool", "tool", "assistant"]
    assert row["messages"][7]["tool_calls"] == [{"name": "f", "arguments": '{"x": 1}'}]


def test_sharegpt_system_slot_is_a_default_for_conversations_without_one():
    conv = gpt_turns(("human", "Hi"), ("gpt", "Hello"))
    fmap = {"conversations": "conversations", "system": "system"}
    row = mapped("sharegpt", {"conversations": conv, "system": "Be kind."}, fmap)
    assert row["messages"][0] == {"role": "system", "content": "Be kind."}
    own = gpt_turns(("system", "Own prompt."), ("human", "Hi"), ("gpt", "Hello"))
    row = mapped("sharegpt", {"conversations": own, "system": "Be kind."}, fmap)
    assert [m["content"] for m in row["messages"]] == ["Own prompt.", "Hi", "Hello"]


def test_openai_messages_with_content_parts_tool_calls_and_tool_results():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    record = {"messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is the weather in"},
            {"type": "image_url", "image_url": {"url": "https://example.org/paris.png"}},
            {"type": "text", "text": "this city?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "assistant", "content": "It is 21 °C in Paris."}],
        "tools": tools, "split": "train"}
    assert mapped("openai_messages", record, OPENAI_MAP) == sft([
        {"role": "system", "content": "You are a weather bot."},
        user("What is the weather in\nthis city?"),
        {"role": "assistant", "content": "",
         "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}',
                         "id": "call_1"}]},
        {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_1"},
        assistant("It is 21 °C in Paris.")], meta={"split": "train"}, tools=tools)


def test_openai_arguments_as_an_object_become_json_text():
    record = {"messages": [
        user("Add 2 and 3"),
        {"role": "assistant", "tool_calls": [{"function": {"name": "add",
                                                           "arguments": {"a": 2, "b": 3}}}]},
        {"role": "tool", "content": "5", "name": "add"},
        assistant("5")]}
    row = mapped("openai_messages", record, {"messages": "messages"})
    assert row["messages"][1]["tool_calls"] == [{"name": "add", "arguments": '{"a": 2, "b": 3}'}]
    assert row["messages"][2] == {"role": "tool", "content": "5", "name": "add"}


def test_prompt_completion():
    record = {"prompt": "The capital of France is", "completion": " Paris.", "lang": "en"}
    assert mapped("prompt_completion", record, {"prompt": "prompt", "completion": "completion"}) \
        == sft([user("The capital of France is"), assistant(" Paris.")], meta={"lang": "en"})


def test_question_answer_puts_the_context_before_the_question():
    record = {"context": "The Nile flows north into the Mediterranean.",
              "question": "Where does the Nile flow?", "answer": "Into the Mediterranean."}
    row = mapped("question_answer", record,
                 {"question": "question", "answer": "answer", "context": "context"})
    assert row["messages"] == [
        user("The Nile flows north into the Mediterranean.\n\nWhere does the Nile flow?"),
        assistant("Into the Mediterranean.")]


def test_preference_as_strings():
    record = {"prompt": "Say hi.", "chosen": "Hi there!", "rejected": "No.", "margin": 2}
    assert mapped("preference", record, PREF_MAP) == {
        "task": "preference", "messages": [user("Say hi.")], "chosen": [assistant("Hi there!")],
        "rejected": [assistant("No.")], "text": None, "tools": None, "meta": {"margin": 2}}


def test_preference_turns_with_a_shared_prefix_are_split():
    shared = [{"role": "system", "content": "Be helpful."}, user("What is 2+2?"),
              assistant("4."), user("And times 3?")]
    record = {"prompt": "What is 2+2?",
              "chosen": [*shared, assistant("12.")],
              "rejected": [*shared, assistant("Seven."), user("Sure?"), assistant("Yes.")]}
    row = mapped("preference", record, PREF_MAP)
    assert row["messages"] == shared
    assert row["chosen"] == [assistant("12.")]
    assert row["rejected"] == [assistant("Seven."), user("Sure?"), assistant("Yes.")]


def test_preference_sharegpt_turns_and_a_divergence_at_a_user_turn():
    # The sides share [human, gpt] and then differ at a user turn: the prompt is the first
    # human turn and both continuations start at the shared assistant turn.
    chosen = gpt_turns(("human", "Hi"), ("gpt", "Hello"), ("human", "Joke?"), ("gpt", "Sure"))
    rejected = gpt_turns(("human", "Hi"), ("gpt", "Hello"), ("human", "Bye"), ("gpt", "Ok"))
    row = mapped("preference", {"chosen": chosen, "rejected": rejected},
                 {"chosen": "chosen", "rejected": "rejected"})
    assert row["messages"] == [user("Hi")]
    assert row["chosen"] == [assistant("Hello"), user("Joke?"), assistant("Sure")]
    assert row["rejected"] == [assistant("Hello"), user("Bye"), assistant("Ok")]


def test_preference_continuations_only_take_the_prompt_slot():
    record = {"question": "2+2?", "chosen": [assistant("4")], "rejected": [assistant("5")],
              "system": "Be exact."}
    row = mapped("preference", record, {"prompt": "question", "chosen": "chosen",
                                        "rejected": "rejected", "system": "system"})
    assert row["messages"] == [{"role": "system", "content": "Be exact."}, user("2+2?")]


def test_text():
    record = {"text": "Once upon a time, there was a tiny model.", "url": "https://x.org/1"}
    assert mapped("text", record, {"text": "text"}) == {
        "task": "pretrain", "messages": [], "chosen": None, "rejected": None,
        "text": "Once upon a time, there was a tiny model.", "tools": None,
        "meta": {"url": "https://x.org/1"}}


@pytest.mark.parametrize("label, shown", [(4, "4"), ("positive", "positive"), (True, "True")])
def test_classification_keeps_the_label_in_meta(label, shown):
    record = {"review": "Great phone, battery lasts days.", "stars": label, "lang": "en"}
    assert mapped("classification", record, {"text": "review", "label": "stars"}) == sft(
        [user("Great phone, battery lasts days."), assistant(shown)],
        meta={"lang": "en", "label": label})


def test_dotted_paths_reach_into_nested_objects():
    record = {"meta": {"prompt": "Ping?", "reply": {"text": "Pong."}}, "lang": "en"}
    row = mapped("prompt_completion", record,
                 {"prompt": "meta.prompt", "completion": "meta.reply.text"})
    assert row["messages"] == [user("Ping?"), assistant("Pong.")]
    assert row["meta"] == {"lang": "en"}
    turns = {"data": {"turns": gpt_turns(("human", "Hi"), ("gpt", "Yo"))}}
    assert mapped("sharegpt", turns, {"conversations": "data.turns"})["messages"][1] == \
        assistant("Yo")
    listed = {"pairs": [{"q": "Q?", "a": "A."}]}
    assert mapped("question_answer", listed, {"question": "pairs.0.q", "answer": "pairs.0.a"})


def test_a_literal_dotted_key_wins_over_the_path():
    record = {"a.b": "literal", "a": {"b": "nested"}, "out": "x"}
    row = mapped("prompt_completion", record, {"prompt": "a.b", "completion": "out"})
    assert row["messages"][0] == user("literal")


# --- rejected records: exact codes -------------------------------------------------------------

GOOD_CONV = gpt_turns(("human", "Hi"), ("gpt", "Hello"))
DEFECTS = [
    ("alpaca", {"instruction": "Do it."}, ALPACA_MAP, "missing_field"),
    ("alpaca", {"instruction": "Do it.", "output": None}, ALPACA_MAP, "missing_field"),
    ("alpaca", {"instruction": "Do it.", "output": 42}, ALPACA_MAP, "wrong_type"),
    ("alpaca", {"instruction": "Do it.", "input": ["x"], "output": "ok"}, ALPACA_MAP,
     "wrong_type"),
    ("alpaca", {"instruction": "  \n", "output": "ok"}, ALPACA_MAP, "empty_text"),
    # Several defects: the code checked first wins, whatever the slot order.
    ("alpaca", {"instruction": 7, "output": None}, ALPACA_MAP, "missing_field"),
    ("alpaca", {"instruction": "", "output": 7}, ALPACA_MAP, "wrong_type"),
    ("alpaca", ["not", "a", "record"], ALPACA_MAP, "wrong_type"),
    ("sharegpt", {"conversations": "human: hi"}, CONV_MAP, "wrong_type"),
    ("sharegpt", {"conversations": []}, CONV_MAP, "empty_conversation"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("gpt", None))}, CONV_MAP,
     "null_turn"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt"}]},
     CONV_MAP, "null_turn"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "Hi"}, None]}, CONV_MAP,
     "null_turn"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("gpt", 3))}, CONV_MAP,
     "wrong_type"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("gpt", " "))}, CONV_MAP,
     "empty_text"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("narrator", "Meanwhile"))},
     CONV_MAP, "unknown_role"),
    ("sharegpt", {"conversations": [{"value": "Hi"}, {"from": "gpt", "value": "Yo"}]},
     CONV_MAP, "unknown_role"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("gpt", "Yo"),
                                             ("system", "Now be rude."), ("human", "Hi"),
                                             ("gpt", "What."))}, CONV_MAP,
     "roles_out_of_order"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("gpt", "Yo"), ("gpt", "Yo!"))},
     CONV_MAP, "roles_out_of_order"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("human", "Hi?"), ("gpt", "Yo"))},
     CONV_MAP, "roles_out_of_order"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Hi"), ("observation", "{}"),
                                             ("gpt", "Yo"))}, CONV_MAP, "roles_out_of_order"),
    ("sharegpt", {"conversations": gpt_turns(("system", "Be nice."), ("human", "Hi"))},
     CONV_MAP, "no_assistant_turn"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Weather?"),
                                             ("function_call", "{'name': 'get_weather'}"),
                                             ("observation", "sunny"), ("gpt", "Sunny."))},
     CONV_MAP, "invalid_tool_call"),
    ("sharegpt", {"conversations": gpt_turns(("human", "Weather?"),
                                             ("function_call", '{"arguments": {}}'),
                                             ("observation", "sunny"), ("gpt", "Sunny."))},
     CONV_MAP, "invalid_tool_call"),
    ("sharegpt", {"conversations": GOOD_CONV, "tools": "[{not json"}, SHAREGPT_MAP,
     "wrong_type"),
    ("openai_messages", {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
        {"role": "assistant", "content": "A cat."}]}, OPENAI_MAP, "empty_text"),
    ("openai_messages", {"messages": [
        user("Add"), {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "add", "arguments": "a=1"}}]},
        {"role": "tool", "content": "1"}, assistant("1")]}, OPENAI_MAP, "invalid_tool_call"),
    ("openai_messages", {"messages": [user("Hi"), {"role": "assistant", "content": None}]},
     OPENAI_MAP, "null_turn"),
    ("preference", {"prompt": "Hi", "chosen": "Hello", "rejected": "Hello"}, PREF_MAP,
     "identical_preference"),
    ("preference", {"chosen": [user("Hi"), assistant("Hello ")],
                    "rejected": [user("Hi"), assistant("Hello")]}, PREF_MAP,
     "identical_preference"),
    ("preference", {"chosen": "Hello", "rejected": "Bye"}, PREF_MAP, "missing_field"),
    ("preference", {"prompt": "Hi", "chosen": "Hello"}, PREF_MAP, "missing_field"),
    ("preference", {"prompt": "Hi", "chosen": "", "rejected": "Bye"}, PREF_MAP, "empty_text"),
    ("preference", {"prompt": "Hi", "chosen": 1, "rejected": "Bye"}, PREF_MAP, "wrong_type"),
    ("preference", {"chosen": [user("Hi"), assistant("A")], "rejected": [user("Yo"),
                                                                          assistant("B")]},
     PREF_MAP, "roles_out_of_order"),
    ("preference", {"prompt": "Hi", "chosen": [user("Hi")], "rejected": "B"}, PREF_MAP,
     "no_assistant_turn"),
    ("prompt_completion", {"prompt": "P", "completion": {"text": "C"}},
     {"prompt": "prompt", "completion": "completion"}, "wrong_type"),
    ("question_answer", {"question": "Q?", "answer": "A", "context": 5},
     {"question": "question", "answer": "answer", "context": "context"}, "wrong_type"),
    ("text", {"text": ""}, {"text": "text"}, "empty_text"),
    ("text", {"body": "hi"}, {"text": "text"}, "missing_field"),
    ("classification", {"text": "Nice", "label": ["pos"]}, {"text": "text", "label": "label"},
     "wrong_type"),
    ("classification", {"text": "Nice", "label": " "}, {"text": "text", "label": "label"},
     "empty_text"),
]


@pytest.mark.parametrize("mapper_id, record, field_map, code", DEFECTS,
                         ids=[f"{d[0]}-{d[3]}-{i}" for i, d in enumerate(DEFECTS)])
def test_defective_records_are_rejected_with_the_exact_code(mapper_id, record, field_map, code):
    assert get_mapper(mapper_id).map(record, field_map) == (None, code)


def test_every_code_a_mapper_returns_is_a_map_code_in_the_taxonomy():
    for code in CODE_ORDER:
        assert taxonomy.lookup(code).stage == "map", code


# --- registry, field maps, plugins -------------------------------------------------------------

def test_the_builtin_registry():
    assert sorted(BUILTIN_MAPPERS) == sorted([
        "alpaca", "sharegpt", "openai_messages", "prompt_completion", "question_answer",
        "preference", "text", "classification"])
    for mapper_id, mapper in BUILTIN_MAPPERS.items():
        assert mapper.id == mapper_id and mapper.description
        assert set(mapper.required) <= set(mapper.slots)


def test_get_mapper_refuses_an_unknown_id_listing_the_known_ones():
    assert get_mapper("alpaca") is BUILTIN_MAPPERS["alpaca"]
    with pytest.raises(InputError) as err:
        get_mapper("alpacca")
    assert err.value.code == "mapper_unknown" and err.value.exit_code == 2
    assert "alpaca" in err.value.message and "sharegpt" in err.value.message


@pytest.mark.parametrize("field_map, needle", [
    (["instruction", "output"], "JSON object"),
    ({"instruction": "q", "output": 3}, "JSON object"),
    ({"instruction": "q", "output": ""}, "JSON object"),
    ({"instruction": "q", "output": "a", "answer": "a"}, "unknown slot(s): answer"),
    ({"instruction": "q"}, "required slot(s) not mapped: output"),
])
def test_check_field_map_refuses_bad_maps(field_map, needle):
    with pytest.raises(InputError) as err:
        check_field_map(get_mapper("alpaca"), field_map)
    assert err.value.code == "field_map_invalid"
    assert needle in err.value.message
    assert "instruction, input, output, system" in err.value.message
    assert "required: instruction, output" in err.value.message


def test_check_field_map_returns_a_good_map():
    fmap = {"instruction": "q", "output": "meta.a"}
    assert check_field_map(get_mapper("alpaca"), fmap) == fmap


def _write_module(path, name: str, body: str) -> str:
    (path / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def test_load_plugin_mappers_keeps_going_past_broken_modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    good = _write_module(tmp_path, "brewslm_plugin_good", """
        class Upper:
            id, description = "upper", "Upper-cases a text field."
            slots, required = ("text",), ("text",)
            def map(self, record, field_map):
                return None, "missing_field"
        class Broken:
            id = "broken"
        MAPPERS = [Upper(), Broken()]
    """)
    boom = _write_module(tmp_path, "brewslm_plugin_boom", "raise RuntimeError('boom')\n")
    bare = _write_module(tmp_path, "brewslm_plugin_bare", "X = 1\n")
    clash = _write_module(tmp_path, "brewslm_plugin_clash", """
        class Alpaca:
            id, description, slots, required = "alpaca", "", ("a",), ()
            def map(self, record, field_map):
                return None, "missing_field"
        MAPPERS = [Alpaca()]
    """)
    found, errors = load_plugin_mappers([good, boom, "brewslm_no_such_module", bare, clash])
    assert list(found) == ["upper"]
    by_module = {e["module"]: e["error"] for e in errors}
    assert set(by_module) == {good, boom, "brewslm_no_such_module", bare, clash}
    assert by_module[good] == "MAPPERS[1]: broken: slots is not a list of slot names"
    assert "RuntimeError: boom" in by_module[boom]
    assert "ModuleNotFoundError" in by_module["brewslm_no_such_module"]
    assert "no MAPPERS list" in by_module[bare]
    assert "already taken" in by_module[clash]
    assert get_mapper("upper", extra=found) is found["upper"]


# --- the schema validator ----------------------------------------------------------------------

@pytest.mark.parametrize("change, needle", [
    ({"task": "chat"}, "task"),
    ({"messages": [{"role": "narrator", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": 1}]}, "content"),
    ({"messages": [user("hi")]}, "assistant"),
    ({"text": "also text"}, "text null"),
    ({"tools": {"name": "f"}}, "tools"),
    ({"meta": {1: "x"}}, "meta"),
    ({"messages": [user("hi"), {"role": "assistant", "content": "",
                                "tool_calls": [{"name": "f", "arguments": "[1]"}]}]},
     "arguments"),
])
def test_validate_canonical_names_the_problem(change, needle):
    row = {**sft([user("hi"), assistant("hello")]), **change}
    problem = validate_canonical(row)
    assert problem is not None and needle in problem


def test_validate_canonical_accepts_each_task():
    assert validate_canonical(sft([user("hi"), assistant("hello")])) is None
    assert validate_canonical({"task": "pretrain", "messages": [], "chosen": None,
                               "rejected": None, "text": "t", "tools": None, "meta": {}}) is None
    assert validate_canonical({"task": "preference", "messages": [user("q")],
                               "chosen": [assistant("a")], "rejected": [assistant("b")],
                               "text": None, "tools": None, "meta": {}}) is None
    assert "keys" in validate_canonical({"task": "sft"})
