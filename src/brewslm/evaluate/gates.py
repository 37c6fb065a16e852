"""Gates: the pack's rules applied to base and candidate aggregates, and the decision.

    from brewslm.evaluate.gates import decide
    decision = decide(pack["gates"], base=aggregates_base, candidate=aggregates_cand,
                      slices={"base": {...}, "candidate": {...}}, higher_is_better={...})
    decision["promotable"], decision["gates"]   # each: id, metric, passed, value, threshold...

A candidate is promotable when every required gate passes. A gate whose metric has no value
(nothing to score) fails: a decision is never made on missing evidence. The one exception is
the slice gate when the rows carry no slice: it passes, marked `skipped`, and says so. Each
gate's verdict carries its evidence: the candidate's value, the base's, the threshold, the test.
"""

from __future__ import annotations

from typing import Any


def decide(gates: list[dict[str, Any]], *, base: dict[str, float | None],
           candidate: dict[str, float | None], slices: dict[str, dict[str, dict[str, float]]],
           higher_is_better: dict[str, bool]) -> dict[str, Any]:
    verdicts = [judge(g, base, candidate, slices, higher_is_better[g["metric"]]) for g in gates]
    required = [v for v in verdicts if v["required"]]
    return {"promotable": all(v["passed"] for v in required), "gates": verdicts,
            "required_failed": [v["id"] for v in required if not v["passed"]]}


def judge(gate: dict[str, Any], base: dict[str, float | None],
          candidate: dict[str, float | None], slices: dict[str, dict[str, dict[str, float]]],
          higher: bool) -> dict[str, Any]:
    metric = gate["metric"]
    value, base_value = candidate.get(metric), base.get(metric)
    out = {"id": gate["id"], "metric": metric, "required": bool(gate.get("required", True)),
           "value": value, "base_value": base_value, "higher_is_better": higher}
    if "gte" in gate or "lte" in gate:
        test = "gte" if "gte" in gate else "lte"
        threshold = gate[test]
        passed = value is not None and (value >= threshold if test == "gte"
                                        else value <= threshold)
        return {**out, "test": test, "threshold": threshold, "passed": passed,
                "evidence": f"candidate {_fmt(value)} {'>=' if test == 'gte' else '<='} "
                            f"{threshold}"}
    if "relative" in gate:
        return {**out, **_relative(gate["relative"], value, base_value, higher)}
    return {**out, **_slices(gate["max_slice_regression"], metric, slices, higher)}


def improvement(value: float | None, base_value: float | None, higher: bool) -> float | None:
    """How much better the candidate is, in the metric's better direction."""
    if value is None or base_value is None:
        return None
    return value - base_value if higher else base_value - value


def _relative(margin: float, value: float | None, base_value: float | None,
              higher: bool) -> dict[str, Any]:
    gain = improvement(value, base_value, higher)
    passed = gain is not None and gain >= margin and gain > 0
    return {"test": "relative", "threshold": margin, "delta": _round(gain), "passed": passed,
            "evidence": f"candidate {_fmt(value)} vs base {_fmt(base_value)}: "
                        f"{'better' if gain and gain > 0 else 'not better'} by {_fmt(gain)} "
                        f"(needs at least {margin} and more than 0)"}


def _slices(max_drop: float, metric: str, slices: dict[str, dict[str, dict[str, float]]],
            higher: bool) -> dict[str, Any]:
    base, cand = slices.get("base", {}), slices.get("candidate", {})
    drops = {}
    for name in sorted(set(base) & set(cand)):
        gain = improvement(cand[name].get(metric), base[name].get(metric), higher)
        if gain is not None:
            drops[name] = _round(-gain)
    worst = max(drops.items(), key=lambda kv: kv[1], default=(None, None))
    passed = all(d <= max_drop for d in drops.values())
    evidence = (f"worst slice {worst[0]!r} regressed by {_fmt(worst[1])} (allowed {max_drop})"
                if drops else "no slices to compare: nothing can regress (set slice_by in the "
                "pack to compare slices)")
    return {"test": "max_slice_regression", "threshold": max_drop, "slice_regressions": drops,
            "passed": passed, "evidence": evidence, "skipped": not drops}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.4f}"
