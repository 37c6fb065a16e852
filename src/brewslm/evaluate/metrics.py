"""Eval metrics: one Metric protocol, the built-ins, and plugins.

    from brewslm.evaluate.metrics import Example, build_metrics
    metrics = build_metrics(["exact_match", "token_f1", {"name": "regex_match",
                                                         "pattern": "^[A-Z]"}])
    ex = Example(row_id="r1", prompt="...", prediction="...", reference="...", latency_s=0.1)
    for m in metrics:
        score = m.score(ex)                    # float in the metric's range, or None (n/a)
        total = m.aggregate([ex], [score])     # the split-level figure

INTERFACE (fixed; the evaluate stage and the lm-eval cross-check rely on it):
- Example: row_id, prompt, prediction, reference, latency_s (float|None), slice (str|None),
  meta (dict).
- Metric protocol: `name: str`, `higher_is_better: bool`, `score(example) -> float | None`,
  `aggregate(examples, scores) -> float | None` (mean of non-None scores for most; BLEU is
  corpus-level).
- build_metrics(specs, plugins=()) -> list[Metric]; a spec is a name or a dict with "name" and
  the metric's parameters. Unknown names raise InputError("eval_metric_unknown").

Specs
-----
A spec is a metric name ("token_f1") or a dict: {"name": "regex_match", "pattern": "^\\d+$",
"mode": "fullmatch"}. Every dict may also carry "label": the name the metric is reported under,
so that one metric can be used twice with different parameters (two regex checks). Two metrics
with the same reported name are refused (eval_metric_invalid), as are unknown parameters, a
missing required parameter, a regex that does not compile and a JSON schema that is not one.
`known_metrics()` lists every metric with its direction, a one-line description and its
parameters.

Scores and None
---------------
`score` returns a float, or None when the metric does not apply to the row (no reference, no
latency recorded, a reference that is not JSON for json_match). `aggregate` ignores the None
rows and returns None when no row had a score. All built-ins score in [0, 1] except `bleu`
(0-100, sacrebleu's scale) and the latencies (seconds). Loss and perplexity are not
generation metrics: the stage computes the mean token loss on the eval split with teacher
forcing, and `perplexity_from_loss` turns it into perplexity.

The built-ins
-------------
exact_match       normalized string equality (the rules are in `normalize_text`);
                  {"normalize": false} compares the raw strings.
token_f1          SQuAD-style bag-of-tokens F1 over normalized tokens (`answer_tokens`).
rouge_l           ROUGE-L F-measure from rouge_score's RougeScorer(["rougeL"]), with a
                  Unicode-aware tokenizer by default (see `UnicodeRougeTokenizer`);
                  {"tokenizer": "ascii"} uses rouge_score's own (it drops every non-ASCII
                  word, so Cyrillic, Greek or CJK text scores 0). {"use_stemmer": true}.
bleu              sacrebleu. Row: sentence_bleu (exp smoothing, effective order); split:
                  corpus_bleu over all rows with a reference (not the mean of rows), which is
                  the standard figure and what lm-evaluation-harness reports. 0-100 scale.
                  {"tokenize": "13a" | "intl" | "zh" | "char" | "none", "lowercase": false}.
json_valid        the prediction parses as JSON (RFC 8259: NaN/Infinity refused); surrounding
                  whitespace is allowed, a Markdown code fence is not unless
                  {"allow_fences": true} (a consumer's json.loads would fail on it).
json_schema       parses and validates against {"schema": {...}} (jsonschema, the draft the
                  schema's $schema names, latest otherwise; no format assertions; a $ref
                  must be local, "#/..."), and/or {"match_reference_keys": true}: the
                  prediction is a JSON object with exactly the top-level keys of the
                  reference's JSON object. Both take {"allow_fences": true}.
json_match        the parsed prediction equals the parsed reference: key order is ignored,
                  list order is not, 1 == 1.0 but true != 1. {"allow_fences": true}.
regex_match       {"pattern": ..., "mode": "search" | "fullmatch", "ignore_case": false} on the
                  prediction with surrounding whitespace stripped.
empty_or_refusal  the prediction is empty/whitespace or starts with a refusal phrase
                  (REFUSAL_PATTERNS; add your own prefixes with {"extra_phrases": [...]}).
                  Lower is better; the aggregate is the rate.
latency           the example's latency_s; aggregate the mean. Lower is better.
latency_p95       the same per row; aggregate the 95th percentile (linear interpolation,
                  numpy's default method).

Writing a metric plugin
-----------------------
A plugin is an importable module that exposes `METRICS = [...]`: Metric instances, or
classes/factories that build one. A zero-argument call must work (it is how the registry learns
the name); a spec's parameters are passed to the factory as keyword arguments (an instance
takes none). The simplest way is to subclass `BaseMetric`, whose `aggregate` is the mean:

    # my_metrics.py
    from brewslm.evaluate.metrics import BaseMetric

    class StartsWithTicket(BaseMetric):
        name = "starts_with_ticket"
        higher_is_better = True
        description = "the prediction starts with 'TICKET-'"

        def score(self, example):
            return float(example.prediction.startswith("TICKET-"))

    METRICS = [StartsWithTicket]

and then `build_metrics(["starts_with_ticket"], plugins=["my_metrics"])`. A plugin may not
take a built-in's name, nor another plugin's (eval_metric_invalid); a module that does not
import or has no METRICS list is refused with extension_load_failed.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from brewslm.errors import InputError

__all__ = [
    "BaseMetric", "Example", "Metric", "REFUSAL_PATTERNS", "UnicodeRougeTokenizer",
    "answer_tokens", "build_metrics", "json_equal", "known_metrics", "normalize_text",
    "parse_json", "perplexity_from_loss",
]


# --- the interface ----------------------------------------------------------------------------

@dataclass
class Example:
    """One eval row as a metric sees it: the model's output and what it should have been."""

    row_id: str
    prompt: str
    prediction: str
    reference: str | None
    latency_s: float | None = None
    slice: str | None = None
    meta: dict = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """What every metric, built-in or plugin, provides."""

    name: str
    higher_is_better: bool

    def score(self, example: Example) -> float | None:
        """The row's score, or None when the metric does not apply to it."""
        ...

    def aggregate(self, examples: Sequence[Example],
                  scores: Sequence[float | None]) -> float | None:
        """The split-level figure from the rows and their scores (None: nothing to score)."""
        ...


