"""Row quality filters for stage 05 (clean): each returns a reason code or None.

    from brewslm.clean.quality import QualityConfig, check_quality
    cfg = QualityConfig.from_dict(project.settings.get("clean", {}))   # unknown keys refused
    code = check_quality(row, cfg)   # None, or the first failing code

Checks, in this fixed order (the first that fails names the row's drop reason):

    empty_answer         the answer (assistant text, chosen, or pretrain text) is blank
    too_short            the answer or the whole row is shorter than the minimums
    too_long             the whole row is longer than max_chars
    mostly_non_text      too few letters among the row's non-space characters
    repeated_lines       the answer repeats its own lines (scraped boilerplate, looping output)
    repeated_ngrams      the answer repeats its own word n-grams (degenerate generations)
    answer_equals_prompt the answer restates the prompt (after normalization)

An assistant turn that calls a tool may have no text: it is an answer, not an empty one.
Pure functions; the stage writes the ledger and events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from brewslm.clean.dedup import normalize
from brewslm.clean.text import has_tool_calls, prompt_and_answer, row_text
from brewslm.errors import InputError

RATIO_MIN_CHARS = 20  # below this many non-space characters, letter ratios say nothing
REPETITION_MIN_LINES = 4  # fewer lines than this cannot show a repetition pattern
REPETITION_MIN_WORDS = 20  # nor can fewer words


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality filters (the project's `clean` setting overrides them)."""

    min_answer_chars: int = 2  # answer shorter than this (stripped): too_short
    min_text_chars: int = 8  # whole row text shorter than this (stripped): too_short
    max_chars: int = 200_000  # whole row text longer than this: too_long (~50k tokens)
    min_alpha_ratio: float = 0.25  # letters / non-space characters below this: mostly_non_text
    max_repeated_line_ratio: float = 0.3  # share of answer lines repeating an earlier line
    max_repeated_ngram_ratio: float = 0.3  # share of answer words inside repeated n-grams
    repeated_ngram_n: int = 4  # word n-gram size for repeated_ngrams

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> QualityConfig:
        """A config from a settings mapping; unknown keys and bad values are refused."""
        d = dict(d or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError("project_setting_invalid",
                             f"unknown clean setting(s) {unknown}; known: {sorted(known)}",
                             field="clean", unknown=unknown)
        for name, value in d.items():
            _check_value(name, value, known[name].default)
        return cls(**d)


def _check_value(name: str, value: Any, default: Any) -> None:
    """Counts are integers (n-gram size at least 1), ratios are numbers between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        ok = False
    elif isinstance(default, int):
        ok = isinstance(value, int) and value >= (1 if name == "repeated_ngram_n" else 0)
    else:
        ok = 0 <= value <= 1
    if not ok:
        want = "an integer >= 0" if isinstance(default, int) else "a number between 0 and 1"
        raise InputError("project_setting_invalid",
                         f"clean setting {name!r} takes {want}, got {value!r}",
                         field=f"clean.{name}")


def empty_answer(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """Nothing to learn: the answer is blank and no tool is called."""
    return not answer.strip() and not has_tool_calls(row)


def too_short(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """A one-character answer, or a row too small to teach anything."""
    short_answer = len(answer.strip()) < cfg.min_answer_chars and not has_tool_calls(row)
    return short_answer or len(text.strip()) < cfg.min_text_chars


def too_long(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """Whole dumps, concatenated files: far past any training context."""
    return len(text) > cfg.max_chars


def mostly_non_text(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """Binary junk, number tables, markup or symbol soup: few letters (any script)."""
    visible = [c for c in text if not c.isspace()]
    if len(visible) < RATIO_MIN_CHARS:
        return False
    return sum(c.isalpha() for c in visible) / len(visible) < cfg.min_alpha_ratio


def repeated_lines(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """Boilerplate lines repeated through a scraped page, or a generation stuck in a loop."""
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if len(lines) < REPETITION_MIN_LINES:
        return False
    return 1 - len(set(lines)) / len(lines) > cfg.max_repeated_line_ratio


def repeated_ngram_ratio(text: str, n: int) -> float:
    """Share of words covered by word n-grams that occur more than once (Gopher's measure)."""
    words = text.casefold().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i:i + n] = [True] * n
    return sum(covered) / max(len(words), 1)


def repeated_ngrams(prompt: str, answer: str, text: str, row: dict, cfg: QualityConfig) -> bool:
    """The same phrase over and over within one line ("sorry, I can't... sorry, I can't...")."""
    if len(answer.split()) < REPETITION_MIN_WORDS:
        return False
    return repeated_ngram_ratio(answer, cfg.repeated_ngram_n) > cfg.max_repeated_ngram_ratio


def answer_equals_prompt(prompt: str, answer: str, text: str, row: dict,
                         cfg: QualityConfig) -> bool:
    """An echo: the answer is the prompt again, up to case, spacing and edge punctuation."""
    return bool(prompt.strip()) and normalize(prompt) == normalize(answer)


Check = Callable[[str, str, str, dict, QualityConfig], bool]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("empty_answer", empty_answer), ("too_short", too_short), ("too_long", too_long),
    ("mostly_non_text", mostly_non_text), ("repeated_lines", repeated_lines),
    ("repeated_ngrams", repeated_ngrams), ("answer_equals_prompt", answer_equals_prompt),
)


def check_quality(row: dict[str, Any], cfg: QualityConfig) -> str | None:
    """The first failing check's reason code, in the order of CHECKS, or None."""
    prompt, answer = prompt_and_answer(row)
    text = row_text(row)
    for code, check in CHECKS:
        if check(prompt, answer, text, row, cfg):
            return code
    return None
