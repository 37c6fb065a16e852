"""The CLI: --help, one JSON object on stdout with --json, and the exit codes of DESIGN.md."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from brewslm.cli import app
from brewslm.ledger import make_row_id

pytestmark = pytest.mark.store
runner = CliRunner()


def call(*args: str, code: int = 0, input: str | None = None) -> dict | str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def test_help_shows_the_commands():
    text = call("--help")
    for command in ("project", "events", "runs", "artifacts", "rows", "codes", "model",
                    "selftest", "server", "demo"):
        assert command in text


def test_project_lifecycle_in_json():
    created = call("project", "create", "cli1", "--base-model", "builtin:tiny", "--json")
    assert created["project"]["name"] == "cli1"
    assert [p["name"] for p in call("project", "list", "--json")["projects"]] == ["cli1"]
    assert call("project", "show", "cli1", "--json")["project"]["counts"]["events"] == 1
    call("project", "delete", "cli1", code=1, input="n\n")  # declined at the prompt
    assert call("project", "delete", "cli1", "--yes", "--json")["deleted"]["name"] == "cli1"
    assert call("project", "list", "--json")["projects"] == []


def test_refusals_exit_2_with_an_error_object():
    err = call("project", "show", "ghost", "--json", code=2)["error"]
    assert err["code"] == "project_not_found"
    call("project", "create", "Bad Name", "--json", code=2)
    call("project", "create", "x1", "--json")
    assert call("events", "-p", "x1", "--since", "soon", "--json", code=2)["error"][
        "code"] == "filter_invalid"


def test_selftest_rows_artifacts_and_events():
    call("project", "create", "st", "--json")
    out = call("selftest", "-p", "st", "--rows", "70", "--json")
    assert out["stage"] == "synthetic" and out["status"] == "succeeded"
    assert out["counts"] == {"in": 70, "out": 60, "rejected": 10}
    assert [e["reason_code"] for e in out["events"]] == ["stage_started", "stage_succeeded"]
    again = call("selftest", "-p", "st", "--rows", "70", "--json")
    assert again["status"] == "reused"
    stats = call("rows", "-p", "st", "stats", "--json")
    assert stats["stages"][0]["by_reason"] == {"synthetic_row_rejected": 10}
    trace = call("rows", "-p", "st", "trace", make_row_id("synthetic:0", 7), "--json")
    assert trace["steps"][0]["reason_code"] == "synthetic_row_rejected"
    arts = call("artifacts", "-p", "st", "--verify", "--json")
    assert arts["verified"] and arts["artifacts"][0]["kind"] == "dataset"
    runs = call("runs", "-p", "st", "--json")["runs"]
    assert [r["status"] for r in runs] == ["succeeded", "reused"]
    assert call("runs", "-p", "st", runs[0]["run_id"], "--json")["run"]["stage"] == "synthetic"
    timeline = call("events", "-p", "st", "--json")
    assert timeline["count"] == 4 and len(timeline["tree"]["runs"]) == 2
    assert "stage_succeeded" in call("events", "-p", "st")


def test_bad_stage_parameters_exit_2():
    call("project", "create", "st2", "--json")
    out = call("selftest", "-p", "st2", "--rows", "-5", "--json", code=2)
    assert out["status"] == "failed" and out["error"]["code"] == "stage_params_invalid"


def test_codes_and_model_show():
    codes = call("codes", "--stage", "runner", "--json")["codes"]
    assert "stage_interrupted" in [c["code"] for c in codes]
    model = call("model", "show", "builtin:tiny", "--json")["model"]
    assert model["kind"] == "builtin" and model["parameters"] > 0
    assert call("model", "show", "builtin:nope", "--json", code=2)["error"][
        "code"] == "base_model_unknown_builtin"
