"""Our exact_match against lm-evaluation-harness's, on the same predictions (issue 6).

Runs benchmarks/lm_eval_crosscheck.py's run_crosscheck(): builtin:tiny pretrained for 40 steps,
loaded as lm-eval's `hf` model, a custom local generate_until task in three metric settings,
scored by lm-eval (its logged samples) and by build_metrics(["exact_match"]). The references
are built from lm-eval's own completions, one kind of difference per category, so every count
below follows from the construction (3 samples per category, 11 categories), not from what
the model happens to say. Offline, ~20 s on 2 cores. Skipped without lm-eval (the eval-peer
extra; dev includes it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_eval_crosscheck.py"
N = 33  # 11 categories x 3


def _load_script():
    name = "brewslm_bench_lm_eval_crosscheck"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def xc():
    return _load_script()


@pytest.fixture(scope="module")
def figures(xc, models_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("lm-eval-crosscheck")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BREWSLM_HOME", str(work / "home"))
        mp.setenv("BREWSLM_MODELS_DIR", str(models_dir))
        mp.setenv("HF_HOME", str(work / "hf-home"))
        for key, value in xc.OFFLINE_ENV.items():
            mp.setenv(key, value)
        from brewslm.basemodels.pretrain import pretrain_builtin_tiny

        path = pretrain_builtin_tiny(steps=xc.DEFAULT_STEPS)
        return xc.run_crosscheck(path, work / "run")


def test_lm_eval_scored_the_predictions_the_references_were_built_from(figures):
    assert figures["samples"] == N
    for setting in figures["settings"].values():
        assert setting["samples"] == N
        assert setting["predictions_as_first_pass"] == N
        assert setting["unexpected"] == []


def test_raw_setting_is_plain_equality_on_both_sides(figures):
    raw = figures["settings"]["raw"]
    assert raw["options"] == {}
    assert raw["lm_eval_agrees_with_plain_equality"] == N
    assert raw["ours_unnormalized_agrees_with_lm_eval"] == N
    assert raw["lm_eval_exact_match"] == pytest.approx(3 / N)  # the identical category only
    assert raw["ours_unnormalized_exact_match"] == pytest.approx(3 / N)
    assert raw["plain_equality_mean"] == pytest.approx(3 / N)


def test_lm_eval_computes_its_documented_rule(figures):
    for setting in figures["settings"].values():
        assert setting["lm_eval_agrees_with_its_documented_rule"] == N
        assert setting["lm_eval_exact_match"] == pytest.approx(setting["lm_eval_mean_of_samples"])


@pytest.mark.parametrize(
    ("setting", "agree", "lm_eval_hits", "disagreeing_categories"),
    [
        # ours normalizes, raw lm-eval does not: case, trailing punctuation, quotes, whitespace
        # and full-width differences all score 1 for us and 0 for lm-eval
        ("raw", 12, 3, {"case", "trailing_punct", "surrounding_quotes_ws", "unicode_quotes",
                        "inner_space_run", "inner_tab", "fullwidth"}),
        # as close as lm-eval's options go: only NFKC and a tab between words differ
        ("closest", 27, 18, {"inner_tab", "fullwidth"}),
        # lm-eval's usual ignore_case + ignore_punctuation
        ("stock", 12, 15, {"surrounding_quotes_ws", "unicode_quotes", "inner_space_run",
                           "inner_tab", "fullwidth", "inner_apostrophe", "leading_minus"}),
    ],
)
def test_per_sample_agreement(figures, setting, agree, lm_eval_hits, disagreeing_categories):
    r = figures["settings"][setting]
    assert r["agree"] == agree
    assert r["disagree"] == N - agree
    assert {d["category"] for d in r["disagreements"]} == disagreeing_categories
    for cat, counts in r["by_category"].items():
        assert counts["n"] == 3
        assert counts["agree"] == (0 if cat in disagreeing_categories else 3)
    assert r["lm_eval_exact_match"] == pytest.approx(lm_eval_hits / N)
    assert r["ours_exact_match"] == pytest.approx(24 / N)  # 8 of 11 categories match for us
