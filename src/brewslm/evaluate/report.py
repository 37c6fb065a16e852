"""The comparison report: per-example diffs (worst regressions first), failure clusters, and a
self-contained HTML page.

    from brewslm.evaluate.report import clusters, regressions, write_html
    worst = regressions(examples, "exact_match")     # candidate minus base, ascending
    groups = clusters(examples, "exact_match")       # wrong predictions by signature
    write_html(result, "report.html")

A failure cluster groups the candidate's wrong answers (primary metric below 1) by a simple
signature: the error type (empty, refusal, invalid_json, wrong_json_value, partial, wrong), the
reference's length bucket (short < 8 words, medium < 32, long) and the slice. Each cluster has
its count, share of the wrong answers and up to three exemplars.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

EXEMPLARS = 3


def regressions(examples: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Examples ordered by the candidate's change on `metric`, worst first."""
    def delta(ex: dict[str, Any]) -> float:
        cand, base = ex["candidate"]["scores"].get(metric), ex["base"]["scores"].get(metric)
        return (cand or 0.0) - (base or 0.0)

    return sorted(examples, key=lambda ex: (delta(ex), ex["row_id"]))


def error_type(ex: dict[str, Any]) -> str:
    prediction, reference = ex["candidate"]["prediction"], ex["reference"]
    scores = ex["candidate"]["scores"]
    if not prediction.strip():
        return "empty"
    if scores.get("empty_or_refusal") == 1.0:
        return "refusal"
    if _is_json(reference):
        if not _is_json(prediction):
            return "invalid_json"
        return "wrong_json_value"
    if (scores.get("token_f1") or 0) >= 0.5:
        return "partial"
    return "wrong"


def length_bucket(text: str) -> str:
    words = len(text.split())
    return "short" if words < 8 else "medium" if words < 32 else "long"


def clusters(examples: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    wrong = [ex for ex in examples if (ex["candidate"]["scores"].get(metric) or 0) < 1.0]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for ex in wrong:
        key = (error_type(ex), length_bucket(ex["reference"]), ex.get("slice") or "-")
        groups[key].append(ex)
    out = [{"error_type": k[0], "length": k[1], "slice": k[2], "count": len(v),
            "share": round(len(v) / len(wrong), 4),
            "exemplars": [{"row_id": ex["row_id"], "reference": ex["reference"],
                           "prediction": ex["candidate"]["prediction"]}
                          for ex in v[:EXEMPLARS]]}
           for k, v in groups.items()]
    return sorted(out, key=lambda c: (-c["count"], c["error_type"], c["length"], c["slice"]))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# --- HTML --------------------------------------------------------------------------------------

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:3px 8px;vertical-align:top}th{background:#f4f4f4}.pass{color:#1a7f37}"
         ".fail{color:#cf222e}.better{background:#e6ffec}.worse{background:#ffebe9}"
         "code{white-space:pre-wrap;font-size:90%}")


def write_html(result: dict[str, Any], examples: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
             f"Evaluation {html.escape(result['run_id'])}</title><style>{STYLE}</style>"
             "</head><body>",
             _header(result), _metrics_table(result), _gates_table(result),
             _clusters_table(result), _examples_table(result, examples), "</body></html>\n"]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _header(result: dict[str, Any]) -> str:
    verdict = "PROMOTABLE" if result["promotable"] else "NOT PROMOTABLE"
    css = "pass" if result["promotable"] else "fail"
    return (f"<h1>Evaluation: <span class=\"{css}\">{verdict}</span></h1>"
            f"<p>pack <b>{html.escape(result['pack']['name'])}</b> v{result['pack']['version']}"
            f" &middot; {result['rows']} eval rows &middot; base "
            f"<code>{html.escape(str(result['base_model']))}</code> &middot; candidate "
            f"<code>{html.escape(result['candidate_id'][:16])}</code> (training run "
            f"{html.escape(str(result.get('candidate_run')))})</p>")


def _metrics_table(result: dict[str, Any]) -> str:
    rows = []
    for name, m in result["comparison"].items():
        css = "better" if m["improved"] else "worse" if m["improved"] is False else ""
        rows.append(f"<tr class=\"{css}\"><td>{html.escape(name)}</td><td>{_n(m['base'])}</td>"
                    f"<td>{_n(m['candidate'])}</td><td>{_n(m['delta'])}</td>"
                    f"<td>{'higher' if m['higher_is_better'] else 'lower'}</td></tr>")
    return ("<h2>Metrics</h2><table><tr><th>metric</th><th>base</th><th>candidate</th>"
            "<th>delta</th><th>better when</th></tr>" + "".join(rows) + "</table>")


def _gates_table(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(g['id'])}</td><td>{html.escape(g['metric'])}</td>"
        f"<td>{'required' if g['required'] else 'advisory'}</td>"
        f"<td class=\"{'pass' if g['passed'] else 'fail'}\">{'pass' if g['passed'] else 'FAIL'}"
        f"</td><td>{html.escape(g['evidence'])}</td></tr>" for g in result["gates"])
    return ("<h2>Gates</h2><table><tr><th>gate</th><th>metric</th><th></th><th>verdict</th>"
            "<th>evidence</th></tr>" + rows + "</table>")


def _clusters_table(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c['error_type'])}</td><td>{c['length']}</td>"
        f"<td>{html.escape(c['slice'])}</td><td>{c['count']}</td><td>{c['share']:.0%}</td>"
        f"<td>{'<br>'.join(html.escape(e['prediction'][:80]) for e in c['exemplars'])}</td>"
        "</tr>" for c in result["failure_clusters"])
    return ("<h2>Where the candidate fails</h2><table><tr><th>error</th><th>length</th>"
            "<th>slice</th><th>count</th><th>share</th><th>exemplar predictions</th></tr>"
            + rows + "</table>")


def _examples_table(result: dict[str, Any], examples: list[dict[str, Any]]) -> str:
    metric = result["primary_metric"]
    rows = []
    for ex in regressions(examples, metric):
        b, c = ex["base"]["scores"].get(metric), ex["candidate"]["scores"].get(metric)
        css = "worse" if (c or 0) < (b or 0) else "better" if (c or 0) > (b or 0) else ""
        rows.append(f"<tr class=\"{css}\"><td>{html.escape(ex['row_id'])}</td>"
                    f"<td><code>{html.escape(ex['reference'])}</code></td>"
                    f"<td><code>{html.escape(ex['base']['prediction'])}</code><br>{_n(b)}</td>"
                    f"<td><code>{html.escape(ex['candidate']['prediction'])}</code><br>{_n(c)}"
                    "</td></tr>")
    return (f"<h2>Per example ({html.escape(metric)}; worst regressions first)</h2><table><tr>"
            "<th>row</th><th>reference</th><th>base</th><th>candidate</th></tr>"
            + "".join(rows) + "</table>")


def _n(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if isinstance(x, float) else html.escape(str(x))
