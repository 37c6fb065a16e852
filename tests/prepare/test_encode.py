"""encode_row: the loss mask for every built-in mapper's rows, length policies, hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from brewslm.basemodels import build_builtin_tiny
from brewslm.mappers import BUILTIN_MAPPERS
from brewslm.prepare import IGNORE_INDEX, Encoded, encode_row, template_hash, tokenizer_hash
from brewslm.prepare.encode import template_message

END = "<|im_end|>"

# ChatML that also renders tool calls (the builtin template renders content only), so the
# tool-call span of an assistant turn can be checked.
TOOL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content -}}"
    "{%- if message.tool_calls is defined -%}{%- for call in message.tool_calls -%}"
    "{{- '<tool_call>' + ({'name': call.function.name, 'arguments': call.function.arguments}"
    " | tojson) + '</tool_call>' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# Renders every turn but the assistant's: nothing is left to train on.
NO_ASSISTANT_TEMPLATE = (
    "{%- for message in messages if message.role != 'assistant' -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
)


@pytest.fixture(scope="module")
def tok(models_dir):
    # Module scope runs before the autouse per-test fixture, so point at the shared models
    # folder here (the root conftest's session-wide BREWSLM_MODELS_DIR).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BREWSLM_MODELS_DIR", str(models_dir))
        path = build_builtin_tiny()
    return AutoTokenizer.from_pretrained(path)


def trainable_runs(tok, enc: Encoded) -> list[str]:
    """Each maximal run of trained-on tokens, decoded (special tokens kept)."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(enc.input_ids, enc.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # a label is the token itself, never shifted or changed
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = label != IGNORE_INDEX
    return [tok.decode(run, skip_special_tokens=False) for run in runs]


def masked_text(tok, enc: Encoded) -> str:
    ids = [t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label == IGNORE_INDEX]
    return tok.decode(ids, skip_special_tokens=False)


def whole_ids(tok, messages: list[dict], template: str | None = None) -> list[int]:
    """Tokenizing the whole rendered conversation at once, for comparison."""
    text = tok.apply_chat_template([template_message(m) for m in messages], tokenize=False,
                                   chat_template=template)
    return tok(text, add_special_tokens=False)["input_ids"]


def map_row(mapper_id: str, record: dict, field_map: dict) -> dict:
    row, code = BUILTIN_MAPPERS[mapper_id].map(record, field_map)
    assert code is None, code
    return row


# --- one realistic record per built-in mapper --------------------------------------------------

WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
WEATHER_TOOL = {"name": "get_weather", "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}

# mapper id -> (record, field map, expected trainable runs with the builtin template)
CASES: dict[str, tuple[dict, dict, list[str]]] = {
    "alpaca": (
        {"instruction": "Translate to French.", "input": "Good morning, friend.",
         "output": "Bonjour, mon ami.", "system": "You translate text."},
        {"instruction": "instruction", "input": "input", "output": "output",
         "system": "system"},
        ["Bonjour, mon ami." + END]),
    "sharegpt": (
        {"conversations": [
            {"from": "human", "value": "What is the weather in Paris?"},
            {"from": "function_call", "value": json.dumps(WEATHER_CALL)},
            {"from": "observation", "value": '{"temp_c": 21, "sky": "clear"}'},
            {"from": "gpt", "value": "It is 21 degrees and clear."},
            {"from": "human", "value": "Thanks a lot!"},
            {"from": "gpt", "value": "You are welcome."}],
         "tools": json.dumps([WEATHER_TOOL])},
        {"conversations": "conversations", "tools": "tools"},
        # The builtin ChatML template renders content only: the call turn is just its end.
        [END, "It is 21 degrees and clear." + END, "You are welcome." + END]),
    "openai_messages": (
        {"messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in"},
                                         {"type": "text", "text": "Oslo?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": -3}'},
            {"role": "assistant", "content": "Minus three in Oslo; wear a coat."}]},
        {"messages": "messages"},
        [END, "Minus three in Oslo; wear a coat." + END]),
    "prompt_completion": (
        {"prompt": "Write a haiku about tea.",
         "completion": "Steam curls from the cup\nleaves unfold in amber warmth\nquiet afternoon"},
        {"prompt": "prompt", "completion": "completion"},
        ["Steam curls from the cup\nleaves unfold in amber warmth\nquiet afternoon" + END]),
    "question_answer": (
        {"context": "The Nile flows north into the Mediterranean Sea.",
         "question": "Which way does the Nile flow?", "answer": "Northward."},
        {"question": "question", "answer": "answer", "context": "context"},
        ["Northward." + END]),
    "preference": (
        {"chosen": [{"role": "user", "content": "What is 2 + 2?"},
                    {"role": "assistant", "content": "2 + 2 equals four."}],
         "rejected": [{"role": "user", "content": "What is 2 + 2?"},
                      {"role": "assistant", "content": "It is five, I think."}]},
        {"chosen": "chosen", "rejected": "rejected"},
        ["2 + 2 equals four." + END]),
    "text": (
        {"text": "Once upon a time there was a very small model.", "url": "https://x.org/1"},
        {"text": "text"},
        ["Once upon a time there was a very small model." + END]),
    "classification": (
        {"review": "Arrived late and the box was crushed.", "sentiment": "negative"},
        {"text": "review", "label": "sentiment"},
        ["negative" + END]),
}


