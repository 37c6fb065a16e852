"""Browser tests of the web UI: a real `brewslm server` app (uvicorn on 127.0.0.1, with the
embedded job worker) driven by Playwright through Debian's chromium.

    make test-ui     # installs chromium with apt-get when missing, then runs tests/web

One BREWSLM_HOME and one server for the whole browser session; `lifecycle` is a project the
autopilot has taken through all eleven stages (built once, ~30 s), for pages that show results.
`page` fails the test on any console error or uncaught page error, and `shot` saves a full-page
screenshot under test-artifacts/ui/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewslm.store import db

CHROMIUM = os.environ.get("BREWSLM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="session", autouse=True)
def brewslm_home(tmp_path_factory, models_dir) -> Iterator[Path]:
    """One home for the session (the projects tests build outlive each test)."""
    home = tmp_path_factory.mktemp("ui-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BREWSLM_HOME", str(home / "brewslm-home"))
        mp.setenv("BREWSLM_MODELS_DIR", str(models_dir))
        mp.setenv("BREWSLM_STRICT_CODES", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(home / "hf-home"))
        mp.delenv("BREWSLM_API_TOKEN", raising=False)
        mp.delenv("BREWSLM_DATABASE_URL", raising=False)
        mp.delenv("BREWSLM_QUEUE_URL", raising=False)
        db.reset_engines()
        yield home / "brewslm-home"
        db.reset_engines()


@pytest.fixture(scope="session")
def server(brewslm_home) -> Iterator[str]:
    """The API + UI app on a free loopback port, with the embedded job worker."""
    from brewslm.api.app import create_app
    from brewslm.jobs import worker
    from brewslm.serving.server import background_server

    thread, stop = worker.start_in_thread(poll_s=0.2)
    try:
        with background_server(create_app()) as url:
            yield url
    finally:
        stop.set()
        thread.join(timeout=60)


@pytest.fixture(scope="session")
def lifecycle(brewslm_home) -> str:
    """A project taken through every stage by the autopilot on the bundled 400-row sample
    (30 training steps: promotable on the tiny model), exported and deployed. Its name."""
    from brewslm import autopilot, project
    from brewslm.demo import sample_path

    info = project.create("lifecycle", base_model="builtin:tiny")
    summary = autopilot.run_project(info, data=str(sample_path()), overrides=["max_steps=30"])
    assert summary["status"] == "done", summary
    return info.name


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-ui` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server; console errors and page errors fail the test, except the
    browser's report of an HTTP error status a test expects: `page.allowed_errors.append("409")`
    before provoking a refusal."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.allowed_errors = []
    yield page
    context.close()
    unexpected = [e for e in errors if not any(
        f"status of {status}" in e for status in page.allowed_errors)]
    assert not unexpected, "\n".join(unexpected)


@pytest.fixture
def shot():
    """shot(page, "name"): a full-page screenshot at test-artifacts/ui/name.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/web/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)

