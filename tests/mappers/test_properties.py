"""Property tests: a mapper never raises, whatever the record holds.

Every built-in mapper gets arbitrary JSON-like values in every slot (and near-miss
conversations: turns with random roles, contents, content parts and tool calls), and must
answer exactly (row, None) with a canonical row, or (None, code) with a map code from the
taxonomy. Valid conversations must come through whole, and introspection must survive any
sample too.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brewslm.events import taxonomy
from brewslm.mappers import BUILTIN_MAPPERS
from brewslm.mappers.common import CODE_ORDER, ROLE_ALIASES
from brewslm.mappers.introspect import profile_fields, propose
from brewslm.mappers.schema import validate_canonical

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
MAP_CODES = {c for c in CODE_ORDER if taxonomy.is_known(c)}
MAPPERS = sorted(BUILTIN_MAPPERS)
CONVERSATION_SLOTS = {"conversations", "messages", "chosen", "rejected"}

SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

KNOWN_ROLES = st.sampled_from(sorted(ROLE_ALIASES))
ROLES = KNOWN_ROLES | st.sampled_from(["User", " gpt ", "narrator", ""]) | JSON
TEXT = st.text(min_size=1, max_size=30).filter(lambda s: s.strip())
PART = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["text", "image_url", "input_audio"]) | JSON,
    "text": st.text(max_size=10) | JSON, "image_url": JSON})
CONTENT = TEXT | st.lists(PART | JSON, max_size=3) | JSON
ARGUMENTS = st.sampled_from(["{}", '{"city": "Paris"}', "not json", "[1, 2]", ""]) | JSON
FUNCTION = st.fixed_dictionaries({"name": st.sampled_from(["get_weather", "", " "]) | JSON},
                                 optional={"arguments": ARGUMENTS})
CALL = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=5) | JSON, "type": st.just("function"), "function": FUNCTION,
    "name": st.text(max_size=5), "arguments": ARGUMENTS})
CALL_VALUE = st.sampled_from([
    '{"name": "f", "arguments": {"x": 1}}', '{"name": "f"}', '{"name": ""}', "{bad",
    '[{"name": "g", "arguments": "{}"}]', "[]", "null"]) | st.lists(CALL, max_size=2)
OPENAI_TURN = st.fixed_dictionaries({"role": ROLES, "content": CONTENT}, optional={
    "tool_calls": st.lists(CALL, max_size=2) | JSON, "function_call": CALL | JSON,
    "name": st.text(max_size=5) | JSON, "tool_call_id": st.text(max_size=5) | JSON})
SHAREGPT_TURN = st.fixed_dictionaries({"from": ROLES, "value": CONTENT | CALL_VALUE})
ODD_TURN = st.fixed_dictionaries({}, optional={
    "role": ROLES, "from": ROLES, "content": CONTENT, "value": CONTENT | CALL_VALUE}) | JSON
TURN = OPENAI_TURN | SHAREGPT_TURN | ODD_TURN
TOOLS = st.sampled_from(['[{"name": "f"}]', '{"name": "f"}', "not json", "", "[1]"]) | JSON


TOOL_USE = [{"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "42"}]


@st.composite
def dialogues(draw, tools: bool = False) -> list[dict]:
    """A valid conversation: optional system turn, then user/assistant exchanges (with a
    tool call and its result before an answer, when `tools`)."""
    turns = [{"role": "system", "content": draw(TEXT)}] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 4))):
        turns.append({"role": "user", "content": draw(TEXT)})
        if tools and draw(st.booleans()):
            turns += TOOL_USE
        turns.append({"role": "assistant", "content": draw(TEXT)})
    return turns


@st.composite
def near_miss_dialogues(draw) -> list[dict]:
    """A valid conversation with one turn replaced, inserted or dropped: one defect at most,
    so the checks deep in a conversation (order, tool calls, roles) get exercised."""
    turns = draw(dialogues(tools=True))
    i = draw(st.integers(0, len(turns) - 1))
    action = draw(st.sampled_from(["replace", "insert", "drop"]))
    if action == "drop":
        return turns[:i] + turns[i + 1:]
    return turns[:i] + [draw(TURN)] + turns[i + (action == "replace"):]


CONVERSATION = near_miss_dialogues() | dialogues(tools=True) | st.lists(TURN, max_size=5) | JSON


def slot_values(slot: str) -> st.SearchStrategy:
    """Mostly plausible values that reach deep into the mapper, and arbitrary ones."""
    if slot in CONVERSATION_SLOTS:
        return CONVERSATION | TEXT
    if slot == "tools":
        return TOOLS
    return TEXT | JSON


def records(mapper_id: str, values, always: tuple[str, ...] = ()) -> st.SearchStrategy:
    """Records with the `always` slots, any subset of the others, and passthrough fields."""
    slots = BUILTIN_MAPPERS[mapper_id].slots
    mapped = st.fixed_dictionaries({s: values(s) for s in always},
                                   optional={s: values(s) for s in slots if s not in always})
    extra = st.dictionaries(st.text(max_size=6), SCALARS, max_size=3)
    return st.tuples(extra, mapped).map(lambda pair: {**pair[0], **pair[1]})


def check(result) -> None:
    assert isinstance(result, tuple) and len(result) == 2
    row, code = result
    if row is None:
        assert code in MAP_CODES, code
    else:
        assert code is None and isinstance(row, dict)
        assert validate_canonical(row) is None, validate_canonical(row)
        json.dumps(row)  # the map stage stores rows as JSON


def field_map(mapper_id: str, nested: bool) -> dict[str, str]:
    return {s: f"outer.{s}" if nested else s for s in BUILTIN_MAPPERS[mapper_id].slots}


@pytest.mark.parametrize("mapper_id", MAPPERS)
def test_arbitrary_json_never_raises(mapper_id):
    """Any JSON-like value in any slot, at the top level or nested, or no record at all."""
    @SETTINGS
    @given(record=records(mapper_id, lambda _slot: JSON) | JSON, nested=st.booleans())
    def run(record, nested):
        record = {"outer": record} if nested else record
        check(BUILTIN_MAPPERS[mapper_id].map(record, field_map(mapper_id, nested)))

    run()


@pytest.mark.parametrize("mapper_id", MAPPERS)
def test_near_miss_values_never_raise(mapper_id):
    """Required slots present, values mostly plausible: the deep checks run too."""
    required = BUILTIN_MAPPERS[mapper_id].required

    @SETTINGS
    @given(record=records(mapper_id, slot_values, always=required))
    def run(record):
        check(BUILTIN_MAPPERS[mapper_id].map(record, field_map(mapper_id, False)))

    run()


SHAREGPT_NAMES = {"system": "system", "user": "human", "assistant": "gpt"}


@SETTINGS
@given(dialogues())
def test_valid_conversations_come_through_whole(turns):
    row, code = BUILTIN_MAPPERS["openai_messages"].map({"m": turns}, {"messages": "m"})
    assert code is None and row["messages"] == turns
    share = [{"from": SHAREGPT_NAMES[t["role"]], "value": t["content"]} for t in turns]
    row, code = BUILTIN_MAPPERS["sharegpt"].map({"c": share}, {"conversations": "c"})
    assert code is None and row["messages"] == turns


@SETTINGS
@given(dialogues(), TEXT, TEXT)
def test_preference_pairs_split_at_the_shared_prompt(turns, good, bad):
    prompt = turns[:-1]
    chosen, rejected = [*prompt, {"role": "assistant", "content": good}], \
        [*prompt, {"role": "assistant", "content": bad}]
    row, code = BUILTIN_MAPPERS["preference"].map(
        {"chosen": chosen, "rejected": rejected}, {"chosen": "chosen", "rejected": "rejected"})
    if good.strip() == bad.strip():
        assert (row, code) == (None, "identical_preference")
    else:
        assert code is None
        assert row["messages"] + row["chosen"] == chosen
        assert row["messages"] + row["rejected"] == rejected


SAMPLE_RECORD = (st.dictionaries(st.sampled_from(
    ["text", "label", "messages", "conversations", "instruction", "output", "prompt", "chosen",
     "rejected", "x"]), CONVERSATION | JSON, max_size=4) | JSON)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(SAMPLE_RECORD, max_size=6))
def test_introspection_never_raises_and_ranks_consistently(records):
    profiles = profile_fields(records)
    assert all(0 <= p.present <= 1 and len(p.examples) <= 3 for p in profiles)
    json.dumps([p.to_dict() for p in profiles])  # the report is stored as JSON
    hypotheses = propose(records)
    assert [(-h.confidence, h.mapper) for h in hypotheses] == sorted(
        (-h.confidence, h.mapper) for h in hypotheses)
    for h in hypotheses:
        assert 0 < h.sample_accept_rate <= 1 and 0 <= h.confidence <= 1
        assert set(h.field_map) <= set(BUILTIN_MAPPERS[h.mapper].slots)