class BaseMetric:
    """Convenience base: `aggregate` is the mean of the non-None scores. A subclass sets
    `name` and defines `score(example)` (the Metric protocol)."""

    name: str = ""
    higher_is_better: bool = True
    description: str = ""

    def aggregate(self, examples: Sequence[Example],
                  scores: Sequence[float | None]) -> float | None:
        return _mean(scores)

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


def _mean(scores: Iterable[float | None]) -> float | None:
    values = [float(s) for s in scores if s is not None]
    return sum(values) / len(values) if values else None


def perplexity_from_loss(mean_loss: float) -> float:
    """exp(mean token cross-entropy, natural log) — the eval split's perplexity.

    `mean_loss` must be the token-weighted mean (total loss / total target tokens), not a mean
    of per-batch means. Returns inf when the exponent overflows; NaN stays NaN."""
    try:
        return math.exp(float(mean_loss))
    except OverflowError:
        return math.inf


# --- text normalization -----------------------------------------------------------------------

# Stripped from the start of an answer: quotes, opening/closing brackets, Markdown emphasis and
# code marks, Spanish inverted marks, CJK corner brackets. Not '-', '.', '+', '$', '%', '#':
# "-5", ".5", "$5", "50%" keep their meaning.
_LEADING = "\"'`*([{)]}\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2039\u203a\u00bf\u00a1" \
           "\u300c\u300d\u300e\u300f\u3010\u3011"
# Stripped from the end: the same, plus sentence punctuation . , ; : ! ? and the ideographic
# full stop and comma (NFKC has already turned fullwidth ！？，：； into ASCII, … into ...).
_TRAILING = _LEADING.replace("\u00bf\u00a1", "") + ".,;:!?\u3002\u3001"