def test_every_builtin_mapper_has_a_case():
    assert set(CASES) == set(BUILTIN_MAPPERS)


def assistant_contents(row: dict) -> list[str]:
    turns = [*row["messages"], *(row["chosen"] or [])]
    return [m["content"] for m in turns if m["role"] == "assistant" and m["content"]]


@pytest.mark.parametrize("mapper_id", sorted(CASES))
def test_loss_mask_of_each_mapper_output(tok, mapper_id):
    record, field_map, expected = CASES[mapper_id]
    row = map_row(mapper_id, record, field_map)
    enc = encode_row(row, tok, max_tokens=512)
    assert isinstance(enc, Encoded)
    # Trained on: exactly each assistant turn's content plus the end-of-turn token.
    assert trainable_runs(tok, enc) == expected
    assert enc.n_trainable == sum(label != IGNORE_INDEX for label in enc.labels)
    assert enc.n_tokens == len(enc.input_ids) == len(enc.labels)
    assert enc.truncated_tokens == 0
    if row["task"] == "pretrain":
        assert enc.labels == enc.input_ids
        return
    masked = masked_text(tok, enc)
    for content in assistant_contents(row):
        assert content not in masked
    assert "<|im_start|>assistant\n" in masked  # the header is context, not a target
    # Tokenizing the pieces separately gives the same ids as the whole render here.
    assert enc.input_ids == whole_ids(tok, row["messages"] + (row["chosen"] or []))


def test_preference_rows_encode_both_sides_masked_alike(tok):
    record, field_map, _ = CASES["preference"]
    enc = encode_row(map_row("preference", record, field_map), tok, max_tokens=512)
    rejected = enc.rejected
    assert isinstance(rejected, Encoded) and rejected.rejected is None
    assert trainable_runs(tok, enc) == ["2 + 2 equals four." + END]
    assert trainable_runs(tok, rejected) == ["It is five, I think." + END]
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}],
                                     tokenize=False, add_generation_prompt=True)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    for side in (enc, rejected):
        assert side.input_ids[:len(prompt_ids)] == prompt_ids
        assert set(side.labels[:len(prompt_ids)]) == {IGNORE_INDEX}


def test_tool_calls_are_trained_as_the_template_renders_them(tok):
    record, field_map, _ = CASES["sharegpt"]
    row = map_row("sharegpt", record, field_map)
    enc = encode_row(row, tok, chat_template=TOOL_TEMPLATE, max_tokens=512)
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    assert trainable_runs(tok, enc) == [call + END, "It is 21 degrees and clear." + END,
                                        "You are welcome." + END]
    masked = masked_text(tok, enc)
    assert "<tool_call>" not in masked and '"temp_c": 21' in masked  # the result is context
    assert enc.input_ids == whole_ids(tok, row["messages"], TOOL_TEMPLATE)


def test_openai_tool_call_with_the_tool_template(tok):
    record, field_map, _ = CASES["openai_messages"]
    enc = encode_row(map_row("openai_messages", record, field_map), tok,
                     chat_template=TOOL_TEMPLATE, max_tokens=512)
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    assert trainable_runs(tok, enc) == [call + END, "Minus three in Oslo; wear a coat." + END]


def test_prompt_ids_are_the_generation_prompt_ids(tok):
    """Each answer follows exactly the ids the model sees when asked to generate it."""
    record, field_map, _ = CASES["sharegpt"]
    row = map_row("sharegpt", record, field_map)
    enc = encode_row(row, tok, max_tokens=512)
    starts = [k for k, label in enumerate(enc.labels)
              if label != IGNORE_INDEX and (k == 0 or enc.labels[k - 1] == IGNORE_INDEX)]
    turns = [i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]
    for start, i in zip(starts, turns, strict=True):
        prompt = tok.apply_chat_template([template_message(m) for m in row["messages"][:i]],
                                         tokenize=False, add_generation_prompt=True)
        assert enc.input_ids[:start] == tok(prompt, add_special_tokens=False)["input_ids"]


def sft(*turns: tuple[str, str]) -> dict:
    return {"task": "sft", "messages": [{"role": r, "content": c} for r, c in turns],
            "chosen": None, "rejected": None, "text": None, "tools": None, "meta": {}}


def test_a_template_that_masks_everything_gives_no_trainable_tokens(tok):
    row = sft(("user", "Hi"), ("assistant", "Hello"))
    assert encode_row(row, tok, chat_template=NO_ASSISTANT_TEMPLATE, max_tokens=512) == \
        (None, "no_trainable_tokens")


@pytest.mark.parametrize("template", [
    "{{ raise_exception('no tools here') }}",
    "{{ messages[-1].content }}",  # renders are not prefixes of each other: cannot be cut
    "{% for m in messages %}{{ m.content + }}{% endfor %}",  # does not compile
])
def test_template_failures(tok, template):
    row = sft(("user", "Hi"), ("assistant", "Hello"))
    assert encode_row(row, tok, chat_template=template, max_tokens=512) == \
        (None, "template_failed")


