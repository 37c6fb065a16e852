"""Training traces: stored per (run, step, name) in the metrics table, read back, and plotted.

    from brewslm.train import metrics
    metrics.record(project, run_id, {"step": 10, "epoch": 0.4, "loss": 2.1, "learning_rate": 1e-3})
    rows = metrics.read(project, run_id)          # [{"step": 10, "epoch": .., "loss": ..}, ...]
    print(metrics.terminal_plot(rows))            # loss and eval loss against step (plotext)
    metrics.write_png(rows, "loss.png"); metrics.write_html(rows, "loss.html", title="run-..")

The trace names the train stage writes: loss, learning_rate, grad_norm, tokens_per_second,
tokens (per logging window) and eval_loss. The PNG is drawn with matplotlib's Agg renderer
(no display needed); the HTML page inlines it with a table of every logged step.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select

from brewslm.project import ProjectInfo
from brewslm.store import session
from brewslm.store.models import Metric

TRACE_NAMES = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "tokens")


def record(project: ProjectInfo, run_id: str, entry: dict[str, Any]) -> None:
    """Store one log line: every numeric TRACE_NAMES value at entry["step"]."""
    values = {k: float(v) for k, v in entry.items()
              if k in TRACE_NAMES and isinstance(v, int | float)}
    if not values:
        return
    with session() as s:
        for name, value in values.items():
            s.add(Metric(project_id=project.id, run_id=run_id, step=int(entry["step"]),
                         epoch=entry.get("epoch"), name=name, value=value))


def read(project: ProjectInfo, run_id: str) -> list[dict[str, Any]]:
    """The run's trace as one dict per (step, kind): training lines and eval lines apart."""
    with session() as s:
        rows = s.execute(select(Metric.step, Metric.epoch, Metric.name, Metric.value)
                         .where(Metric.project_id == project.id, Metric.run_id == run_id)
                         .order_by(Metric.step, Metric.id)).all()
    lines: dict[tuple[int, bool], dict[str, Any]] = defaultdict(dict)
    for step, epoch, name, value in rows:
        line = lines[(step, name == "eval_loss")]
        line.update(step=step, epoch=epoch)
        line[name] = value
    return [lines[key] for key in sorted(lines)]


def series(rows: list[dict[str, Any]], name: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[name]) for r in rows if name in r]
    return [p[0] for p in points], [p[1] for p in points]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last loss and eval loss, and the mean tokens/s."""
    out: dict[str, Any] = {}
    for name in ("loss", "eval_loss"):
        _, values = series(rows, name)
        if values:
            out[f"first_{name}"], out[f"last_{name}"] = round(values[0], 4), round(values[-1], 4)
    _, speeds = series(rows, "tokens_per_second")
    if speeds:
        out["mean_tokens_per_second"] = round(sum(speeds) / len(speeds), 1)
    return out


# --- plots -------------------------------------------------------------------------------------

def terminal_plot(rows: list[dict[str, Any]], *, width: int = 72, height: int = 16,
                  title: str = "loss") -> str:
    """Loss (and eval loss) against step as text, for the terminal."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    for name, marker in (("loss", "braille"), ("eval_loss", "dot")):
        steps, values = series(rows, name)
        if steps:
            plt.plot(steps, values, label=name, marker=marker)
    plt.title(title)
    plt.xlabel("step")
    text = plt.uncolorize(plt.build())  # plain text: it also goes into JSON and logs
    plt.clear_figure()
    return "\n".join(line.rstrip() for line in text.splitlines())


def png(rows: list[dict[str, Any]], title: str = "Training loss") -> bytes:
    """Loss and eval loss (left) and learning rate (right) against step, as PNG bytes."""
    import matplotlib
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        style.use("default")
        figure = Figure(figsize=(9, 4), dpi=100)
        FigureCanvasAgg(figure)
        loss_axes, lr_axes = figure.subplots(1, 2)
        for name, fmt in (("loss", "-"), ("eval_loss", "o-")):
            steps, values = series(rows, name)
            if steps:
                loss_axes.plot(steps, values, fmt, label=name)
        loss_axes.set_title(title)
        loss_axes.set_xlabel("optimizer step")
        loss_axes.legend()
        steps, values = series(rows, "learning_rate")
        lr_axes.plot(steps, values, color="#55A868")
        lr_axes.set_title("learning rate")
        lr_axes.set_xlabel("optimizer step")
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def write_png(rows: list[dict[str, Any]], path: str | Path, title: str = "Training loss") -> Path:
    path = Path(path)
    path.write_bytes(png(rows, title))
    return path


def write_html(rows: list[dict[str, Any]], path: str | Path, title: str = "Training loss") -> Path:
    """A self-contained page: the PNG inlined and a table of every logged line."""
    path = Path(path)
    image = base64.b64encode(png(rows, title)).decode("ascii")
    columns = ["step", "epoch", *[n for n in TRACE_NAMES if any(n in r for r in rows)]]
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    path.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<img alt=\"loss curve\" src=\"data:image/png;base64,{image}\">\n"
        f"<table><tr>{head}</tr>{body}</table>\n</body></html>\n", encoding="utf-8")
    return path


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))
