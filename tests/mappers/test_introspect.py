"""Introspection: field profiles, and mapping proposals ranked by a confidence that picks the
right mapper (>= 0.8) for each clean shape and stays below 0.8 for messy files."""

from __future__ import annotations

import json

import pytest

from brewslm.mappers.introspect import AUTO_PICK_THRESHOLD, profile_fields, propose

N = 20
WORDS = ["the", "model", "learns", "small", "steps", "data", "quickly", "every", "night"]


def sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" #{i}."


def alpaca(i: int) -> dict:
    return {"instruction": f"Rewrite this: {sentence(i)}", "input": sentence(i + 1) if i % 2
            else "", "output": sentence(i + 2)}


def sharegpt(i: int) -> dict:
    turns = [{"from": "human", "value": sentence(i)}, {"from": "gpt", "value": sentence(i + 1)}]
    if i % 3 == 0:
        turns = [{"from": "system", "value": "You are helpful."}, *turns,
                 {"from": "human", "value": "More?"}, {"from": "gpt", "value": sentence(i + 2)}]
    return {"id": f"sg-{i}", "conversations": turns}


def glaive(i: int) -> dict:
    tools = [{"name": "get_weather", "parameters": {"type": "object"}}]
    call = {"name": "get_weather", "arguments": {"city": f"City{i}"}}
    return {"tools": json.dumps(tools), "conversations": [
        {"from": "human", "value": f"Weather in City{i}?"},
        {"from": "function_call", "value": json.dumps(call)},
        {"from": "observation", "value": '{"temp_c": 20}'},
        {"from": "gpt", "value": f"It is 20 °C in City{i}."}]}


def openai(i: int) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": sentence(i)},
                         {"role": "assistant", "content": sentence(i + 1)}]}


def prompt_completion(i: int) -> dict:
    return {"prompt": sentence(i), "completion": sentence(i + 3)}


def question_answer(i: int) -> dict:
    return {"context": sentence(i, 12), "question": f"What about {sentence(i, 3)}?",
            "answer": f"Answer {i}"}


def preference(i: int) -> dict:
    return {"prompt": sentence(i), "chosen": sentence(i + 1), "rejected": sentence(i + 2)}


def preference_turns(i: int) -> dict:
    prompt = {"role": "user", "content": sentence(i)}
    return {"prompt": sentence(i),
            "chosen": [prompt, {"role": "assistant", "content": sentence(i + 1)}],
            "rejected": [prompt, {"role": "assistant", "content": sentence(i + 2)}]}


def text(i: int) -> dict:
    return {"text": sentence(i, 20)}


def classification(i: int) -> dict:
    return {"text": sentence(i, 10), "label": ["positive", "negative", "neutral"][i % 3]}


def dataset(make, n: int = N) -> list[dict]:
    return [make(i) for i in range(n)]


CLEAN = [
    (alpaca, "alpaca", {"instruction": "instruction", "input": "input", "output": "output"}),
    (sharegpt, "sharegpt", {"conversations": "conversations"}),
    (glaive, "sharegpt", {"conversations": "conversations", "tools": "tools"}),
    (openai, "openai_messages", {"messages": "messages"}),
    (prompt_completion, "prompt_completion", {"prompt": "prompt", "completion": "completion"}),
    (question_answer, "question_answer",
     {"question": "question", "answer": "answer", "context": "context"}),
    (preference, "preference", {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}),
    (preference_turns, "preference",
     {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}),
    (text, "text", {"text": "text"}),
    (classification, "classification", {"text": "text", "label": "label"}),
]


@pytest.mark.parametrize("make, mapper, field_map", CLEAN, ids=[c[0].__name__ for c in CLEAN])
def test_each_clean_shape_is_proposed_above_the_threshold(make, mapper, field_map):
    best = propose(dataset(make))[0]
    assert (best.mapper, best.field_map) == (mapper, field_map)
    assert best.confidence >= AUTO_PICK_THRESHOLD
    assert best.sample_accept_rate == 1.0


def test_a_clean_alpaca_file_scores_at_least_0_9():
    assert propose(dataset(alpaca))[0].confidence >= 0.9


def test_a_file_where_only_60_percent_map_scores_below_the_threshold():
    records = dataset(alpaca)
    for r in records[12:]:
        del r["output"]
    best = propose(records)[0]
    assert best.mapper == "alpaca" and best.sample_accept_rate == 0.6
    assert best.confidence < AUTO_PICK_THRESHOLD
    assert "missing_field (8)" in best.rationale


def test_a_few_defective_records_do_not_sink_a_clear_mapping():
    records = dataset(alpaca, 8) + [{"instruction": "Say x"}, {"instruction": "", "output": "y"},
                                    {"instruction": 5, "output": "z"}]
    best = propose(records)[0]
    assert best.mapper == "alpaca" and best.sample_accept_rate == round(8 / 11, 4)
    assert best.confidence >= AUTO_PICK_THRESHOLD


