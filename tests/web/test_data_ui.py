"""The data pages in a browser: /data, /clean and /manifest of the lifecycle project (the
exact counts of the bundled sample), and a fresh project taken from ingest to a committed,
hand-edited mapping with the page's own form and buttons."""

from __future__ import annotations

import json

from brewslm import artifacts, ledger, project
from brewslm.jobs import service
from brewslm.stages import data
from brewslm.stages.outputs import latest_output

FAQ_MAP = {"question": "question_text", "answer": "reply"}


def test_data_page_of_the_lifecycle_project(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/data")
    info = project.get(lifecycle)
    snapshot_id = latest_output(info, "ingest", "snapshot")
    assert page.locator("#snapshot-id").inner_text() == snapshot_id
    assert page.locator("#snapshot-source").inner_text().endswith("tickets.jsonl")
    assert page.locator("#ingest-counts").inner_text() == "in 400 · out 399 · rejected 1"
    assert _reason_counts(page, "#ingest-reasons") == {"malformed_json": 1}
    malformed = page.locator("#ingest-examples tr[data-code=malformed_json]")
    assert "line 18" in malformed.inner_text()
    row_id = malformed.locator("td").nth(1).inner_text()
    assert malformed.locator("a").get_attribute("href") == f"/projects/{lifecycle}/rows/{row_id}"

    assert page.locator("#proposal-mapper").inner_text() == "alpaca"
    assert json.loads(page.locator("#proposal-field-map").inner_text()) == {
        "instruction": "instruction", "input": "input", "output": "output"}
    assert page.locator("#proposal-confidence").inner_text() == "0.998"
    assert page.locator("#hypotheses tbody tr").first.get_attribute("data-mapper") == "alpaca"
    assert page.locator("#confidence-chart .plot-container").is_visible()

    assert page.locator("#mapper-select").input_value() == "alpaca"
    slots = page.locator("fieldset[data-mapper=alpaca]")
    assert slots.locator("input[data-slot=instruction]").input_value() == "instruction"
    assert slots.locator("input[data-slot=output]").input_value() == "output"
    assert page.locator("fieldset[data-mapper=sharegpt]").is_hidden()

    assert page.locator("#dry-run-counts").inner_text() == "in 399 · out 397 · rejected 2"
    assert _reason_counts(page, "#dry-run-reasons") == {"empty_text": 1, "missing_field": 1}
    missing = page.locator("#dry-run-examples tr[data-code=missing_field]").inner_text()
    assert "line 43" in missing and "missing output<-output" in missing
    assert page.locator("#preview tbody tr").count() == 5
    assert "line 1" in page.locator("#preview tbody tr").first.inner_text()

    assert page.locator("#map-counts").inner_text() == "in 399 · out 397 · rejected 2"
    assert _reason_counts(page, "#map-reasons") == {"empty_text": 1, "missing_field": 1}
    assert page.locator("#dataset-id").inner_text() == data.dataset_versions(info)[0][
        "dataset_id"]
    shot(page, "data")


def test_clean_page_of_the_lifecycle_project(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/clean")
    assert page.locator("#clean-counts").inner_text() == "in 397 · out 386 · rejected 11"
    assert _reason_counts(page, "#clean-reasons") == {"near_duplicate": 10, "exact_duplicate": 1}
    assert page.locator("#health-verdict").inner_text() == "ok"
    assert page.locator("#pii-policy").inner_text() == "redact"
    assert "0.0%" in page.locator("#pii-found").inner_text()
    assert page.locator("#health-signals tbody tr").count() == 5
    assert "duplicate_of" in page.locator("#clean-examples tr[data-code=exact_duplicate]"
                                          ).inner_text()
    assert page.locator("#drops-chart .plot-container").is_visible()
    assert page.locator("#clean-form select[name=pii] option").all_inner_texts() == [
        "redact", "block", "warn"]
    shot(page, "clean")


def test_manifest_page_of_the_lifecycle_project(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/manifest")
    info = project.get(lifecycle)
    manifest = artifacts.get(info, latest_output(info, "prepare", "manifest"))
    assert page.locator("#manifest-hash").inner_text() == manifest.meta["manifest_hash"]
    rows = {r.get_attribute("data-split"): int(r.locator("td").nth(1).inner_text())
            for r in page.locator("#splits tbody tr").all()}
    assert set(rows) == {"train", "eval"} and sum(rows.values()) == 386
    assert rows["eval"] > 0
    assert page.locator("#prepare-counts").inner_text() == "in 386 · out 386 · rejected 0"
    assert "0 rows truncated" in page.locator("#truncation").inner_text()
    assert page.locator("#token-hist .plot-container").is_visible()
    traces = page.evaluate("document.getElementById('token-hist').data.map("
                           "t => [t.type, t.x.length])")
    assert sorted(traces) == sorted([["histogram", rows["train"]], ["histogram", rows["eval"]]])
    shot(page, "manifest")


def test_a_fresh_project_from_ingest_to_an_edited_committed_mapping(page, tmp_path):
    source = _faq_file(tmp_path)
    info = project.create("data-ui-fresh", base_model="builtin:tiny")
    page.goto(f"/projects/{info.name}/data")
    assert page.locator("#snapshot-empty").is_visible()
    assert page.locator("#commit-empty").is_visible()

    page.fill("#ingest-form input[name=source]", str(source))
    _run_and_wait(page, lambda: page.click("#ingest-form button[type=submit]"), "#ingest-counts")
    assert page.locator("#ingest-counts").inner_text() == "in 8 · out 7 · rejected 1"
    assert _reason_counts(page, "#ingest-reasons") == {"malformed_json": 1}

    _run_and_wait(page, lambda: page.click("#introspect-button"), "#proposal-mapper")
    assert page.locator("#proposal-mapper").inner_text() == "classification"
    assert "below 0.8" in page.locator("#proposal").inner_text()

    page.select_option("#mapper-select", "question_answer")
    slots = page.locator("fieldset[data-mapper=question_answer]")
    assert slots.locator("input[data-slot=question]").input_value() == "question_text"
    slots.locator("input[data-slot=context]").fill("topic")  # the edit
    _run_and_wait(page, lambda: page.click("#preview-button"), "#dry-run-counts")
    edited = {**FAQ_MAP, "context": "topic"}
    assert json.loads(page.locator("#dry-run-field-map").inner_text()) == edited
    assert page.locator("#dry-run-counts").inner_text() == "in 7 · out 6 · rejected 1"
    assert "line 7" in page.locator("#dry-run-examples tr[data-code=missing_field]").inner_text()
    assert "account" in page.locator("#preview tbody tr").first.inner_text()  # the context
    assert page.locator("#commit-empty").is_visible()

    assert page.locator("#mapper-select").input_value() == "question_answer"  # kept on reload
    _run_and_wait(page, lambda: page.click("#commit-button"), "#map-counts")
    assert page.locator("#map-counts").inner_text() == "in 7 · out 6 · rejected 1"
    assert json.loads(page.locator("#commit-field-map").inner_text()) == edited
    version = data.dataset_versions(info)[-1]
    assert (version["mapper"], version["field_map"], version["rows"]) == (
        "question_answer", edited, 6)
    jobs = service.list_jobs(info)
    assert [j["kind"] for j in reversed(jobs)] == ["ingest", "introspect", "map", "map"]
    assert {j["status"] for j in jobs} == {"succeeded"}


def test_clean_and_prepare_started_from_their_pages(page, tmp_path):
    info = project.create("data-ui-prepare", base_model="builtin:tiny")
    data.ingest(info, str(_faq_file(tmp_path)))
    data.map_rows(info, mapper="question_answer", field_map=FAQ_MAP)
    page.goto(f"/projects/{info.name}/clean")
    page.select_option("#clean-form select[name=pii]", "warn")
    _run_and_wait(page, lambda: page.click("#clean-button"), "#clean-counts")
    assert page.locator("#clean-counts").inner_text() == "in 6 · out 6 · rejected 0"
    assert page.locator("#pii-policy").inner_text() == "warn"
    assert _reason_counts(page, "#clean-notes") == {"pii_found": 1}  # the e-mail, kept

    page.goto(f"/projects/{info.name}/manifest")
    page.fill("#prepare-form input[name=max_tokens]", "30")
    page.select_option("#prepare-form select[name=truncation]", "truncate")
    _run_and_wait(page, lambda: page.click("#prepare-button"), "#manifest-hash")
    assert "6 rows truncated" in page.locator("#truncation").inner_text()
    assert json.loads(page.locator("#manifest-policies").inner_text())["max_tokens"] == 30
    assert page.locator("#token-hist .plot-container").is_visible()


def test_clean_and_manifest_pages_before_their_stage_has_run(page):
    info = project.create("data-ui-empty", base_model="builtin:tiny")
    for slug, empty in (("clean", "#clean-empty"), ("manifest", "#manifest-empty")):
        page.goto(f"/projects/{info.name}/{slug}")
        assert "map the data" in page.locator(empty).inner_text()
    page.goto(f"/projects/{info.name}/data")
    assert "Ingest a source first" in page.locator("#introspection-empty").inner_text()


def test_ledger_examples_and_truncation_counts(tmp_path):
    path = tmp_path / "run.parquet"
    with_ledger = ledger.LedgerWriter(path, stage="prepare", run_id="run-1")
    with_ledger.dropped("r1", "too_many_tokens", source="a.jsonl", position="line 1")
    with_ledger.dropped("r2", "too_many_tokens", source="a.jsonl", position="line 2")
    with_ledger.changed("r3", "truncated", truncated_tokens=7)
    with_ledger.changed("r4", "truncated", truncated_tokens=5)
    with_ledger.kept("r5")
    with_ledger.close()
    with_ledger.commit()
    examples = ledger.examples_by_reason(path)
    assert [e["position"] for e in examples["too_many_tokens"]] == ["line 1"]
    assert ledger.truncation(path) == {"rows": 2, "tokens": 12}


def _reason_counts(page, table: str) -> dict[str, int]:
    return {row.get_attribute("data-code"): int(row.locator("td").nth(1).inner_text())
            for row in page.locator(f"{table} tbody tr").all()}


def _run_and_wait(page, click, shows: str) -> None:
    """Start a stage from the page and wait for the reload that follows its success (the job
    panel's text is the failure message otherwise)."""
    click()
    outcome = page.locator(f"{shows}, #job-panel.failed, #job-panel.blocked").first
    outcome.wait_for(timeout=60_000)
    assert page.locator(shows).count() == 1, page.locator("#job-panel").inner_text()


def _faq_file(tmp_path):
    """8 lines: 6 questions with replies (one names an e-mail address), one without a reply,
    one that is not JSON."""
    lines = [json.dumps({"question_text": f"How do I reset my password on device {i}?",
                         "reply": f"Open settings on device {i} and choose reset."
                         + (" Or write to help@example.com." if i == 5 else ""),
                         "topic": "account"}) for i in range(6)]
    lines.append(json.dumps({"question_text": "Where is my parcel?", "topic": "shipping"}))
    lines.append("{not json")
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