def test_an_opening_assistant_turn_and_trailing_turns_are_not_trained(tok):
    row = sft(("assistant", "Welcome to the shop!"), ("user", "Do you sell tea?"),
              ("assistant", "Yes, green and black."), ("user", "Great, bye."))
    enc = encode_row(row, tok, max_tokens=512)
    assert trainable_runs(tok, enc) == ["Yes, green and black." + END]
    assert "Welcome to the shop!" in masked_text(tok, enc)
    assert enc.input_ids == whole_ids(tok, row["messages"][:3])  # the last user turn is left out


def test_a_conversation_without_an_answer_has_no_trainable_tokens(tok):
    row = sft(("assistant", "Welcome!"), ("user", "Bye."))
    assert encode_row(row, tok, max_tokens=512) == (None, "no_trainable_tokens")


def test_drop_policy_and_the_exact_limit(tok):
    row = sft(("user", "Count to five."), ("assistant", "One, two, three, four, five."))
    full = encode_row(row, tok, max_tokens=512)
    assert encode_row(row, tok, max_tokens=full.n_tokens) == full
    assert encode_row(row, tok, max_tokens=full.n_tokens - 1) == (None, "too_many_tokens")


def test_truncate_cuts_from_the_end_and_counts(tok):
    row = sft(("user", "Count to five."), ("assistant", "One, two, three, four, five."))
    full = encode_row(row, tok, max_tokens=512)
    cut = encode_row(row, tok, max_tokens=full.n_tokens - 3, policy="truncate")
    assert cut.truncated_tokens == 3 and cut.n_tokens == full.n_tokens - 3
    assert cut.input_ids == full.input_ids[:-3] and cut.labels == full.labels[:-3]
    assert cut.n_trainable == full.n_trainable - 2  # the end token and one answer token went
    assert trainable_runs(tok, cut)[0] == tok.decode(
        [t for t, label in zip(cut.input_ids, cut.labels, strict=True) if label != IGNORE_INDEX])


def test_truncating_into_the_prompt_leaves_no_trainable_tokens(tok):
    row = sft(("user", "Count to five, slowly please."), ("assistant", "One, two."))
    assert encode_row(row, tok, max_tokens=4, policy="truncate") == \
        (None, "no_trainable_tokens")


def test_preference_pairs_are_dropped_or_truncated_whole(tok):
    row = {"task": "preference", "messages": [{"role": "user", "content": "Say hi."}],
           "chosen": [{"role": "assistant", "content": "Hi!"}],
           "rejected": [{"role": "assistant", "content": "I will not say anything at all."}],
           "text": None, "tools": None, "meta": {}}
    both = encode_row(row, tok, max_tokens=512)
    limit = both.n_tokens  # the chosen side fits exactly, the rejected side does not
    assert both.rejected.n_tokens > limit
    assert encode_row(row, tok, max_tokens=limit) == (None, "too_many_tokens")
    cut = encode_row(row, tok, max_tokens=limit, policy="truncate")
    assert cut.truncated_tokens == 0 and cut.rejected.n_tokens == limit
    assert cut.rejected.truncated_tokens == both.rejected.n_tokens - limit


def test_pretrain_rows_are_all_trainable_and_end_with_eos(tok):
    row = map_row("text", {"text": "The tea was hot."}, {"text": "text"})
    enc = encode_row(row, tok, max_tokens=512)
    assert enc.labels == enc.input_ids and enc.n_trainable == enc.n_tokens
    assert enc.input_ids[-1] == tok.eos_token_id
    assert enc.input_ids[:-1] == tok("The tea was hot.", add_special_tokens=False)["input_ids"]
    short = encode_row(row, tok, max_tokens=2, policy="truncate")
    assert short.n_tokens == 2 and short.truncated_tokens == enc.n_tokens - 2


def test_bad_arguments_raise(tok):
    row = sft(("user", "Hi"), ("assistant", "Hello"))
    with pytest.raises(ValueError):
        encode_row(row, tok, max_tokens=512, policy="shorten")
    with pytest.raises(ValueError):
        encode_row(row, tok, max_tokens=0)
    with pytest.raises(ValueError):
        encode_row({**row, "task": "rlhf"}, tok, max_tokens=512)


def test_template_hash_is_the_hash_of_the_template_used(tok):
    default = template_hash(tok, None)
    assert default == hashlib.sha256(tok.chat_template.encode()).hexdigest()
    assert template_hash(tok, TOOL_TEMPLATE) == hashlib.sha256(TOOL_TEMPLATE.encode()).hexdigest()
    assert template_hash(tok, TOOL_TEMPLATE) != default


def test_tokenizer_hash_is_stable_across_loads_and_matches_the_file(tok):
    path = tok.name_or_path
    again = AutoTokenizer.from_pretrained(path)
    assert tokenizer_hash(tok) == tokenizer_hash(again)
    recorded = json.loads((Path(path) / "brewslm-model.json").read_text())
    assert tokenizer_hash(tok) == recorded["sha256"]["tokenizer.json"]