def normalize_text(text: str | None) -> str:
    """The normalization behind exact_match and token_f1, in this order:

    1. Unicode NFKC (fullwidth forms become ASCII, ligatures split, "…" becomes "...");
    2. lowercase (str.lower, not casefold: "ß" stays "ß");
    3. whitespace collapsed: every run of Unicode whitespace (newlines included) becomes one
       space, and leading/trailing whitespace goes;
    4. surrounding punctuation stripped, repeatedly, with the whitespace it uncovers. From the
       start: quotes (" ' ` “ ” ‘ ’ « » „ ‚ ‹ ›), brackets ( ) [ ] { }, '*', '¿', '¡' and
       CJK corner brackets 「 」 『 』 【 】. From the end: the same (not ¿ ¡) plus . , ; : ! ?
       and the ideographic 。 、. Punctuation inside the text is kept ("u.s.a", "don't",
       "3.14"), and so are a leading '-', '.', '+', '$' and a trailing '%', which carry meaning.
       Articles are not removed.

    Against lm-evaluation-harness's exact_match (HF `evaluate`'s rules): with ignore_case=True
    and ignore_punctuation=True it lowercases and deletes every ASCII string.punctuation
    character anywhere ("u.s.a." -> "usa", "-5" -> "5", "don't" -> "dont"), and it never
    strips or collapses whitespace nor applies NFKC. So the two agree whenever punctuation sits
    only at the ends of the answers (and is in both sets), the whitespace is already single
    and the text is NFKC; `{"normalize": false}` is plain equality, like its default options.
    """
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = " ".join(text.split())
    while True:
        stripped = text.lstrip(_LEADING + " ").rstrip(_TRAILING + " ")
        if stripped == text:
            return text
        text = stripped


_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0x20000, 0x2FA1F))


