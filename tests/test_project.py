"""Projects: create, list, show, delete, and the refusals with their exact codes."""

from __future__ import annotations

import pytest

from brewslm import artifacts, project
from brewslm.errors import InputError, NotFoundError
from brewslm.events import query
from brewslm.stages.runner import run_stage
from brewslm.stages.synthetic import SyntheticStage

pytestmark = pytest.mark.store
SMALL = {"rows": 50, "reject_every": 7, "change_every": 5}


def test_create_list_show():
    info = project.create("tickets", base_model="builtin:tiny", description="support tickets")
    assert info.dir.is_dir()
    assert [p.name for p in project.list_all()] == ["tickets"]
    shown = project.summary(project.get("tickets"))
    assert shown["base_model"] == "builtin:tiny" and shown["description"] == "support tickets"
    assert shown["counts"] == {"runs": 0, "events": 1, "artifacts": 0}
    assert query.events(info)[0]["reason_code"] == "project_created"


@pytest.mark.parametrize("name", ["", "Tickets", "-x", "a b", "x" * 65, "../up"])
def test_invalid_names_are_refused(name):
    with pytest.raises(InputError) as exc:
        project.create(name)
    assert exc.value.code == "project_name_invalid"


def test_duplicate_and_missing():
    project.create("dup")
    with pytest.raises(InputError) as exc:
        project.create("dup")
    assert exc.value.code == "project_exists"
    with pytest.raises(NotFoundError) as exc:
        project.get("nope")
    assert exc.value.code == "project_not_found"


def test_bad_base_model_reference_is_refused_at_create():
    with pytest.raises(InputError) as exc:
        project.create("m1", base_model="builtin:huge")
    assert exc.value.code == "base_model_unknown_builtin"
    with pytest.raises(InputError) as exc:
        project.create("m2", base_model="./no/such/folder")
    assert exc.value.code == "base_model_not_found"
    assert project.list_all() == []


def test_summary_counts_runs_artifacts_and_last_stage():
    info = project.create("counted")
    result = run_stage(SyntheticStage(), info, params=SMALL)
    shown = project.summary(info)
    assert shown["counts"]["runs"] == 1 and shown["counts"]["artifacts"] == 1
    assert shown["stages"]["synthetic"] == {"status": "succeeded", "run_id": result.run_id,
                                             "started_at": shown["stages"]["synthetic"][
                                                 "started_at"]}


def test_delete_removes_everything_and_leaves_a_system_event():
    info = project.create("gone")
    run_stage(SyntheticStage(), info, params=SMALL)
    project.delete_project("gone")
    assert not info.dir.exists()
    with pytest.raises(NotFoundError):
        project.get("gone")
    again = project.create("gone")
    assert query.runs(again) == [] and artifacts.list_artifacts(again) == []
    assert [e["reason_code"] for e in query.events(again)] == ["project_created"]


def test_resolve_base_model_records_an_event():
    info = project.create("model", base_model="builtin:tiny")
    described = project.resolve_base_model(info)
    assert described["architecture"] == "LlamaForCausalLM" and described["chat_template"]
    event = query.events(info, query.make_filter(code="base_model_resolved"))[0]
    assert event["payload"]["path"] == described["path"]
    with pytest.raises(InputError) as exc:
        project.resolve_base_model(project.create("nomodel"))
    assert exc.value.code == "base_model_invalid_ref"


def test_settings_are_checked_and_recorded():
    info = project.create("settings")
    updated = project.set_setting("settings", "mapper_plugins", ["my_mappers"])
    assert updated.settings == {"mapper_plugins": ["my_mappers"]}
    for key, value in (("colour", "blue"), ("mapper_plugins", "not-a-list")):
        with pytest.raises(InputError) as exc:
            project.set_setting("settings", key, value)
        assert exc.value.code == "project_setting_invalid"
    event = query.events(info, query.make_filter(code="project_updated"))[0]
    assert event["payload"] == {"key": "mapper_plugins", "value": ["my_mappers"]}
