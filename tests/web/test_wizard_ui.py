"""The first-run wizard in a browser: a new project, the bundled ticket sample uploaded through
the file input, ingest, introspection, the mapping preview, then the autopilot for the rest
(30 training steps) until the deployed model answers in the ask box. Each step is asserted by
the values the stages report and screenshotted (test-artifacts/ui/wizard-N-*.png); a reload at
the end lands on the same summary, since the wizard reads its state from the project."""

from __future__ import annotations

from pathlib import Path

from brewslm import project

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "brewslm" / "samples" / "tickets.jsonl"
NAME = "wizard-demo"
JOB_MS = 120_000  # one short stage as a job (a worker child process) on a busy machine
RUN_MS = 600_000  # the autopilot: clean through deploy, 30 steps of the tiny model


def at_step(page, number: int, timeout: int = JOB_MS) -> None:
    page.wait_for_selector(f"#wizard[data-step='{number}']", timeout=timeout)


def cells(page, table: str) -> dict[str, list[str]]:
    """First column -> the other columns' texts, for each body row of a table."""
    rows = {}
    for row in page.locator(f"{table} tbody tr").all():
        texts = [t.strip() for t in row.locator("td").all_inner_texts()]
        rows[texts[0]] = texts[1:]
    return rows


def create_project(page, shot) -> None:
    page.goto("/new")
    shot(page, "wizard-1-project")
    assert page.locator("#wizard-project input[name=base_model]").input_value() == "builtin:tiny"
    page.fill("#wizard-project input[name=name]", NAME)
    page.click("#wizard-project button[type=submit]")
    page.wait_for_url(f"**/projects/{NAME}/wizard")
    at_step(page, 2)
    assert project.get(NAME).base_model == "builtin:tiny"


def upload_and_ingest(page, shot) -> None:
    page.set_input_files("#upload-file", str(SAMPLE))
    shot(page, "wizard-2-data")
    page.click("#upload-form button[type=submit]")
    at_step(page, 3)
    assert page.inner_text("#ingest-counts") == "in 400 · out 399 · rejected 1"
    assert "malformed_json 1" in page.inner_text("#ingest-rejections")
    stored = project.get(NAME).dir / "uploads" / "tickets.jsonl"
    assert stored.read_bytes() == SAMPLE.read_bytes()
    assert page.inner_text("#ingest-result code") == str(stored)


def introspect(page, shot) -> None:
    page.click("#introspect-button")
    page.wait_for_selector("#proposal", timeout=JOB_MS)
    assert page.inner_text("#proposal-mapper") == "alpaca"
    assert float(page.inner_text("#proposal-confidence")) >= 0.8
    assert "auto-picked" in page.inner_text("#proposal")
    hypotheses = page.locator("#hypotheses tbody tr")
    assert hypotheses.count() >= 2
    assert hypotheses.first.get_attribute("data-mapper") == "alpaca"
    assert "chosen" in hypotheses.first.get_attribute("class")
    assert cells(page, "#proposal-fields") == {"instruction": ["instruction"],
                                               "input": ["input"], "output": ["output"]}
    shot(page, "wizard-3-introspect")


def preview_and_accept(page, shot) -> None:
    page.click("#dry-run-button")
    at_step(page, 4)
    assert page.inner_text("#preview-counts") == "in 399 · out 397 · rejected 2"
    reasons = cells(page, "#rejections")
    assert {code: row[0] for code, row in reasons.items()} == {"empty_text": "1",
                                                                "missing_field": "1"}
    assert "line 43" in reasons["missing_field"][2]
    assert page.locator("#preview-rows tbody tr").count() == 5
    assert page.locator("#preview-rows .turn.assistant").count() == 5
    shot(page, "wizard-4-preview")
    page.click("#accept-button")
    at_step(page, 5)


def run_the_rest(page) -> None:
    page.fill("#run-max-steps", "30")
    assert page.locator("#run-deploy").is_checked()
    page.click("#run-button")
    page.wait_for_selector("#run-live", state="visible")
    page.wait_for_selector("#live-runs tbody tr", timeout=JOB_MS)  # runs show up as they go
    page.wait_for_selector("#summary", timeout=RUN_MS)


def check_summary(page) -> None:
    assert page.inner_text("#run-status") == "done"
    stages = cells(page, "#stage-rows")
    assert stages["ingest"][:4] == ["reused", "400", "399", "1"]  # the wizard's ingest, reused
    assert stages["map"][:4] == ["reused", "399", "397", "2"]
    assert stages["train"][0] == "succeeded" and "30 steps" in stages["train"][4]
    assert stages["deploy"][0] == "succeeded" and "promoted" in stages["deploy"][4]
    assert page.inner_text("#verdict") == "promotable"
    assert page.inner_text("#endpoint").endswith(f"/serve/{NAME}/v1/chat/completions")
    links = page.locator("#next-links a").evaluate_all("els => els.map(a => a.pathname)")
    assert links == [f"/projects/{NAME}", f"/projects/{NAME}/evaluate",
                     f"/projects/{NAME}/deployments"]


def ask(page) -> str:
    page.fill("#ask-input", "My invoice shows a double charge for March.")
    page.click("#ask-button")
    page.wait_for_selector("#ask-answer:not(.pending)", timeout=JOB_MS)
    assert "error" not in page.get_attribute("#ask-answer", "class")
    return page.inner_text("#ask-answer")


def test_the_wizard_takes_a_new_project_to_a_model_that_answers(page, shot):
    create_project(page, shot)
    upload_and_ingest(page, shot)
    introspect(page, shot)
    preview_and_accept(page, shot)
    run_the_rest(page)
    check_summary(page)
    assert ask(page).strip()
    shot(page, "wizard-5-done")
    page.goto(f"/projects/{NAME}/wizard")  # the state is the project's, not the browser's
    at_step(page, 5)
    assert page.inner_text("#run-status") == "done"
    assert page.locator("#run-form").is_hidden()  # folded under "Run again"


def test_a_missing_source_shows_the_ingest_error_on_the_data_step(page):
    project.create("wizard-bad", base_model="builtin:tiny")
    page.goto("/projects/wizard-bad/wizard")
    page.fill("#source-input", "/nowhere/at/all.jsonl")
    page.click("#source-form button[type=submit]")
    page.wait_for_selector("#step-error", timeout=JOB_MS)
    at_step(page, 2)
    assert "ingest_source_not_found" in page.inner_text("#step-error")


def test_an_empty_upload_is_refused_with_the_apis_message(page, tmp_path):
    page.allowed_errors.append("400")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    project.create("wizard-empty", base_model="builtin:tiny")
    page.goto("/projects/wizard-empty/wizard")
    page.set_input_files("#upload-file", str(empty))
    page.click("#upload-form button[type=submit]")
    panel = page.locator("#job-panel")
    panel.wait_for(state="visible")
    page.wait_for_function("document.getElementById('job-panel').innerText.includes('empty')")
    assert "upload_empty" in panel.inner_text()
    assert page.locator("#wizard").get_attribute("data-step") == "2"
