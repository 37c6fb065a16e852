"""Single-turn instruction mappers: alpaca, prompt_completion, question_answer.

Each turns one record into a two-turn sft conversation (plus a system turn when the system
slot has text):

    ALPACA.map({"instruction": "Add.", "input": "2+2", "output": "4"},
               {"instruction": "instruction", "input": "input", "output": "output"})
    # -> ({"task": "sft", "messages": [{"role": "user", "content": "Add.\\n\\n2+2"},
    #                                  {"role": "assistant", "content": "4"}], ...}, None)
"""

from __future__ import annotations

from typing import Any

from brewslm.mappers.common import BuiltinMapper, Fields, turn, with_system


def _exchange(f: Fields, user: str, answer: str, system: str | None) -> dict[str, Any]:
    return f.sft_row(with_system([turn("user", user), turn("assistant", answer)], system))


def _joined(*parts: str | None) -> str:
    """The parts of a user turn, separated by a blank line; absent parts are left out."""
    return "\n\n".join(p for p in parts if p)


def _alpaca(f: Fields) -> dict[str, Any] | None:
    instruction, output = f.text("instruction"), f.text("output")
    extra, system = f.text("input", required=False), f.text("system", required=False)
    if not f.ok:
        return None
    # The input follows the instruction: "Summarize this." then the text to summarize.
    return _exchange(f, _joined(instruction, extra), output, system)


def _prompt_completion(f: Fields) -> dict[str, Any] | None:
    prompt, completion = f.text("prompt"), f.text("completion")
    system = f.text("system", required=False)
    if not f.ok:
        return None
    return _exchange(f, prompt, completion, system)


def _question_answer(f: Fields) -> dict[str, Any] | None:
    question, answer = f.text("question"), f.text("answer")
    context, system = f.text("context", required=False), f.text("system", required=False)
    if not f.ok:
        return None
    # The context comes first so the question reads as being about it (reading comprehension).
    return _exchange(f, _joined(context, question), answer, system)


ALPACA = BuiltinMapper(
    id="alpaca",
    description="Alpaca-style instruction / optional input / output records.",
    slots=("instruction", "input", "output", "system"),
    required=("instruction", "output"),
    build=_alpaca,
)
PROMPT_COMPLETION = BuiltinMapper(
    id="prompt_completion",
    description="A prompt and its completion, as one user turn and one assistant turn.",
    slots=("prompt", "completion", "system"),
    required=("prompt", "completion"),
    build=_prompt_completion,
)
QUESTION_ANSWER = BuiltinMapper(
    id="question_answer",
    description="A question (with optional context before it) and its answer.",
    slots=("question", "answer", "context", "system"),
    required=("question", "answer"),
    build=_question_answer,
)
