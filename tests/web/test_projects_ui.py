"""The projects pages in a browser: the empty list, creating a project from the form, the
overview board of eleven stages, and the token login when the server requires one."""

from __future__ import annotations

from brewslm import project


def test_create_project_from_the_list_and_see_its_board(page, shot):
    page.goto("/")
    page.fill("#create-project input[name=name]", "ui-demo")
    page.click("#create-project button[type=submit]")
    page.wait_for_url("**/projects/ui-demo")
    cards = page.locator("#board li.card")
    assert cards.count() == 11
    assert cards.first.get_attribute("data-stage") == "ingest"
    assert page.locator("p.next a").first.inner_text() == "Run stage 01 ingest"
    assert page.locator("#continue-wizard").get_attribute("href") == "/projects/ui-demo/wizard"
    assert project.get("ui-demo").base_model == "builtin:tiny"
    shot(page, "overview")
    page.goto("/")
    assert page.locator("#projects a", has_text="ui-demo").is_visible()
    shot(page, "projects")


def test_a_refused_create_shows_the_api_error(page):
    page.allowed_errors.append("409")
    page.goto("/")
    page.fill("#create-project input[name=name]", "ui-demo")  # exists since the test above
    page.click("#create-project button[type=submit]")
    panel = page.locator("#job-panel")
    panel.wait_for(state="visible")
    assert "project_exists" in panel.inner_text()


def test_beyond_loopback_the_ui_asks_for_the_token(browser, monkeypatch, shot, lifecycle):
    from brewslm.api.app import create_app
    from brewslm.serving.server import background_server

    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret-token")
    with background_server(create_app(require_token=True)) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.goto("/projects/ui-demo")
        assert page.url.endswith("/login?next=/projects/ui-demo")
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        assert "not the server's" in page.locator("p.error").inner_text()
        shot(page, "login")
        page.fill("input[name=token]", "s3cret-token")
        page.click("button[type=submit]")
        page.wait_for_url("**/projects/ui-demo")
        assert page.locator("#board li.card").count() == 11
        # the cookie also opens the REST API and the project's endpoint to the page's fetch calls
        assert page.evaluate("fetch('/api/projects').then(r => r.status)") == 200
        models = f"fetch('/serve/{lifecycle}/v1/models').then(r => r.status)"
        assert page.evaluate(models) == 200
        context.clear_cookies()
        assert page.evaluate(models) == 401
        context.close()


def test_the_board_of_a_project_through_every_stage(page, lifecycle, shot):
    page.goto(f"/projects/{lifecycle}")
    statuses = {card.get_attribute("data-stage"): card.locator(".status").inner_text()
                for card in page.locator("#board li.card").all()}
    assert statuses == {stage: "succeeded" for stage in statuses}
    assert len(statuses) == 11
    ingest = page.locator("#board li[data-stage=ingest] .counts").inner_text()
    assert ingest == "in 400 · out 399 · rejected 1"
    assert page.locator("p.next a").first.inner_text() == "Everything has run: see deployments"
    shot(page, "overview-lifecycle")
