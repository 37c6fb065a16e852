"""The model pages in a browser: preflight (verdict, memory chart and budget), train (the run,
its checkpoints, a loss curve that follows a running run), evaluate (gates, metrics chart,
per-example outputs with the "only where they differ" filter), their empty states, and
preflight and training started from the pages' forms."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from brewslm import artifacts, project
from brewslm.events import query
from brewslm.stages import data
from brewslm.store import session
from brewslm.store.models import StageRun
from brewslm.train import metrics
from brewslm.train.recipe import load_recipe


def latest_result(name: str, stage: str) -> dict:
    return query.runs(project.get(name), stage)[-1]["result"]


def chart_points(page, chart_id: str, trace: int = 0) -> int:
    return page.evaluate(f"document.getElementById('{chart_id}').data[{trace}].x.length")


def test_preflight_shows_the_verdict_blockers_and_memory(page, lifecycle, shot):
    result = latest_result(lifecycle, "preflight")
    page.goto(f"/projects/{lifecycle}/preflight")
    assert page.locator("#verdict").inner_text() == "GO"
    assert page.locator("#no-blockers").is_visible()
    parts = page.locator("#memory tbody tr").evaluate_all("rows => rows.map(r => r.dataset.part)")
    assert parts == list(result["memory"]["breakdown"])
    budget = dict(zip(page.locator("#budget th").all_inner_texts(),
                      page.locator("#budget td").all_inner_texts(), strict=True))
    assert budget["fits"] == "yes" and budget["peak phase"] == result["memory"]["peak_phase"]
    assert page.locator("#checks tbody tr").count() == len(result["checks"])
    expect(page.locator("#memory-chart .plot-container")).to_be_visible()
    assert page.evaluate("document.getElementById('memory-chart').data.length") == len(parts)
    shot(page, "preflight")


def test_train_shows_the_run_checkpoints_and_loss_curve(page, lifecycle, shot):
    info = project.get(lifecycle)
    run = query.runs(info, "train")[-1]
    page.goto(f"/projects/{lifecycle}/train")
    assert page.locator("#run-status").inner_text() == "succeeded"
    assert page.locator("#run-steps").inner_text() == "30 / 30"
    assert page.locator("#run-final-loss").inner_text() == f"{run['result']['final_loss']:.4f}"
    assert page.locator("#run-manifest").inner_text() == run["result"]["manifest_hash"]
    last = page.locator("#checkpoints tbody tr", has_text="last")
    assert last.locator("td").first.inner_text().startswith("checkpoint-30")
    assert page.locator("#runs tbody tr").count() == len(query.runs(info, "train"))
    expect(page.locator("#loss-chart .plot-container")).to_be_visible()
    losses = [r for r in metrics.read(info, run["run_id"]) if "loss" in r]
    assert chart_points(page, "loss-chart") == len(losses)
    assert page.locator("#run-detail").get_attribute("data-live") == "false"
    shot(page, "train")


def test_evaluate_shows_gates_metrics_and_examples(page, lifecycle, shot):
    info = project.get(lifecycle)
    result = latest_result(lifecycle, "evaluate")
    page.goto(f"/projects/{lifecycle}/evaluate")
    assert page.locator("#promotable").inner_text() == "promotable"
    rows = page.locator("#gates tbody tr")
    assert rows.count() == len(result["gates"])
    for row, gate in zip(rows.all(), result["gates"], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[:3] == [gate["id"], gate["metric"],
                             "required" if gate["required"] else "advisory"]
        assert cells[3] == f"{gate['value']:.4g}" and cells[6] == f"{gate['threshold']:.4g}"
        assert cells[7].startswith("pass" if gate["passed"] else "fail")
    assert page.locator("#metrics tbody tr").count() == len(result["comparison"])
    expect(page.locator("#metrics-chart .plot-container")).to_be_visible()
    assert page.evaluate("document.getElementById('metrics-chart').data.length") \
        == 2 * len(result["metrics"]["candidate"])
    assert page.locator("#examples tbody tr").count() == min(50, result["rows"])
    shot(page, "evaluate")

    report = artifacts.get(info, result["report_id"]).path / "examples.jsonl"
    examples = [json.loads(line) for line in report.read_text().splitlines()]
    differing = sum(e["base"]["prediction"].strip() != e["candidate"]["prediction"].strip()
                    for e in examples)
    page.check("#examples-filter input[name=differ]")
    page.wait_for_url("**/evaluate?differ=true")
    shown = page.locator("#examples tbody tr")
    assert shown.count() == min(50, differing)
    assert set(shown.evaluate_all("rows => rows.map(r => r.dataset.same)")) <= {"false"}


def _running_train_run(info) -> str:
    """A training run as another process would leave it mid-way: running, two trace lines."""
    run_id = "run-uilive0000000001"
    recipe = {**load_recipe("lora"), "max_steps": 3}
    with session() as s:
        s.add(StageRun(run_id=run_id, project_id=info.id, stage="train", status="running",
                       parameters={"recipe": recipe, "recipe_name": "lora", "backend": "hf"},
                       inputs={}, outputs={}, result={}))
    metrics.record(info, run_id, {"step": 1, "epoch": 0.1, "loss": 2.5, "learning_rate": 1e-4})
    return run_id


def test_the_loss_curve_follows_a_running_run(page):
    info = project.create("ui-live", base_model="builtin:tiny")
    run_id = _running_train_run(info)
    page.goto(f"/projects/ui-live/train?run={run_id}")
    assert page.locator("#run-status").inner_text() == "running"
    assert page.locator("#run-detail").get_attribute("data-live") == "true"
    expect(page.locator("#loss-chart .plot-container")).to_be_visible()
    assert chart_points(page, "loss-chart") == 1
    for step, loss in ((2, 2.1), (3, 1.8)):
        metrics.record(info, run_id, {"step": step, "epoch": step / 10, "loss": loss,
                                      "learning_rate": 1e-4})
    page.wait_for_function("document.getElementById('loss-chart').data[0].x.length === 3",
                           timeout=10_000)
    assert page.evaluate("document.getElementById('loss-chart').data[0].y") == [2.5, 2.1, 1.8]
    assert page.locator("#run-steps").inner_text() == "3 / 3"
    with session() as s:
        row = s.get(StageRun, run_id)
        row.status, row.result = "succeeded", {"steps": 3, "final_loss": 1.8}
    expect(page.locator("#run-ended")).to_be_visible(timeout=10_000)
    assert page.locator("#run-status").inner_text() == "succeeded"
    assert page.locator("#run-detail").get_attribute("data-live") == "false"


def test_empty_pages_then_preflight_and_training_from_the_forms(page, lifecycle, rows_file):
    info = project.create("ui-forms", base_model="builtin:tiny")
    for stage in ("preflight", "train", "evaluate"):
        page.goto(f"/projects/ui-forms/{stage}")
        expect(page.locator("#empty-state")).to_be_visible()
    data.ingest(info, str(rows_file))
    data.map_rows(info)
    assert data.prepare(info).status == "succeeded"

    page.goto("/projects/ui-forms/preflight")
    page.click("#run-preflight")
    expect(page.locator("#verdict")).to_have_text("GO", timeout=120_000)
    assert query.runs(info, "preflight")[-1]["result"]["verdict"] == "GO"

    page.goto("/projects/ui-forms/train")
    page.fill("#train-form input[name='set:max_steps']", "12")
    page.select_option("#train-form select[name=backend]", "simulate")
    page.click("#start-training")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    expect(page.locator("#run-steps")).to_have_text("12 / 12")
    run = query.runs(info, "train")[-1]
    assert run["parameters"]["recipe"]["max_steps"] == 12
    assert run["parameters"]["backend"] == "simulate" and run["result"]["simulated"]
    expect(page.locator("#loss-chart .plot-container")).to_be_visible()
