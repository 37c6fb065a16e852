"""The shipping pages in a browser: exports (parity, files with their sha256, downloads that
return those bytes, the format's quantisations) and deployments (the endpoint, the "Try it"
chat box answering through /serve/NAME/v1, telemetry counting that request, a drift check,
promote and rollback, and the empty states)."""

from __future__ import annotations

import hashlib

from playwright.sync_api import expect

from brewslm import artifacts, project
from brewslm.events import query
from brewslm.serving import deployments, telemetry


def test_exports_show_parity_and_download_their_files(page, lifecycle, shot):
    info = project.get(lifecycle)
    exports = [a for a in artifacts.list_artifacts(info) if a.kind == "export"]
    page.goto(f"/projects/{lifecycle}/exports")
    sections = page.locator("section.export")
    assert sections.count() == len(exports) == 2
    for section in sections.all():
        assert section.locator(".parity").inner_text() == "parity passed"
    gguf_run = next(r for r in query.runs(info, "export") if r["result"].get("format") == "gguf")
    main = gguf_run["result"]["artifacts"][0]
    gguf = page.locator(f"section.export[data-export='{gguf_run['result']['export_id']}']")
    assert gguf.locator(".max-abs-diff").inner_text() \
        == f"{gguf_run['result']['parity']['max_abs_diff']:.3g}"
    row = gguf.locator(f"tr[data-file='{main['path'].rsplit('/', 1)[-1]}']")
    assert row.locator(".sha").inner_text() == main["sha256"]
    response = page.request.get(row.locator("a.download").get_attribute("href"))
    assert response.ok
    assert hashlib.sha256(response.body()).hexdigest() == main["sha256"]

    page.select_option("#export-form select[name=fmt]", "safetensors")
    options = page.locator("#export-form select[name=quant] option").all_inner_texts()
    assert options == ["f32", "f16", "bf16"]
    assert page.locator("#export-form select[name=quant]").input_value() == "f32"
    shot(page, "exports")


def test_deployments_chat_telemetry_and_drift(page, lifecycle, shot):
    info = project.get(lifecycle)
    serving = deployments.active(info)
    before = telemetry.summary(info, serving.version)["requests"]
    page.goto(f"/projects/{lifecycle}/deployments")
    assert page.locator("#serving").inner_text() == f"version {serving.version}"
    assert page.locator("#endpoint").inner_text().endswith(f"/serve/{lifecycle}/v1")
    status = page.locator(f"#versions tr[data-version='{serving.version}'] .version-status")
    assert status.inner_text() == "promoted"

    page.fill("#chat-form textarea[name=message]", "My invoice is wrong, I was charged twice.")
    page.click("#chat-send")
    expect(page.locator("#chat-text")).to_be_visible(timeout=30_000)
    requests = page.locator(f"#telemetry tr[data-version='{serving.version}'] "
                            "[data-cell=requests]")
    expect(requests).to_have_text(str(before + 1))
    assert telemetry.summary(info, serving.version)["requests"] == before + 1

    page.click("#check-drift")
    verdict = page.locator(f".drift[data-version='{serving.version}'] .drift-verdict")
    expect(verdict).to_be_visible(timeout=30_000)
    report = deployments.get(info, serving.version).drift
    assert verdict.inner_text() == report["verdict"]
    signals = page.locator(f".drift[data-version='{serving.version}'] tr[data-signal]")
    assert signals.evaluate_all("rows => rows.map(r => r.dataset.signal)") \
        == list(report["signals"])
    expect(page.locator("#telemetry-chart .plot-container")).to_be_visible()
    page.click("#chat-send")  # once more, for the screenshot's answer
    expect(requests).to_have_text(str(before + 2), timeout=30_000)
    assert page.locator("#chat-text").is_visible()
    shot(page, "deployments")


def test_promote_and_rollback_from_the_versions_table(page):
    info = project.create("ui-versions", base_model="builtin:tiny")
    for stage in ("exports", "deployments"):
        page.goto(f"/projects/ui-versions/{stage}")
        expect(page.locator("#empty-state")).to_be_visible()
    for _ in range(2):
        deployments.create(info, export_id="e" * 64, fmt="safetensors", run_id=None,
                           smoke={"passed": True, "prompts": []})

    def status(version: int):
        return page.locator(f"#versions tr[data-version='{version}'] .version-status")

    page.goto("/projects/ui-versions/deployments")
    expect(page.locator("#serving")).to_have_text("no version is serving")
    page.click("button[data-promote='1']")
    expect(status(1)).to_have_text("promoted")
    page.click("button[data-promote='2']")
    expect(status(2)).to_have_text("promoted")
    assert status(1).inner_text() == "superseded"
    page.click("button[data-rollback]")
    expect(status(1)).to_have_text("promoted")
    assert status(2).inner_text() == "rolled_back"
    assert deployments.active(info).version == 1

    page.allowed_errors.append("400")  # version 1 replaced none: the API refuses
    page.click("button[data-rollback]")
    expect(page.locator("#job-panel")).to_contain_text("deploy_no_predecessor")
