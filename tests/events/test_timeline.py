"""The timeline and event queries: filters, the tree by parent run, and refused filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from brewslm import project
from brewslm.errors import InputError, NotFoundError
from brewslm.events import emit_event, query, timeline
from brewslm.stages.runner import run_stage
from brewslm.stages.synthetic import SyntheticStage

pytestmark = pytest.mark.store


@pytest.fixture
def pipeline():
    """A parent (pipeline) run with two child stage runs, one of them failed."""
    info = project.create("tl")
    parent = run_stage(SyntheticStage(), info, params={"rows": 10, "reject_every": 3,
                                                       "change_every": 2})
    ok = run_stage(SyntheticStage(), info, parent_run_id=parent.run_id,
                   params={"rows": 20, "reject_every": 3, "change_every": 2})
    bad = run_stage(SyntheticStage(), info, parent_run_id=parent.run_id,
                    params={"rows": -1, "reject_every": 3, "change_every": 2})
    emit_event("stage_started", "elsewhere", project_id=project.create("other").id)
    return info, parent, ok, bad


def test_filters(pipeline):
    info, parent, ok, bad = pipeline
    codes = lambda **kw: [e["reason_code"] for e in query.events(info, query.make_filter(**kw))]  # noqa: E731
    assert codes()[0] == "project_created" and len(codes()) == 7
    assert codes(severity="error") == ["stage_failed"]
    assert codes(severity="warning") == ["stage_failed"]
    assert codes(stage="project") == ["project_created"]
    assert codes(run_id=bad.run_id) == ["stage_started", "stage_failed"]
    assert len(codes(run_id=parent.run_id)) == 6  # the parent and both children
    assert codes(code="stage_succeeded") == ["stage_succeeded", "stage_succeeded"]
    assert codes(limit=1) == ["stage_failed"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert codes(since=future) == [] and len(codes(until=future)) == 7


@pytest.mark.parametrize("kw", [{"since": "yesterday"}, {"severity": "loud"},
                                {"stage": "cooking"}, {"until": "2026-13-01"}, {"limit": 0}])
def test_bad_filters_are_refused(kw):
    with pytest.raises(InputError) as exc:
        query.make_filter(**kw)
    assert exc.value.code == "filter_invalid"


def test_unknown_run_is_refused(pipeline):
    info = pipeline[0]
    with pytest.raises(NotFoundError) as exc:
        query.events(info, query.make_filter(run_id="run-nope"))
    assert exc.value.code == "run_not_found"


def test_tree_nests_children_under_the_parent_run(pipeline):
    info, parent, ok, bad = pipeline
    tree = timeline.build(info, query.EventFilter())["tree"]
    assert [e["reason_code"] for e in tree["events"]] == ["project_created"]
    (root,) = tree["runs"]
    assert root["run_id"] == parent.run_id
    assert [(c["run_id"], c["status"]) for c in root["children"]] == [
        (ok.run_id, "succeeded"), (bad.run_id, "failed")]
    assert [e["reason_code"] for e in root["children"][1]["events"]] == [
        "stage_started", "stage_failed"]


def test_render_shows_codes_and_causes(pipeline):
    info = pipeline[0]
    console = Console(record=True, width=200)
    console.print(timeline.render(timeline.build(info, query.EventFilter())))
    text = console.export_text()
    assert "stage_failed (stage_params_invalid)" in text
    assert text.index("project_created") < text.index("stage_started")
