"""Eval metrics: exact values on hand-made rows, refusals with their codes, plugins, offline."""

from __future__ import annotations

import math
import socket
import textwrap
import uuid

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from brewslm.errors import InputError
from brewslm.evaluate.metrics import (
    Example,
    Metric,
    UnicodeRougeTokenizer,
    answer_tokens,
    build_metrics,
    known_metrics,
    normalize_text,
    perplexity_from_loss,
)

BUILTINS = {"exact_match", "token_f1", "rouge_l", "bleu", "json_valid", "json_schema",
            "json_match", "regex_match", "empty_or_refusal", "latency", "latency_p95"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a metric tried to open a network connection: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def ex(prediction: str, reference: str | None = None, latency_s: float | None = None,
       row_id: str = "r1") -> Example:
    return Example(row_id=row_id, prompt="p", prediction=prediction, reference=reference,
                   latency_s=latency_s)


def one(spec) -> Metric:
    (metric,) = build_metrics([spec])
    return metric


def score(spec, prediction: str, reference: str | None = None) -> float | None:
    return one(spec).score(ex(prediction, reference))


def refused(code: str, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        build_metrics(*args, **kwargs)
    assert info.value.code == code, info.value.message
    assert info.value.exit_code == 2
    return info.value


# --- normalization, exact_match, token_f1 -----------------------------------------------------

@pytest.mark.parametrize(("raw", "normalized"), [
    ("  The CAT. ", "the cat"),
    ('"Paris."', "paris"),
    ("**Yes**", "yes"),
    ("(A)", "a"),
    ("« Bonjour ! »", "bonjour"),
    ("a \n\t b", "a b"),
    ("ＡＢＣ！", "abc"),           # NFKC: fullwidth to ASCII
    ("U.S.A.", "u.s.a"),          # inner punctuation kept
    ("-5", "-5"),
    (".5", ".5"),
    ("50%.", "50%"),
    ("$5", "$5"),
    ("don't", "don't"),
    ("東京。", "東京"),
    ("", ""),
])
def test_normalize_text(raw, normalized):
    assert normalize_text(raw) == normalized


def test_exact_match():
    assert score("exact_match", "  The CAT. ", "the cat") == 1.0
    assert score("exact_match", "the cats", "the cat") == 0.0
    assert score("exact_match", "-5", "5") == 0.0
    assert score({"name": "exact_match", "normalize": False}, "Paris", "paris") == 0.0
    assert score({"name": "exact_match", "normalize": False}, "Paris", "Paris") == 1.0
    metric = one("exact_match")
    rows = [ex("a", "a"), ex("b", "c"), ex("x", None)]
    scores = [metric.score(r) for r in rows]
    assert scores == [1.0, 0.0, None]
    assert metric.aggregate(rows, scores) == 0.5
    assert metric.aggregate([rows[2]], [None]) is None
    assert metric.higher_is_better is True


def test_token_f1():
    assert answer_tokens("The cat, (the) DOG!") == ["the", "cat", "the", "dog"]
    assert answer_tokens("猫が好き") == ["猫", "が", "好", "き"]
    # 4 shared tokens of 6 and 6
    assert score("token_f1", "the cat sat on the mat", "the cat is on a mat") == \
        pytest.approx(2 / 3)
    # precision 1, recall 2/5
    assert score("token_f1", "red car", "a red car parked outside") == pytest.approx(4 / 7)
    assert score("token_f1", "cat,", "Cat") == 1.0
    assert score("token_f1", "dog", "cat") == 0.0
    assert score("token_f1", "", "") == 1.0
    assert score("token_f1", "", "cat") == 0.0
    assert score("token_f1", "猫が好き", "猫が嫌い") == pytest.approx(0.5)
    assert score("token_f1", "x", None) is None


# --- rouge_l, bleu ------------------------------------------------------------------------------

def test_rouge_l_equals_rouge_score_on_ascii():
    pred, ref = "the cat was found under the bed", "the cat was under the bed"
    own = rouge_scorer.RougeScorer(["rougeL"]).score(ref, pred)["rougeL"].fmeasure
    assert score("rouge_l", pred, ref) == pytest.approx(own) == pytest.approx(12 / 13)
    assert score({"name": "rouge_l", "tokenizer": "ascii"}, pred, ref) == pytest.approx(own)
    stemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(
        "he was running fast", "he runs fast")["rougeL"].fmeasure
    assert score({"name": "rouge_l", "use_stemmer": True}, "he runs fast",
                 "he was running fast") == pytest.approx(stemmed)


def test_unicode_rouge_tokenizer_matches_the_default_on_ascii_and_keeps_other_scripts():
    from rouge_score.tokenizers import DefaultTokenizer

    text = "Hello, World! It's 3.14 -- e-mail_me @ x-y.z (OK)?"
    assert UnicodeRougeTokenizer().tokenize(text) == DefaultTokenizer().tokenize(text)
    assert UnicodeRougeTokenizer().tokenize("Привет, мир! 東京タワー") == \
        ["привет", "мир", "東", "京", "タ", "ワ", "ー"]
    assert UnicodeRougeTokenizer().tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # marks kept
    assert score("rouge_l", "Привет мир", "привет, мир!") == 1.0
    assert score({"name": "rouge_l", "tokenizer": "ascii"}, "Привет мир", "привет мир") == 0.0


def test_bleu_sentence_per_row_and_corpus_for_the_split():
    rows = [ex("the cat sat on the mat", "the cat sat on the mat"),
            ex("a dog ran in the park today", "the dog ran in the park"),
            ex("completely unrelated words here", "the weather is nice"),
            ex("no reference", None)]
    metric = one("bleu")
    assert metric.signature == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" \
                               f"{sacrebleu.__version__}"
    scores = [metric.score(r) for r in rows]
    assert scores[0] == pytest.approx(100.0)
    assert scores[1] == pytest.approx(sacrebleu.sentence_bleu(rows[1].prediction,
                                                              [rows[1].reference]).score)
    assert scores[3] is None
    corpus = sacrebleu.corpus_bleu([r.prediction for r in rows[:3]],
                                   [[r.reference for r in rows[:3]]]).score
    total = metric.aggregate(rows, scores)
    assert total == pytest.approx(corpus)
    assert total != pytest.approx(sum(scores[:3]) / 3)  # corpus BLEU, not a mean of rows
    assert metric.aggregate([rows[3]], [None]) is None
    lower = one({"name": "bleu", "lowercase": True, "tokenize": "intl"})
    assert lower.score(ex("The Cat Sat On The Mat", "the cat sat on the mat")) == \
        pytest.approx(100.0)


# --- JSON ---------------------------------------------------------------------------------------

FENCED = '```json\n{"priority": "low"}\n```'


@pytest.mark.parametrize(("prediction", "strict", "fenced"), [
    (' {"a": 1} \n', 1.0, 1.0),
    ("[1, 2]", 1.0, 1.0),
    ("42", 1.0, 1.0),
    (FENCED, 0.0, 1.0),
    ("```\n[1]\n```", 0.0, 1.0),
    ("{'a': 1}", 0.0, 0.0),
    ('{"a": NaN}', 0.0, 0.0),
    ('{"a": 1} trailing', 0.0, 0.0),
    ("", 0.0, 0.0),
])
def test_json_valid(prediction, strict, fenced):
    assert score("json_valid", prediction) == strict
    assert score({"name": "json_valid", "allow_fences": True}, prediction) == fenced


SCHEMA = {"type": "object", "required": ["priority"],
          "properties": {"priority": {"enum": ["low", "high"]},
                         "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}},
          "$defs": {"tag": {"type": "string"}}}


def test_json_schema():
    spec = {"name": "json_schema", "schema": SCHEMA}
    assert score(spec, '{"priority": "low", "tags": ["a"]}') == 1.0
    assert score(spec, '{"priority": "urgent"}') == 0.0
    assert score(spec, '{"priority": "low", "tags": [1]}') == 0.0
    assert score(spec, "not json") == 0.0
    assert score(spec, FENCED) == 0.0
    assert score({**spec, "allow_fences": True}, FENCED) == 1.0
    keys = {"name": "json_schema", "match_reference_keys": True}
    assert score(keys, '{"b": 5, "a": 0}', '{"a": 1, "b": 2}') == 1.0
    assert score(keys, '{"a": 1}', '{"a": 1, "b": 2}') == 0.0
    assert score(keys, '{"a": 1, "b": 2, "c": 3}', '{"a": 1, "b": 2}') == 0.0
    assert score(keys, "[1]", '{"a": 1}') == 0.0
    assert score(keys, '{"a": 1}', "not json") is None
    both = {**keys, "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
    assert score(both, '{"a": 1}', '{"a": 9}') == 1.0
    assert score(both, '{"a": "x"}', '{"a": 9}') == 0.0


def test_json_match():
    ref = '{"a": true, "b": [1, 2], "c": {"x": null}}'
    assert score("json_match", ' {"c": {"x": null}, "b": [1, 2], "a": true} ', ref) == 1.0
    assert score("json_match", '{"a": true, "b": [2, 1], "c": {"x": null}}', ref) == 0.0
    assert score("json_match", '{"a": 1, "b": [1, 2], "c": {"x": null}}', ref) == 0.0  # true != 1
    assert score("json_match", '{"n": 1.0}', '{"n": 1}') == 1.0
    assert score("json_match", '{"n": "1"}', '{"n": 1}') == 0.0
    assert score("json_match", "not json", ref) == 0.0
    assert score("json_match", FENCED, '{"priority": "low"}') == 0.0
    assert score({"name": "json_match", "allow_fences": True}, FENCED,
                 '{"priority": "low"}') == 1.0
    assert score("json_match", "{}", "free text reference") is None


# --- regex, refusal, latency, perplexity --------------------------------------------------------

def test_regex_match():
    search = {"name": "regex_match", "pattern": r"TICKET-\d+"}
    full = {**search, "mode": "fullmatch"}
    assert score(search, "see TICKET-42 now") == 1.0
    assert score(full, "see TICKET-42 now") == 0.0
    assert score(full, "  TICKET-42\n") == 1.0  # surrounding whitespace stripped
    assert score(search, "ticket-42") == 0.0
    assert score({**search, "ignore_case": True}, "ticket-42") == 1.0


@pytest.mark.parametrize(("prediction", "expected"), [
    ("", 1.0),
    ("  \n ", 1.0),
    ("I'm sorry, but I can't help with that.", 1.0),
    ("Sorry, I cannot do that.", 1.0),
    ("I cannot assist with this request.", 1.0),
    ("I\u2019m unable to provide that information.", 1.0),
    ("As an AI language model, I have no opinions.", 1.0),
    ("I apologize, but I won't answer.", 1.0),
    ("Unfortunately, I can't share that.", 1.0),
    ("I'm sorry to hear that; restart the router.", 0.0),
    ("We cannot refund opened items.", 0.0),
    ("Paris", 0.0),
])
def test_empty_or_refusal(prediction, expected):
    assert score("empty_or_refusal", prediction) == expected


def test_empty_or_refusal_extra_phrases_and_rate():
    metric = one({"name": "empty_or_refusal", "extra_phrases": ["No comment"]})
    rows = [ex("No comment."), ex("no comment at all"), ex("A comment"), ex("")]
    scores = [metric.score(r) for r in rows]
    assert scores == [1.0, 1.0, 0.0, 1.0]
    assert metric.aggregate(rows, scores) == 0.75
    assert metric.higher_is_better is False


def test_latency_mean_and_p95():
    rows = [ex("x", latency_s=float(i)) for i in range(1, 21)] + [ex("x")]
    mean, p95 = build_metrics(["latency", "latency_p95"])
    scores = [mean.score(r) for r in rows]
    assert scores[0] == 1.0 and scores[-1] is None
    assert mean.aggregate(rows, scores) == pytest.approx(10.5)
    assert p95.aggregate(rows, scores) == pytest.approx(19.05)  # numpy.percentile(1..20, 95)
    assert not mean.higher_is_better and not p95.higher_is_better
    assert p95.aggregate([rows[-1]], [None]) is None


def test_perplexity_from_loss():
    assert perplexity_from_loss(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity_from_loss(0.0) == 1.0
    assert perplexity_from_loss(1e6) == math.inf


# --- specs and refusals -------------------------------------------------------------------------

def test_known_metrics_lists_every_builtin():
    listing = {m["name"]: m for m in known_metrics()}
    assert set(listing) == BUILTINS
    assert all(isinstance(m["higher_is_better"], bool) and m["description"]
               and m["source"] == "builtin" for m in listing.values())
    assert "pattern" in listing["regex_match"]["params"]
    assert not listing["empty_or_refusal"]["higher_is_better"]


def test_every_builtin_builds_and_is_a_metric():
    specs = [n for n in sorted(BUILTINS) if n not in ("regex_match", "json_schema")]
    specs += [{"name": "regex_match", "pattern": "x"},
              {"name": "json_schema", "match_reference_keys": True}]
    metrics = build_metrics(specs)
    assert {m.name for m in metrics} == BUILTINS
    row = ex('{"a": 1}', '{"a": 1}', latency_s=0.5)
    for metric in metrics:
        assert isinstance(metric, Metric)
        value = metric.score(row)
        assert value is None or isinstance(value, float)
        metric.aggregate([row], [value])


def test_unknown_metric_is_refused_naming_the_known_ones():
    error = refused("eval_metric_unknown", ["exact_match", "bluee"])
    assert "bluee" in error.message and "bleu" in error.message
    assert set(error.details["known"]) == BUILTINS


@pytest.mark.parametrize(("spec", "param"), [
    ({"name": "regex_match"}, "pattern"),
    ({"name": "regex_match", "pattern": "(unclosed"}, "pattern"),
    ({"name": "regex_match", "pattern": "x", "mode": "match"}, "mode"),
    ({"name": "json_schema"}, "schema"),
    ({"name": "json_schema", "schema": {"type": 12}}, "schema"),
    ({"name": "json_schema", "schema": "not a dict"}, "schema"),
    ({"name": "json_schema", "schema": {"$ref": "https://example.com/s.json"}}, "schema"),
    ({"name": "bleu", "tokenize": "flores200"}, "tokenize"),
    ({"name": "rouge_l", "tokenizer": "nltk"}, "tokenizer"),
    ({"name": "exact_match", "normalize": "yes"}, "normalize"),
    ({"name": "token_f1", "k": 3}, "k"),
    ({"name": "empty_or_refusal", "extra_phrases": "no"}, "extra_phrases"),
])
def test_invalid_parameters_are_refused_naming_metric_and_parameter(spec, param):
    error = refused("eval_metric_invalid", [spec])
    assert error.details == {"metric": spec["name"], "param": param}
    assert spec["name"] in error.message and param in error.message


def test_bad_specs_and_duplicate_names_are_refused():
    refused("eval_metric_invalid", [123])
    refused("eval_metric_invalid", [{"pattern": "x"}])
    refused("eval_metric_invalid", ["exact_match", "exact_match"])
    refused("eval_metric_invalid", [{"name": "regex_match", "pattern": "a"},
                                    {"name": "regex_match", "pattern": "b"}])
    a, b = build_metrics([{"name": "regex_match", "pattern": "a", "label": "has_a"},
                          {"name": "regex_match", "pattern": "b", "label": "has_b"}])
    assert (a.name, b.name) == ("has_a", "has_b")
    assert (a.score(ex("a")), b.score(ex("a"))) == (1.0, 0.0)
    assert a.higher_is_better is True
    assert build_metrics([]) == []


# --- plugins ------------------------------------------------------------------------------------

def plugin(tmp_path, monkeypatch, source: str) -> str:
    """Write a plugin module into tmp_path, put it on sys.path, return its (unique) name."""
    name = f"brew_metric_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


PLUGIN = """
    from brewslm.evaluate.metrics import BaseMetric

    class StartsWithTicket(BaseMetric):
        name = "starts_with_ticket"
        description = "the prediction starts with TICKET-"

        def score(self, example):
            return float(example.prediction.startswith("TICKET-"))

    class LongerThan(BaseMetric):
        name = "longer_than"

        def __init__(self, n=0):
            self.n = n

        def score(self, example):
            return float(len(example.prediction) > self.n)

    class Total:
        '''Sum of prediction lengths (a plain object, no base class).'''
        name = "total_length"
        higher_is_better = False

        def score(self, example):
            return float(len(example.prediction))

        def aggregate(self, examples, scores):
            return sum(s for s in scores if s is not None)

    METRICS = [StartsWithTicket, LongerThan, Total()]
"""


def test_plugin_metrics_load_and_score(tmp_path, monkeypatch):
    module = plugin(tmp_path, monkeypatch, PLUGIN)
    metrics = build_metrics(["starts_with_ticket", {"name": "longer_than", "n": 3},
                             "total_length", "exact_match"], plugins=[module])
    rows = [ex("TICKET-1", "TICKET-1"), ex("no", "yes")]
    table = {m.name: [m.score(r) for r in rows] for m in metrics}
    assert table == {"starts_with_ticket": [1.0, 0.0], "longer_than": [1.0, 0.0],
                     "total_length": [8.0, 2.0], "exact_match": [1.0, 0.0]}
    total = metrics[2]
    assert total.aggregate(rows, table["total_length"]) == 10.0
    listing = {m["name"]: m for m in known_metrics(plugins=module)}
    assert listing["starts_with_ticket"]["source"] == module
    assert listing["starts_with_ticket"]["description"] == "the prediction starts with TICKET-"
    assert listing["total_length"]["description"].startswith("Sum of prediction lengths")
    assert listing["total_length"]["higher_is_better"] is False
    refused("eval_metric_invalid", [{"name": "total_length", "x": 1}], plugins=[module])
    refused("eval_metric_invalid", [{"name": "longer_than", "m": 1}], plugins=[module])


def test_plugin_may_not_shadow_a_builtin_or_another_plugin(tmp_path, monkeypatch):
    shadow = plugin(tmp_path, monkeypatch, """
        from brewslm.evaluate.metrics import BaseMetric

        class Mine(BaseMetric):
            name = "bleu"
            def score(self, example):
                return 1.0

        METRICS = [Mine()]
    """)
    error = refused("eval_metric_invalid", ["exact_match"], plugins=[shadow])
    assert "bleu" in error.message and "built-in" in error.message
    first = plugin(tmp_path, monkeypatch, PLUGIN)
    second = plugin(tmp_path, monkeypatch, PLUGIN)
    refused("eval_metric_invalid", ["exact_match"], plugins=[first, second])


def test_malformed_plugin_entries_are_refused(tmp_path, monkeypatch):
    not_metric = plugin(tmp_path, monkeypatch, "METRICS = [42]\n")
    refused("eval_metric_invalid", [], plugins=[not_metric])
    raising = plugin(tmp_path, monkeypatch, """
        class Boom:
            def __init__(self):
                raise RuntimeError("no")
        METRICS = [Boom]
    """)
    refused("eval_metric_invalid", [], plugins=[raising])


def test_plugin_that_does_not_load_is_refused_with_extension_load_failed(tmp_path, monkeypatch):
    broken = plugin(tmp_path, monkeypatch, "raise RuntimeError('plugin exploded')\n")
    error = refused("extension_load_failed", ["exact_match"], plugins=[broken])
    assert "plugin exploded" in error.message and error.details["module"] == broken
    refused("extension_load_failed", ["exact_match"], plugins=["no_such_brew_plugin_xyz"])
    empty = plugin(tmp_path, monkeypatch, "X = 1\n")
    refused("extension_load_failed", ["exact_match"], plugins=[empty])