def _is_cjk(ch: str) -> bool:
    """Han ideographs and kana: scripts written without spaces, one token per character."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def answer_tokens(text: str | None) -> list[str]:
    """token_f1's tokens: `normalize_text`, split on spaces, each token stripped of the same
    surrounding punctuation ("cat," -> "cat", "(a)" -> "a"), empty tokens dropped, and each Han
    or kana character a token of its own (Chinese and Japanese have no spaces to split on)."""
    tokens: list[str] = []
    for word in normalize_text(text).split(" "):
        word = word.lstrip(_LEADING).rstrip(_TRAILING)
        run = ""
        for ch in word:
            if _is_cjk(ch):
                if run:
                    tokens.append(run)
                tokens.append(ch)
                run = ""
            else:
                run += ch
        if run:
            tokens.append(run)
    return tokens


# --- errors -----------------------------------------------------------------------------------

def _invalid(metric: str, param: str | None, problem: str) -> InputError:
    where = f"metric {metric!r}" + (f", parameter {param!r}" if param else "")
    return InputError("eval_metric_invalid", f"{where}: {problem}", metric=metric, param=param)


def _need_bool(metric: str, param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(metric, param, f"must be true or false, got {value!r}")
    return value


# --- the built-ins ----------------------------------------------------------------------------

class ExactMatch(BaseMetric):
    name = "exact_match"
    description = "normalized string equality with the reference (NFKC, case, whitespace, " \
                  "surrounding punctuation)"
    params = {"normalize": "false: compare the raw strings (default true)"}

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = _need_bool(self.name, "normalize", normalize)

    def score(self, example: Example) -> float | None:
        if example.reference is None:
            return None
        if not self.normalize:
            return float((example.prediction or "") == example.reference)
        return float(normalize_text(example.prediction) == normalize_text(example.reference))


class TokenF1(BaseMetric):
    name = "token_f1"
    description = "SQuAD-style bag-of-tokens F1 between normalized prediction and reference"
    params: dict[str, str] = {}

    def score(self, example: Example) -> float | None:
        if example.reference is None:
            return None
        pred, ref = answer_tokens(example.prediction), answer_tokens(example.reference)
        if not pred or not ref:
            return float(pred == ref)  # both empty: 1; one empty: 0 (as SQuAD)
        common = sum((Counter(pred) & Counter(ref)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred), common / len(ref)
        return 2 * precision * recall / (precision + recall)


class UnicodeRougeTokenizer:
    """A rouge_score tokenizer that keeps non-ASCII words.

    rouge_score's default tokenizer lowercases and replaces everything outside [a-z0-9] with a
    space, so "Привет мир" has no tokens at all and scores 0. This one applies NFKC and
    lowercase, and a token is a run of Unicode letters, marks and digits (category L*, M*, N*);
    each Han or kana character is a token of its own. On ASCII text it gives exactly the default
    tokenizer's tokens. With use_stemmer, ASCII tokens longer than 3 characters go through the
    Porter stemmer, as rouge_score does."""

    def __init__(self, use_stemmer: bool = False) -> None:
        self._stemmer = None
        if use_stemmer:
            from nltk.stem import porter

            self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        run = ""
        for ch in unicodedata.normalize("NFKC", text or "").lower():
            if _is_cjk(ch):
                if run:
                    tokens.append(run)
                tokens.append(ch)
                run = ""
            elif unicodedata.category(ch)[0] in "LMN" and ch != "_":
                run += ch
            elif run:
                tokens.append(run)
                run = ""
        if run:
            tokens.append(run)
        if self._stemmer is not None:
            tokens = [self._stemmer.stem(t) if len(t) > 3 and t.isascii() else t
                      for t in tokens]
        return tokens


class RougeL(BaseMetric):
    name = "rouge_l"
    description = "ROUGE-L F-measure (rouge_score), Unicode-aware tokens; mean over rows"
    params = {"tokenizer": "unicode (default) or ascii (rouge_score's own: drops non-ASCII)",
              "use_stemmer": "Porter-stem English tokens (default false)"}

    def __init__(self, tokenizer: str = "unicode", use_stemmer: bool = False) -> None:
        if tokenizer not in ("unicode", "ascii"):
            raise _invalid(self.name, "tokenizer", f"must be 'unicode' or 'ascii', "
                                                   f"got {tokenizer!r}")
        use_stemmer = _need_bool(self.name, "use_stemmer", use_stemmer)
        from rouge_score import rouge_scorer

        custom = UnicodeRougeTokenizer(use_stemmer) if tokenizer == "unicode" else None
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer,
                                                tokenizer=custom)

    def score(self, example: Example) -> float | None:
        if example.reference is None:
            return None
        # rouge_score's argument order is (target, prediction)
        return float(self._scorer.score(example.reference, example.prediction or "")
                     ["rougeL"].fmeasure)


# sacrebleu tokenizers that work offline with no extra package (ja-mecab / ko-mecab need MeCab;
# spm / flores download a SentencePiece model).
_BLEU_TOKENIZERS = ("13a", "intl", "zh", "char", "none")


class Bleu(BaseMetric):
    name = "bleu"
    description = "sacrebleu BLEU, 0-100: sentence BLEU per row, corpus BLEU for the split"
    params = {"tokenize": f"one of {', '.join(_BLEU_TOKENIZERS)} (default 13a)",
              "lowercase": "case-insensitive BLEU (default false)"}

    def __init__(self, tokenize: str = "13a", lowercase: bool = False) -> None:
        if tokenize not in _BLEU_TOKENIZERS:
            raise _invalid(self.name, "tokenize", f"must be one of {', '.join(_BLEU_TOKENIZERS)}"
                                                  f" (offline, no extra packages); "
                                                  f"got {tokenize!r}")
        lowercase = _need_bool(self.name, "lowercase", lowercase)
        from sacrebleu.metrics import BLEU

        self._sentence = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)
        self._corpus = BLEU(tokenize=tokenize, lowercase=lowercase)
        self._corpus.corpus_score(["x"], [["x"]])  # sacrebleu's signature needs nrefs (1)

    @property
    def signature(self) -> str:
        """sacrebleu's signature of the corpus figure (tokenizer, smoothing, version)."""
        return str(self._corpus.get_signature())

    def score(self, example: Example) -> float | None:
        if example.reference is None:
            return None
        return float(self._sentence.sentence_score(example.prediction or "",
                                                   [example.reference]).score)

    def aggregate(self, examples: Sequence[Example],
                  scores: Sequence[float | None]) -> float | None:
        rows = [ex for ex in examples if ex.reference is not None]
        if not rows:
            return None
        return float(self._corpus.corpus_score([ex.prediction or "" for ex in rows],
                                               [[ex.reference for ex in rows]]).score)


