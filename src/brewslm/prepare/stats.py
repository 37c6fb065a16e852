"""Token-length statistics and histograms of the prepared splits (terminal, PNG, HTML).

    length_stats([12, 40, 33])          # {"count", "mean", "p50", "p95", "max", "min"}
    hist = histogram({"train": train_lengths, "eval": eval_lengths}, bins=20)
    print(render_terminal(hist))        # train and eval bars side by side
    write_histogram_png(hist, "token_lengths.png")    # byte-identical for the same hist
    write_histogram_html(hist, "token_lengths.html")  # the PNG inlined as base64

Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the value at
1-based rank ceil(p / 100 x n), always one of the values (no interpolation), so it is exact for
integer lengths and needs no float rounding. Bins are integer ranges [lo, hi) shared by all
splits, so counts compare bin for bin.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

# --- statistics --------------------------------------------------------------------------------


def length_stats(lengths: list[int]) -> dict[str, Any]:
    """count, mean, p50, p95 (nearest rank), max and min; all but count are None when empty."""
    if not lengths:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None, "min": None}
    ordered = sorted(lengths)
    return {"count": len(ordered), "mean": sum(ordered) / len(ordered),
            "p50": percentile(ordered, 50), "p95": percentile(ordered, 95),
            "max": ordered[-1], "min": ordered[0]}


def percentile(ordered: list[int], p: float) -> int:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    if not 0 <= p <= 100:
        raise ValueError(f"p must be in [0, 100], got {p!r}")
    rank = max(1, math.ceil(p / 100 * len(ordered)))  # p = 0 is the minimum
    return ordered[rank - 1]


def histogram(lengths_by_split: dict[str, list[int]], bins: int = 20) -> dict[str, Any]:
    """Counts per split over shared integer bins.

    Returns {"edges": [e0, ..., ek], "counts": {split: [c0, ..., c(k-1)]}, "totals": {split: n}}
    where bin i holds lo <= length < edges[i + 1] - all bins have the same integer width,
    edges[0] is the smallest length and the last bin holds the largest. There are fewer than
    `bins` bins when the lengths span fewer distinct values; none when there are no lengths.
    """
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins!r}")
    every = [n for values in lengths_by_split.values() for n in values]
    totals = {split: len(values) for split, values in lengths_by_split.items()}
    if not every:
        return {"edges": [], "counts": {split: [] for split in lengths_by_split},
                "totals": totals}
    low, high = min(every), max(every)
    width = math.ceil((high - low + 1) / bins)
    count = math.ceil((high - low + 1) / width)
    edges = [low + i * width for i in range(count + 1)]
    counts = {}
    for split, values in lengths_by_split.items():
        row = [0] * count
        for n in values:
            row[(n - low) // width] += 1
        counts[split] = row
    return {"edges": edges, "counts": counts, "totals": totals}


# --- terminal ----------------------------------------------------------------------------------

BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"


def render_terminal(hist: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """The histogram as text: one line per bin, a bar column per split. Each split's bars are
    scaled to its own largest bin, so a small eval split stays readable next to train; the
    counts are printed next to the bars."""
    splits = list(hist["counts"])
    if not hist["edges"]:
        return "no token lengths (" + ", ".join(f"{s}: 0 rows" for s in splits) + ")"
    edges, counts = hist["edges"], hist["counts"]
    labels = [_bin_label(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    label_width = max(len("tokens"), *(len(label) for label in labels))
    digits = {s: max(len(str(c)) for c in counts[s]) for s in splits}
    titles = {s: f"{s} ({hist['totals'][s]} rows)" for s in splits}
    cell = {s: max(width + 1 + digits[s], len(titles[s])) for s in splits}
    lines = ["tokens".rjust(label_width)
             + "".join(f" │ {titles[s]:<{cell[s]}}" for s in splits)]
    for i, label in enumerate(labels):
        bars = (f"{_bar(counts[s][i] / (max(counts[s]) or 1), width)} "
                f"{counts[s][i]:>{digits[s]}}" for s in splits)
        lines.append(label.rjust(label_width)
                     + "".join(f" │ {bar:<{cell[s]}}" for s, bar in zip(splits, bars,
                                                                         strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _bin_label(low: int, high: int) -> str:
    return str(low) if high - low == 1 else f"{low}–{high - 1}"


def _bar(fraction: float, width: int) -> str:
    """A bar of fraction x width cells, drawn in eighths of a cell."""
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_EIGHTHS[part] if part else "")
    return bar.ljust(width)


# --- PNG and HTML ------------------------------------------------------------------------------

COLORS = {"train": "#4C72B0", "eval": "#DD8452"}
OTHER_COLORS = ("#55A868", "#C44E52", "#8172B3", "#937860")


def histogram_png(hist: dict[str, Any], title: str = "Tokens per row") -> bytes:
    """The histogram as PNG bytes: grouped bars of each split's share of its rows per bin.

    Byte-identical for the same hist and matplotlib version: the Agg renderer is used
    directly (no pyplot state, no display), with matplotlib's default style (not the user's
    matplotlibrc), its bundled DejaVu font, a fixed size and dpi, and no "Software" text chunk.
    """
    import matplotlib
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():  # restores the caller's rcParams afterwards
        style.use("default")
        figure = Figure(figsize=(8, 4), dpi=100)
        FigureCanvasAgg(figure)
        _draw(figure.add_subplot(), hist, title)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _draw(axes: Any, hist: dict[str, Any], title: str) -> None:
    splits, edges = list(hist["counts"]), hist["edges"]
    axes.set_title(title)
    axes.set_xlabel("tokens per row")
    axes.set_ylabel("share of the split's rows (%)")
    if not edges:
        axes.text(0.5, 0.5, "no rows", ha="center", va="center", transform=axes.transAxes)
        return
    width = (edges[1] - edges[0]) / (len(splits) + 1)
    for k, split in enumerate(splits):
        total = hist["totals"][split] or 1
        shares = [100 * c / total for c in hist["counts"][split]]
        lefts = [edge + k * width for edge in edges[:-1]]
        color = COLORS.get(split, OTHER_COLORS[k % len(OTHER_COLORS)])
        axes.bar(lefts, shares, width=width, align="edge", color=color,
                 label=f"{split} ({hist['totals'][split]} rows)")
    axes.set_xlim(edges[0], edges[-1])
    axes.legend()


def write_histogram_png(hist: dict[str, Any], path: str | Path,
                        title: str = "Tokens per row") -> Path:
    path = Path(path)
    path.write_bytes(histogram_png(hist, title))
    return path


def write_histogram_html(hist: dict[str, Any], path: str | Path,
                         title: str = "Tokens per row") -> Path:
    """A self-contained HTML page: the PNG inlined as base64 and a table of the counts."""
    path = Path(path)
    image = base64.b64encode(histogram_png(hist, title)).decode("ascii")
    path.write_text(_page(hist, title, image), encoding="utf-8")
    return path


def _page(hist: dict[str, Any], title: str, image: str) -> str:
    splits, edges = list(hist["counts"]), hist["edges"]
    head = "".join(f"<th>{html.escape(s)} ({hist['totals'][s]})</th>" for s in splits)
    rows = "".join(
        f"<tr><td>{_bin_label(edges[i], edges[i + 1])}</td>"
        + "".join(f"<td>{hist['counts'][s][i]}</td>" for s in splits) + "</tr>"
        for i in range(len(edges) - 1))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<img alt=\"{html.escape(title)} histogram\" src=\"data:image/png;base64,{image}\">\n"
        f"<table><tr><th>tokens</th>{head}</tr>{rows}</table>\n</body></html>\n")
