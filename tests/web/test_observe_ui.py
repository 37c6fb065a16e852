"""The observability pages in a browser: the timeline tree and its filters, failure clusters of a
project whose ingests failed, the audit explorer and its three questions, the ledger per stage
and one row's story, and the support bundle's download."""

from __future__ import annotations

import io
import zipfile

import pytest

from brewslm import project
from brewslm.events import query


@pytest.fixture(scope="module")
def failing(brewslm_home, tmp_path_factory) -> str:
    """A project whose ingests failed three times: two missing sources (one cluster, count 2)
    and a file of no known format (another cluster). Its name."""
    from brewslm.stages import data

    info = project.create("observe-failing", base_model="builtin:tiny")
    folder = tmp_path_factory.mktemp("failing-sources")
    (folder / "notes.xyz").write_text("hello")
    for source in (folder / "missing-a.jsonl", folder / "missing-b.jsonl", folder / "notes.xyz"):
        assert data.ingest(info, str(source)).status == "failed"
    return info.name


def drawn(page, chart_id: str) -> bool:
    """True once plotly has drawn the chart (its SVG is in the element)."""
    page.locator(f"#{chart_id} .main-svg").first.wait_for()
    return True


def test_timeline_is_a_tree_of_runs_with_filters(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/timeline")
    run_stages = page.locator("#timeline-tree li.run").evaluate_all(
        "nodes => nodes.map(n => n.dataset.stage)")
    assert {"ingest", "map", "clean", "train", "evaluate", "export", "deploy"} <= set(run_stages)
    total = page.locator("#timeline-tree li.event").count()
    assert page.locator("#timeline-count").inner_text().startswith(f"{total} events")
    clean_run = page.locator("#timeline-tree li.run[data-stage=clean]")
    assert clean_run.locator("li.event[data-code=stage_succeeded]").count() == 1
    assert drawn(page, "timeline-chart")
    payload = page.locator("#timeline-tree li.event details.payload").first
    payload.locator("summary").click()
    assert payload.locator("pre").is_visible()
    shot(page, "timeline")

    page.select_option("#timeline-filters select[name=stage]", "clean")
    page.click("#timeline-filters button[type=submit]")
    page.wait_for_url("**/timeline?stage=clean*")
    stages = page.locator("#timeline-tree li.event").evaluate_all(
        "nodes => nodes.map(n => n.dataset.stage)")
    assert stages and set(stages) == {"clean"}
    assert page.locator("#timeline-tree li.run").count() == 1


def test_timeline_refuses_a_bad_time_on_the_page(page, lifecycle):
    page.allowed_errors.append("400")
    response = page.goto(f"/projects/{lifecycle}/timeline?since=yesterday")
    assert response.status == 400
    assert page.locator(".observe-error").get_attribute("data-code") == "filter_invalid"


def test_clusters_group_the_failures(page, failing, lifecycle, shot):
    page.goto(f"/projects/{failing}/clusters")
    clusters = page.locator("#clusters tbody tr")
    assert clusters.count() == 2
    top = clusters.first
    assert top.get_attribute("data-cause") == "ingest_source_not_found"
    assert top.locator("td.count").inner_text() == "2"
    assert "<path>: no such file or folder" in top.inner_text()
    assert clusters.nth(1).get_attribute("data-cause") == "ingest_format_unknown"
    assert drawn(page, "clusters-chart")
    shot(page, "clusters")

    page.select_option("#cluster-filters select[name=stage]", "clean")
    page.click("#cluster-filters button[type=submit]")
    page.wait_for_url("**/clusters?stage=clean*")
    assert page.locator("#no-clusters").is_visible()
    page.goto(f"/projects/{lifecycle}/clusters")  # every stage succeeded: nothing failed
    assert page.locator("#no-clusters").is_visible()


def test_audit_answers_why_who_and_lineage(page, lifecycle, shot):
    train_run = query.runs(project.get(lifecycle), stage="train")[-1]["run_id"]
    page.goto(f"/projects/{lifecycle}/audit")
    kinds = page.locator("#decision-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.kind)")
    assert {"setting", "preflight", "promotion", "deployment"} <= set(kinds)
    promotion = page.locator("#decision-table tr[data-kind=promotion]")
    assert "promotable" in promotion.inner_text()

    page.fill("#ask-why input[name=why]", train_run)
    page.click("#ask-why button[type=submit]")
    page.wait_for_url("**/audit?why=*")
    assert page.locator("#why-verdict").inner_text() == "promotable"
    assert page.locator("#why-answer tr[data-gate=beats_base_on_loss]").count() == 1

    export = page.locator("#ask-lineage option", has_text="export ").first.get_attribute("value")
    page.select_option("#ask-lineage select", export)
    page.click("#ask-lineage button[type=submit]")
    page.wait_for_url("**/audit?lineage=*")
    kinds = page.locator("#lineage-nodes tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.kind)")
    assert kinds[0] == "export" and {"model", "manifest", "dataset", "snapshot"} <= set(kinds)
    assert "tickets.jsonl" in page.locator("#lineage-answer table.sources").inner_text()
    shot(page, "audit")

    page.goto(f"/projects/{lifecycle}/audit?code=near_duplicate")
    hit = page.locator("#ledger-table tbody tr")
    assert hit.count() == 1 and "clean" in hit.inner_text()
    assert hit.locator("td.num").inner_text() == "10"


def test_rows_account_for_every_row_and_trace_one(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/rows")
    counts = {}
    for tr in page.locator("#row-stats tbody tr").all():
        counts[tr.get_attribute("data-stage")] = (
            tr.locator("td.in").inner_text(), tr.locator("td.out").inner_text(),
            tr.locator("td.dropped").inner_text(), tr.locator("td.balanced").inner_text())
    assert counts["ingest"] == ("400", "399", "1", "balanced")
    assert counts["map"] == ("399", "397", "2", "balanced")
    assert counts["clean"] == ("397", "386", "11", "balanced")
    assert {balanced for *_, balanced in counts.values()} == {"balanced"}
    assert drawn(page, "rows-chart")
    shot(page, "rows")

    page.locator("#example-rows tr[data-code=malformed_json] a.row-link").first.click()
    page.wait_for_url("**/rows/r*")
    step = page.locator("#row-steps tbody tr")
    assert step.count() == 1
    assert step.get_attribute("data-code") == "malformed_json"
    assert step.get_attribute("data-outcome") == "dropped"
    assert "dropped at ingest (malformed_json)" in page.locator("#row-final").inner_text()
    assert "not valid JSON" in page.locator("#code-malformed_json + dd").inner_text()

    page.goto(f"/projects/{lifecycle}/rows")
    rejected = page.locator("#example-rows tr[data-code=missing_field] a.row-link").first
    row_id = rejected.inner_text()
    page.fill("#trace-row input[name=row_id]", row_id)
    page.click("#trace-row button[type=submit]")
    page.wait_for_url(f"**/rows/{row_id}")
    outcomes = page.locator("#row-steps tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.stage, r.dataset.outcome, r.dataset.code])")
    assert outcomes == [["ingest", "kept", ""], ["map", "dropped", "missing_field"]]
    page.click("#row-steps a.reason")
    assert page.url.endswith("#code-missing_field")
    assert "Remedy:" in page.locator("#code-missing_field + dd").inner_text()
    shot(page, "row-trace")


def test_an_unknown_row_says_so(page, lifecycle):
    page.allowed_errors.append("404")
    response = page.goto(f"/projects/{lifecycle}/rows/rnosuchrow")
    assert response.status == 404
    assert page.locator(".observe-error").get_attribute("data-code") == "row_not_found"


def test_the_bundle_downloads_as_a_zip_and_is_recorded(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}/bundle")
    members = page.locator("#bundle-members tbody tr").count()
    assert members >= 8
    with page.expect_download() as info:
        page.click("#bundle-download")
    download = info.value
    assert download.suggested_filename == f"brewslm-{lifecycle}-bundle.zip"
    with zipfile.ZipFile(io.BytesIO(open(download.path(), "rb").read())) as zf:
        names = set(zf.namelist())
    assert {"manifest.json", "project.json", "runs.json", "events.jsonl", "clusters.json",
            "environment.json"} <= names
    history = page.locator("#bundle-history tbody tr")
    history.first.wait_for()
    assert history.first.locator("td.redacted").inner_text().isdigit()
    assert "Downloaded" in page.locator("#job-panel").inner_text()
    shot(page, "bundle")