_FENCE = re.compile(r"```[^\n`]*\n(.*?)\n?```", re.DOTALL)
_NOT_PARSED = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | None, allow_fences: bool = False) -> Any:
    """The JSON value in `text`, or `_NOT_PARSED`. Surrounding whitespace is allowed; NaN,
    Infinity and -Infinity are refused (Python's json accepts them, RFC 8259 does not). With
    allow_fences, a text that is exactly one Markdown code fence (```json ... ```, any or no
    info string) is parsed from inside the fence."""
    text = (text or "").strip()
    if allow_fences:
        fenced = _FENCE.fullmatch(text)
        if fenced:
            text = fenced.group(1).strip()
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # JSONDecodeError is a ValueError
        return _NOT_PARSED


def json_equal(a: Any, b: Any) -> bool:
    """Equality of parsed JSON values: objects by keys (order ignored), arrays in order,
    numbers by value (1 == 1.0), and booleans are not numbers (true != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class JsonValid(BaseMetric):
    name = "json_valid"
    description = "the prediction parses as JSON (strict RFC 8259; code fences only if allowed)"
    params = {"allow_fences": "accept a prediction that is one ```json fence (default false)"}

    def __init__(self, allow_fences: bool = False) -> None:
        self.allow_fences = _need_bool(self.name, "allow_fences", allow_fences)

    def score(self, example: Example) -> float | None:
        return float(parse_json(example.prediction, self.allow_fences) is not _NOT_PARSED)


def _remote_refs(node: Any) -> list[str]:
    """Every $ref / $dynamicRef in a schema that is not a local "#..." pointer."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                if not value.startswith("#"):
                    found.append(value)
            else:
                found += _remote_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _remote_refs(item)
    return found


class JsonSchema(BaseMetric):
    name = "json_schema"
    description = "the prediction is JSON that validates against `schema` and/or has exactly " \
                  "the reference object's keys"
    params = {"schema": "a JSON Schema (object)",
              "match_reference_keys": "the prediction is an object with exactly the "
                                      "reference's top-level keys (default false)",
              "allow_fences": "accept a prediction that is one ```json fence (default false)"}

    def __init__(self, schema: Mapping | None = None, match_reference_keys: bool = False,
                 allow_fences: bool = False) -> None:
        self.match_reference_keys = _need_bool(self.name, "match_reference_keys",
                                               match_reference_keys)
        self.allow_fences = _need_bool(self.name, "allow_fences", allow_fences)
        self._validator = None
        if schema is None and not self.match_reference_keys:
            raise _invalid(self.name, "schema", "give a JSON schema, or match_reference_keys: "
                                                "true")
        if schema is not None:
            if not isinstance(schema, Mapping):
                raise _invalid(self.name, "schema", f"must be a JSON object, got "
                                                    f"{type(schema).__name__}")
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for

            cls = validator_for(dict(schema))
            try:
                cls.check_schema(dict(schema))
            except SchemaError as exc:
                raise _invalid(self.name, "schema", f"not a valid JSON schema: "
                                                    f"{exc.message}") from exc
            remote = _remote_refs(schema)
            if remote:
                raise _invalid(self.name, "schema", f"$ref {remote[0]!r} points outside the "
                                                    "schema; remote schemas are not fetched "
                                                    "(offline): inline it under $defs")
            self._validator = cls(dict(schema))

    def score(self, example: Example) -> float | None:
        keys = None
        if self.match_reference_keys:
            ref = parse_json(example.reference, allow_fences=True)
            if not isinstance(ref, dict):
                return None  # no reference object to take the keys from
            keys = ref.keys()
        value = parse_json(example.prediction, self.allow_fences)
        if value is _NOT_PARSED:
            return 0.0
        if keys is not None and not (isinstance(value, dict) and value.keys() == keys):
            return 0.0
        if self._validator is not None and not self._validator.is_valid(value):
            return 0.0
        return 1.0


