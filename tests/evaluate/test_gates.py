"""Gates as arithmetic: absolute, relative to the base (in the metric's better direction),
slice regressions, required vs advisory, and missing evidence."""

from __future__ import annotations

from brewslm.evaluate.gates import decide

HIGHER = {"exact_match": True, "eval_loss": False}


def run(gates, base, candidate, slices=None):
    return decide(gates, base=base, candidate=candidate, slices=slices or {},
                  higher_is_better=HIGHER)


def test_absolute_gates():
    out = run([{"id": "floor", "metric": "exact_match", "gte": 0.5, "required": True},
               {"id": "ceiling", "metric": "eval_loss", "lte": 1.0, "required": True}],
              base={}, candidate={"exact_match": 0.5, "eval_loss": 1.2})
    assert [g["passed"] for g in out["gates"]] == [True, False]
    assert out["promotable"] is False and out["required_failed"] == ["ceiling"]
    assert out["gates"][1]["evidence"] == "candidate 1.2000 <= 1.0"


def test_relative_gates_follow_the_better_direction():
    gates = [{"id": "em", "metric": "exact_match", "relative": 0.05, "required": True},
             {"id": "loss", "metric": "eval_loss", "relative": 0.0, "required": True}]
    better = run(gates, base={"exact_match": 0.2, "eval_loss": 2.0},
                 candidate={"exact_match": 0.3, "eval_loss": 1.5})
    assert better["promotable"] and [g["delta"] for g in better["gates"]] == [0.1, 0.5]
    same = run(gates, base={"exact_match": 0.2, "eval_loss": 2.0},
               candidate={"exact_match": 0.22, "eval_loss": 2.0})
    assert [g["passed"] for g in same["gates"]] == [False, False]  # equal is not better


def test_slice_regression_and_advisory_gates():
    slices = {"base": {"billing": {"exact_match": 0.8}, "shipping": {"exact_match": 0.5}},
              "candidate": {"billing": {"exact_match": 0.6}, "shipping": {"exact_match": 0.9}}}
    gate = {"id": "slices", "metric": "exact_match", "max_slice_regression": 0.1,
            "required": False}
    out = run([gate], base={"exact_match": 0.6}, candidate={"exact_match": 0.7}, slices=slices)
    verdict = out["gates"][0]
    assert verdict["passed"] is False and verdict["slice_regressions"] == {
        "billing": 0.2, "shipping": -0.4}
    assert out["promotable"] is True  # advisory: reported, not deciding
    none = run([gate], base={}, candidate={}, slices={})
    assert none["gates"][0]["passed"] and none["gates"][0]["skipped"]


def test_missing_evidence_fails():
    out = run([{"id": "em", "metric": "exact_match", "gte": 0.0, "required": True}],
              base={}, candidate={"exact_match": None})
    assert out["promotable"] is False
