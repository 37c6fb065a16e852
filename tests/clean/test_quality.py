"""brewslm.clean.quality: each code triggered by a realistic row, normal rows kept, the
first failing check named, settings validated."""

from __future__ import annotations

import dataclasses

import pytest

from brewslm.clean.quality import QualityConfig, check_quality, repeated_ngram_ratio
from brewslm.errors import InputError

CFG = QualityConfig()


def sft(user: str, assistant: str, **extra) -> dict:
    return {"task": "sft", "messages": [{"role": "user", "content": user},
                                        {"role": "assistant", "content": assistant, **extra}],
            "chosen": None, "rejected": None, "text": None, "tools": None, "meta": {}}


def pretrain(text: str) -> dict:
    return {"task": "pretrain", "messages": [], "chosen": None, "rejected": None, "text": text,
            "tools": None, "meta": {}}


GOOD_ANSWER = ("I'm sorry about the double charge. I have refunded the duplicate payment of "
               "$49.00; it will appear on your statement within five business days.")
NORMAL_ROWS = {
    "sft": sft("My March invoice shows a double charge. Can you fix it?", GOOD_ANSWER),
    "preference": {"task": "preference",
                   "messages": [{"role": "user", "content": "How do I reset my password?"}],
                   "chosen": [{"role": "assistant",
                               "content": "Open Settings, choose Security, then Reset."}],
                   "rejected": [{"role": "assistant", "content": "No idea."}],
                   "text": None, "tools": None, "meta": {}},
    "pretrain": pretrain("Returns are accepted within 30 days of delivery. Items must be unused "
                         "and in their original packaging.\nRefunds go to the original payment "
                         "method.\nExchanges are free of charge.\nContact support for a label."),
    "code answer": sft("Write a Python function that adds two numbers.",
                       "def add(a: int, b: int) -> int:\n    return a + b\n"),
    "arithmetic": sft("What is 1234 * 5678?", "7006652"),
    "tool call without text": {
        "task": "sft", "messages": [
            {"role": "user", "content": "Where is my order 4821?"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"name": "track", "arguments": '{"order": 4821}'}]}],
        "chosen": None, "rejected": None, "text": None, "tools": None, "meta": {}},
    "list answer": sft("List the steps to pair the headset.",
                       "1. Turn the headset on.\n2. Hold the power button for 5 seconds.\n"
                       "3. Open Bluetooth settings on your phone.\n4. Tap the headset's name.\n"
                       "5. Wait for the confirmation tone."),
}


@pytest.mark.parametrize("name", sorted(NORMAL_ROWS))
def test_normal_rows_pass(name):
    assert check_quality(NORMAL_ROWS[name], CFG) is None


BOILERPLATE = "\n".join(["Subscribe to our newsletter!", "Shipping takes 3-5 days.",
                         "Subscribe to our newsletter!", "Free returns on all orders.",
                         "Subscribe to our newsletter!", "Follow us on social media.",
                         "Subscribe to our newsletter!", "Follow us on social media."])
LOOPING = "I can help you with that request. " * 8
READINGS = ";".join(f"{10 + i * 0.37:.2f}" for i in range(60))


@pytest.mark.parametrize(("row", "code"), [
    (sft("Can you help me with my refund?", "   \n "), "empty_answer"),
    (sft("Is the store open on Sundays, and until what time?", "y"), "too_short"),
    (sft("hi", "yo"), "too_short"),  # the whole row is under min_text_chars
    (pretrain("Server log dump follows. " + "GET /api/v1/orders 200 OK " * 9000), "too_long"),
    (sft("Export the sensor readings", READINGS), "mostly_non_text"),
    (pretrain("\x00\x01\x02\ufffd\ufffd#@!%%^&*()[]{}<>|\\/~`" * 4 + "ok"), "mostly_non_text"),
    (pretrain(BOILERPLATE), "repeated_lines"),
    (sft("Can you help me change my delivery address?", LOOPING), "repeated_ngrams"),
    (sft("Translate to French: good morning", "translate to french:   Good morning."),
     "answer_equals_prompt"),
])
def test_each_code_is_triggered_by_a_realistic_row(row, code):
    assert check_quality(row, CFG) == code


def test_the_first_failing_check_in_the_fixed_order_wins():
    # Blank and short at once: empty_answer comes first.
    assert check_quality(sft("ok?", ""), CFG) == "empty_answer"
    # Long and repetitive at once: too_long comes before repeated_lines.
    assert check_quality(pretrain(BOILERPLATE * 5000), CFG) == "too_long"


def test_thresholds_come_from_the_config():
    row = sft("Is the store open on Sundays?", "y")
    assert check_quality(row, QualityConfig(min_answer_chars=1)) is None
    assert check_quality(pretrain(BOILERPLATE),
                         QualityConfig(max_repeated_line_ratio=0.9)) == "repeated_ngrams"
    assert check_quality(pretrain(BOILERPLATE), QualityConfig(
        max_repeated_line_ratio=0.9, max_repeated_ngram_ratio=1.0)) is None


def test_repeated_ngram_ratio():
    assert repeated_ngram_ratio("a b c d a b c d", 4) == 1.0
    assert repeated_ngram_ratio("one two three four five six", 4) == 0.0
    assert repeated_ngram_ratio("", 4) == 0.0


def test_from_dict_accepts_known_keys_and_refuses_unknown_ones():
    assert QualityConfig.from_dict({"min_answer_chars": 1, "min_alpha_ratio": 0.1}) == (
        QualityConfig(min_answer_chars=1, min_alpha_ratio=0.1))
    assert QualityConfig.from_dict(None) == QualityConfig()
    with pytest.raises(InputError) as err:
        QualityConfig.from_dict({"min_answer_char": 1})
    assert err.value.code == "project_setting_invalid"
    assert "min_answer_char" in err.value.message


@pytest.mark.parametrize("bad", [{"min_answer_chars": "2"}, {"min_answer_chars": -1},
                                 {"min_answer_chars": 2.5}, {"min_alpha_ratio": 1.5},
                                 {"max_repeated_line_ratio": True}, {"repeated_ngram_n": 0}])
def test_from_dict_refuses_bad_values(bad):
    with pytest.raises(InputError) as err:
        QualityConfig.from_dict(bad)
    assert err.value.code == "project_setting_invalid"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.max_chars = 1  # type: ignore[misc]