class JsonMatch(BaseMetric):
    name = "json_match"
    description = "the parsed prediction equals the parsed reference (key order ignored)"
    params = {"allow_fences": "accept a prediction that is one ```json fence (default false)"}

    def __init__(self, allow_fences: bool = False) -> None:
        self.allow_fences = _need_bool(self.name, "allow_fences", allow_fences)

    def score(self, example: Example) -> float | None:
        ref = parse_json(example.reference, allow_fences=True)
        if ref is _NOT_PARSED:
            return None  # the reference is not JSON: the metric does not apply
        value = parse_json(example.prediction, self.allow_fences)
        return float(value is not _NOT_PARSED and json_equal(value, ref))


class RegexMatch(BaseMetric):
    name = "regex_match"
    description = "the prediction matches `pattern` (re.search, or re.fullmatch with " \
                  "mode: fullmatch)"
    params = {"pattern": "a Python regular expression (required)",
              "mode": "search (default) or fullmatch",
              "ignore_case": "case-insensitive (default false)"}

    def __init__(self, pattern: str | None = None, mode: str = "search",
                 ignore_case: bool = False) -> None:
        if pattern is None:
            raise _invalid(self.name, "pattern", "is required")
        if not isinstance(pattern, str):
            raise _invalid(self.name, "pattern", f"must be a string, got {pattern!r}")
        if mode not in ("search", "fullmatch"):
            raise _invalid(self.name, "mode", f"must be 'search' or 'fullmatch', got {mode!r}")
        flags = re.IGNORECASE if _need_bool(self.name, "ignore_case", ignore_case) else 0
        try:
            self._regex = re.compile(pattern, flags)
        except re.error as exc:
            raise _invalid(self.name, "pattern", f"does not compile: {exc}") from exc
        self.mode = mode

    def score(self, example: Example) -> float | None:
        text = (example.prediction or "").strip()
        found = (self._regex.fullmatch if self.mode == "fullmatch" else self._regex.search)(text)
        return float(found is not None)


# Matched at the start of the normalized prediction (normalize_text, curly apostrophes made
# straight), first person singular only: "we cannot refund this order" is a support answer,
# not the model refusing. Deliberately short: openings of a refusal, not every hedge; an
# apology alone ("I'm sorry to hear that...") is not one.
_REFUSE = r"(?:can ?not|can't|won't|will not|am unable|'m unable|am not able|'m not able" \
          r"|do not|don't)"
REFUSAL_PATTERNS: tuple[str, ...] = (
    # "I'm sorry, but I can't ...", "Sorry, I'm unable ..."
    rf"(?:(?:i'?m|i am) (?:so |very |really )?)?sorry,? (?:but )?i ?{_REFUSE}\b",
    # "I apologize, but I cannot ..."
    rf"i apologi[sz]e,? (?:but )?i ?{_REFUSE}\b",
    # "I cannot help with that", "I'm unable to provide ...", "I won't answer ..."
    rf"i ?{_REFUSE} (?:to )?(?:help|assist|provide|answer|comply|fulfil|do that|share)\b",
    # "Unfortunately, I can't ..."
    rf"unfortunately,? i ?{_REFUSE}\b",
    # "As an AI language model, ..."
    r"as an ai\b",
)


class EmptyOrRefusal(BaseMetric):
    name = "empty_or_refusal"
    higher_is_better = False
    description = "the prediction is empty or opens with a refusal phrase; aggregate is the rate"
    params = {"extra_phrases": "more refusal openings (plain text, case-insensitive)"}

    def __init__(self, extra_phrases: Sequence[str] = ()) -> None:
        if isinstance(extra_phrases, str) or not all(isinstance(p, str) and p.strip()
                                                     for p in extra_phrases):
            raise _invalid(self.name, "extra_phrases", "must be a list of non-empty strings")
        patterns = list(REFUSAL_PATTERNS) + [re.escape(_refusal_text(p)) for p in extra_phrases]
        self._regex = re.compile("|".join(f"(?:{p})" for p in patterns))

    def score(self, example: Example) -> float | None:
        text = _refusal_text(example.prediction)
        return float(not text or self._regex.match(text) is not None)


