"""length_stats (nearest-rank percentiles), histograms, and their terminal, PNG, HTML forms."""

from __future__ import annotations

import base64
import random

import matplotlib
import pytest

from brewslm.prepare import (
    histogram,
    histogram_png,
    length_stats,
    render_terminal,
    write_histogram_html,
    write_histogram_png,
)
from brewslm.prepare.stats import percentile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sample_hist():
    rng = random.Random(0)
    return histogram({"train": [rng.randint(5, 300) for _ in range(900)],
                      "eval": [rng.randint(5, 320) for _ in range(100)]}, bins=20)


# --- length_stats ------------------------------------------------------------------------------

def test_nearest_rank_percentiles_on_known_lists():
    assert length_stats(list(range(1, 11))) == {
        "count": 10, "mean": 5.5, "p50": 5, "p95": 10, "max": 10, "min": 1}
    hundred = length_stats(list(range(100, 0, -1)))  # order does not matter
    assert (hundred["p50"], hundred["p95"], hundred["min"], hundred["max"]) == (50, 95, 1, 100)
    assert length_stats([1, 2, 3, 4])["p50"] == 2  # a value of the list, never 2.5
    assert length_stats([7]) == {"count": 1, "mean": 7.0, "p50": 7, "p95": 7, "max": 7, "min": 7}
    assert length_stats([3, 1, 2, 100])["p95"] == 100  # rank ceil(3.8) = 4


def test_percentile_bounds():
    assert percentile([4, 8, 15], 0) == 4 and percentile([4, 8, 15], 100) == 15
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_empty_lengths():
    assert length_stats([]) == {"count": 0, "mean": None, "p50": None, "p95": None,
                                "max": None, "min": None}


# --- histogram ---------------------------------------------------------------------------------

def test_histogram_shares_integer_bins_across_splits():
    hist = histogram({"train": list(range(10)), "eval": [0, 9]}, bins=5)
    assert hist == {"edges": [0, 2, 4, 6, 8, 10],
                    "counts": {"train": [2, 2, 2, 2, 2], "eval": [1, 0, 0, 0, 1]},
                    "totals": {"train": 10, "eval": 2}}


def test_histogram_edges_cover_the_range_and_counts_add_up():
    hist = histogram({"train": [1, 100, 50, 50], "eval": [99]}, bins=20)
    assert hist["edges"][0] == 1 and hist["edges"][-1] > 100 and len(hist["edges"]) == 21
    assert hist["counts"]["train"][-1] == 1 and hist["counts"]["eval"][-1] == 1
    assert {s: sum(c) for s, c in hist["counts"].items()} == hist["totals"]


def test_histogram_with_fewer_values_than_bins_and_with_none():
    assert histogram({"train": [3, 3, 4], "eval": []}) == {
        "edges": [3, 4, 5], "counts": {"train": [2, 1], "eval": [0, 0]},
        "totals": {"train": 3, "eval": 0}}
    assert histogram({"train": [], "eval": []}) == {
        "edges": [], "counts": {"train": [], "eval": []}, "totals": {"train": 0, "eval": 0}}
    with pytest.raises(ValueError):
        histogram({"train": [1]}, bins=0)


# --- terminal ----------------------------------------------------------------------------------

def test_render_terminal_puts_splits_side_by_side():
    hist = histogram({"train": list(range(10)), "eval": [0, 9]}, bins=5)
    lines = render_terminal(hist, width=8).splitlines()
    assert lines[0] == "tokens │ train (10 rows) │ eval (2 rows)"
    assert len(lines) == 1 + 5
    assert lines[1] == "   0–1 │ ████████ 2      │ ████████ 1"
    assert lines[2] == "   2–3 │ ████████ 2      │          0"
    assert all(line.count("│") == 2 for line in lines)


def test_render_terminal_draws_partial_cells():
    hist = histogram({"train": [1] * 8 + [2] * 3}, bins=2)
    lines = render_terminal(hist, width=2).splitlines()
    assert lines[1].endswith("██ 8") and "▊" in lines[2]  # 3/8 of 2 cells = 6 eighths


def test_render_terminal_without_rows():
    assert render_terminal(histogram({"train": [], "eval": []})) == \
        "no token lengths (train: 0 rows, eval: 0 rows)"


# --- PNG and HTML ------------------------------------------------------------------------------

def test_png_is_byte_identical_and_carries_no_software_stamp(tmp_path):
    hist = sample_hist()
    first = write_histogram_png(hist, tmp_path / "a.png").read_bytes()
    second = write_histogram_png(hist, tmp_path / "b.png").read_bytes()
    assert first == second and first.startswith(PNG_SIGNATURE)
    assert b"Software" not in first and b"matplotlib" not in first
    assert histogram_png(histogram({"train": [1, 2], "eval": [3]})) != first


def test_png_ignores_and_keeps_the_callers_matplotlib_settings():
    hist = sample_hist()
    plain = histogram_png(hist)
    with matplotlib.rc_context({"font.size": 30, "axes.facecolor": "black"}):
        assert histogram_png(hist) == plain
        assert matplotlib.rcParams["font.size"] == 30


def test_png_of_an_empty_histogram(tmp_path):
    data = write_histogram_png(histogram({"train": [], "eval": []}), tmp_path / "e.png")
    assert data.read_bytes().startswith(PNG_SIGNATURE)


def test_html_embeds_the_png_and_the_counts(tmp_path):
    hist = histogram({"train": list(range(10)), "eval": [0, 9]}, bins=5)
    page = write_histogram_html(hist, tmp_path / "h.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," + base64.b64encode(histogram_png(hist)).decode() in page
    assert "<td>0–1</td><td>2</td><td>1</td>" in page
    assert "src=\"http" not in page and "href=" not in page and "<script" not in page
    again = write_histogram_html(hist, tmp_path / "h2.html").read_text(encoding="utf-8")
    assert again == page