def test_a_messy_mixed_file_is_not_auto_picked():
    records = (dataset(alpaca, 7) + dataset(sharegpt, 7) + dataset(text, 6)
               + [{"note": 3}, {"weird": [1, 2]}, {"text": ""}])
    hypotheses = propose(records)
    assert hypotheses and all(h.confidence < AUTO_PICK_THRESHOLD for h in hypotheses)


def ranked(records: list[dict]) -> list[str]:
    return [h.mapper for h in propose(records)]


def test_text_with_a_label_is_classification_before_text():
    order = ranked(dataset(classification))
    assert order.index("classification") < order.index("text")


def test_prompt_chosen_rejected_is_preference_before_prompt_completion():
    records = [{**r, "completion": r["chosen"]} for r in dataset(preference)]
    order = ranked(records)
    assert order[0] == "preference" and "prompt_completion" in order
    assert ranked(dataset(preference))[0] == "preference"


def test_messages_beat_text_when_both_are_present():
    records = [{**r, "text": sentence(i, 15)} for i, r in enumerate(dataset(openai))]
    hypotheses = propose(records)
    order = [h.mapper for h in hypotheses]
    assert order[0] == "openai_messages" and "text" in order
    assert hypotheses[0].confidence >= AUTO_PICK_THRESHOLD


def test_a_conversation_under_an_unusual_name_is_found_by_its_kind():
    records = [{"dialog_turns": r["messages"], "row": i} for i, r in enumerate(dataset(openai))]
    best = propose(records)[0]
    assert (best.mapper, best.field_map) == ("openai_messages", {"messages": "dialog_turns"})
    assert best.confidence >= AUTO_PICK_THRESHOLD
    assert "'dialog_turns' (by kind)" in best.rationale


def test_aliases_map_dolly_style_records():
    records = [{"instruction": sentence(i), "context": sentence(i + 1) if i % 2 else "",
                "response": sentence(i + 2), "category": ["qa", "summary"][i % 2]}
               for i in range(N)]
    best = propose(records)[0]
    assert best.mapper == "alpaca"
    assert best.field_map == {"instruction": "instruction", "input": "context",
                              "output": "response"}
    assert best.confidence >= AUTO_PICK_THRESHOLD


def test_an_optional_slot_that_breaks_records_is_left_out():
    records = [{**r, "system": 5 if i % 2 else "Be kind."}
               for i, r in enumerate(dataset(prompt_completion))]
    best = propose(records)[0]
    assert best.field_map == {"prompt": "prompt", "completion": "completion"}
    assert best.sample_accept_rate == 1.0


def test_hypotheses_are_sorted_deterministic_and_accept_something():
    records = dataset(classification) + dataset(alpaca, 5)
    hypotheses = propose(records)
    keys = [(-h.confidence, h.mapper) for h in hypotheses]
    assert keys == sorted(keys)
    assert all(h.sample_accept_rate > 0 for h in hypotheses)
    assert [h.to_dict() for h in propose(records)] == [h.to_dict() for h in hypotheses]
    for h in hypotheses:
        assert all(repr(field) in h.rationale for field in h.field_map.values())
        assert h.rationale.endswith(".") and h.rationale.count(". ") == 0


def test_nothing_fits_nothing_is_proposed():
    assert propose([]) == []
    assert propose([{"a": 1, "b": True}, {"a": 2, "b": False}]) == []


# --- profiles ----------------------------------------------------------------------------------

def test_profile_kinds():
    records = [{
        "text": sentence(i), "messages": openai(i)["messages"],
        "conversations": sharegpt(i)["conversations"], "label": ["a", "b"][i % 2],
        "stars": [1, 2, 3][i % 3], "score": i / 7, "ok": i % 2 == 0, "tags": ["x", str(i)],
        "meta": {"k": i}, "image": f"images/{i}.png", "url": f"https://example.org/{i}",
        "blank": "" if i % 2 else None, "id": f"id{i}"} for i in range(N)]
    kinds = {p.name: p.kind for p in profile_fields(records)}
    assert kinds == {
        "text": "text", "messages": "chat_messages", "conversations": "role_turns",
        "label": "categorical", "stars": "categorical", "score": "numeric", "ok": "boolean",
        "tags": "list", "meta": "object", "image": "path", "url": "path", "blank": "empty",
        "id": "text"}


def test_profile_presence_distinct_and_examples():
    long = "x" * 200
    records = [{"a": long, "b": None}, {"a": "short one here", "b": 1}, {"a": long},
               {"a": "third value here"}, {"a": "fourth value here"}, "not a record"]
    a, b = profile_fields(records)
    assert (a.name, a.present, a.distinct) == ("a", round(5 / 6, 4), 4)
    assert a.examples == ["x" * 80, "short one here", "third value here"]
    assert (b.name, b.present, b.distinct, b.examples) == ("b", round(1 / 6, 4), 1, [1])
    nested = profile_fields([{"m": [{"role": "user", "content": "y" * 300}]}])[0]
    assert isinstance(nested.examples[0], str) and len(nested.examples[0]) == 80
    assert a.to_dict()["kind"] == "text"
    assert profile_fields([]) == []