def _refusal_text(text: str | None) -> str:
    return normalize_text((text or "").replace("\u2019", "'").replace("\u2018", "'"))


class Latency(BaseMetric):
    name = "latency"
    higher_is_better = False
    description = "seconds per example (latency_s); aggregate is the mean"
    params: dict[str, str] = {}

    def score(self, example: Example) -> float | None:
        return None if example.latency_s is None else float(example.latency_s)


class LatencyP95(Latency):
    name = "latency_p95"
    description = "seconds per example (latency_s); aggregate is the 95th percentile"

    def aggregate(self, examples: Sequence[Example],
                  scores: Sequence[float | None]) -> float | None:
        return _percentile([s for s in scores if s is not None], 0.95)


def _percentile(values: Sequence[float], q: float) -> float | None:
    """numpy.percentile's default ('linear') method, without numpy."""
    if not values:
        return None
    ordered = sorted(float(v) for v in values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


BUILTIN_METRICS: dict[str, type[BaseMetric]] = {cls.name: cls for cls in (
    ExactMatch, TokenF1, RougeL, Bleu, JsonValid, JsonSchema, JsonMatch, RegexMatch,
    EmptyOrRefusal, Latency, LatencyP95)}


# --- registry, plugins ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    name: str
    higher_is_better: bool
    description: str
    params: dict[str, str] | None  # None: a plugin factory, parameters unknown in advance
    source: str  # "builtin" or the plugin's module
    make: Callable[..., Any]


def _metric_problem(obj: Any) -> str | None:
    """Why `obj` is not a Metric (None when it is one)."""
    try:
        name, hib = getattr(obj, "name", None), getattr(obj, "higher_is_better", None)
        score, aggregate = getattr(obj, "score", None), getattr(obj, "aggregate", None)
    except Exception as exc:  # a property that raises
        return f"reading its attributes raised {type(exc).__name__}: {exc}"
    if not isinstance(name, str) or not name.strip():
        return "it has no name (a non-empty string)"
    if not isinstance(hib, bool):
        return f"{name}: higher_is_better is not true or false"
    if not callable(score) or not callable(aggregate):
        return f"{name}: it needs score(example) and aggregate(examples, scores) methods"
    return None


def _describe(obj: Any) -> str:
    text = getattr(obj, "description", None)
    if not isinstance(text, str) or not text.strip():
        text = (type(obj).__doc__ or "").strip()
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _plugin_entries(module_name: str, taken: Mapping[str, _Entry]) -> list[_Entry]:
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a broken plugin is a settings problem, not a crash
        raise InputError("extension_load_failed", f"metric plugin {module_name!r} did not "
                         f"import: {type(exc).__name__}: {exc}", module=module_name,
                         error=f"{type(exc).__name__}: {exc}") from exc
    objects = getattr(module, "METRICS", None)
    if not isinstance(objects, list | tuple):
        raise InputError("extension_load_failed", f"metric plugin {module_name!r} has no "
                         "METRICS list", module=module_name, error="no METRICS list")
    entries: list[_Entry] = []
    for i, obj in enumerate(objects):
        where = f"{module_name}.METRICS[{i}]"
        if isinstance(obj, type) or (callable(obj) and _metric_problem(obj) is not None):
            factory = obj
            try:
                sample = factory()
            except Exception as exc:
                raise _invalid(where, None, f"calling it with no arguments raised "
                                            f"{type(exc).__name__}: {exc}") from exc
        else:
            sample = obj
            factory = None
        problem = _metric_problem(sample)
        if problem:
            raise _invalid(where, None, f"not a Metric: {problem}")
        name = sample.name
        if name in BUILTIN_METRICS:
            raise _invalid(name, None, f"plugin {module_name!r} may not replace the built-in "
                                       f"metric {name!r}; give it another name")
        clash = taken.get(name) or next((e for e in entries if e.name == name), None)
        if clash is not None:
            raise _invalid(name, None, f"plugins {clash.source!r} and {module_name!r} both "
                                       f"define {name!r}")
        if factory is None:
            def make(_obj: Any = sample, **params: Any) -> Any:
                if params:
                    raise _invalid(_obj.name, next(iter(params)), "this plugin metric is an "
                                   "instance and takes no parameters")
                return _obj
        else:
            make = factory
        entries.append(_Entry(name, sample.higher_is_better, _describe(sample), None,
                              module_name, make))
    return entries


def _registry(plugins: Iterable[str] | str = ()) -> dict[str, _Entry]:
    registry = {name: _Entry(name, cls.higher_is_better, cls.description, dict(cls.params),
                             "builtin", cls)
                for name, cls in BUILTIN_METRICS.items()}
    if isinstance(plugins, str):
        plugins = [plugins]
    found: dict[str, _Entry] = {}
    for module_name in plugins:
        for entry in _plugin_entries(str(module_name), found):
            found[entry.name] = entry
    registry.update(found)
    return registry


def known_metrics(plugins: Iterable[str] | str = ()) -> list[dict[str, Any]]:
    """Every metric build_metrics accepts (built-ins first, then the plugins'), as
    {"name", "higher_is_better", "description", "params": {param: help} | None, "source"}.
    params is None for a plugin factory (its parameters are its own)."""
    return [{"name": e.name, "higher_is_better": e.higher_is_better,
             "description": e.description, "params": e.params, "source": e.source}
            for e in _registry(plugins).values()]


class _Labeled:
    """A metric reported under another name (a spec's "label")."""

    def __init__(self, inner: Any, label: str) -> None:
        self._inner = inner
        self.name = label
        self.higher_is_better = inner.higher_is_better

    def score(self, example: Example) -> float | None:
        return self._inner.score(example)

    def aggregate(self, examples: Sequence[Example],
                  scores: Sequence[float | None]) -> float | None:
        return self._inner.aggregate(examples, scores)

    def __getattr__(self, attr: str) -> Any:  # signature, description, ...
        if attr == "_inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(attr)
        return getattr(self._inner, attr)

    def __repr__(self) -> str:
        return f"<metric {self.name} ({self._inner.name})>"


def build_metrics(specs: Iterable[str | Mapping[str, Any]],
                  plugins: Iterable[str] | str = ()) -> list[Metric]:
    """Metric objects for `specs`, in order (see the module docstring for the spec format).

    Raises InputError: eval_metric_unknown for a name that is neither built in nor defined by a
    plugin; eval_metric_invalid for bad parameters, a broken plugin metric or two metrics
    reported under one name; extension_load_failed for a plugin module that does not import."""
    registry = _registry(plugins)
    metrics: list[Any] = []
    for spec in specs:
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            params = {k: v for k, v in spec.items() if k != "name"}
            name = spec["name"]
        else:
            raise _invalid(str(spec), None, "a metric spec is a name or a mapping with a "
                                            "'name' key")
        entry = registry.get(name)
        if entry is None:
            raise InputError("eval_metric_unknown", f"unknown metric {name!r}; known: "
                             f"{', '.join(registry)}", metric=name, known=list(registry))
        label = params.pop("label", None)
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise _invalid(name, "label", "must be a non-empty string")
        if entry.params is not None:
            unknown = [p for p in params if p not in entry.params]
            if unknown:
                allowed = ", ".join(entry.params) or "none"
                raise _invalid(name, unknown[0], f"unknown parameter (allowed: {allowed}, "
                                                 f"label)")
        try:
            metric = entry.make(**params)
        except InputError:
            raise
        except Exception as exc:  # a plugin factory refusing its parameters
            raise _invalid(name, None, f"building it raised {type(exc).__name__}: "
                                       f"{exc}") from exc
        if entry.source != "builtin":
            problem = _metric_problem(metric)
            if problem:
                raise _invalid(name, None, f"the plugin built something that is not a Metric: "
                                           f"{problem}")
        if label is not None:
            metric = _Labeled(metric, label)
        elif metric.name != name:  # a plugin factory that names its product differently
            metric = _Labeled(metric, name)
        metrics.append(metric)
    names = [m.name for m in metrics]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _invalid(dupes[0], "label", "two metrics would be reported under this name; "
                                          "give one a distinct label")
    return metrics
