"""Project as code (projectfile.py, cli_projectfile.py): the schema's refusals with their exact
codes, paths and lines; the plan (create / update / noop per part); apply; `brewslm config`
round trips; the example file; `apply --run` wiring (the autopilot replaced: no training).

    OMP_NUM_THREADS=1 .venv/bin/pytest tests/test_projectfile.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from brewslm import locks, project, projectfile
from brewslm.clean import QualityConfig
from brewslm.cli import app
from brewslm.errors import InputError
from brewslm.events import query
from brewslm.stages.clean import DEFAULTS as CLEAN_DEFAULTS
from brewslm.stages.prepare import DEFAULTS as PREPARE_DEFAULTS

pytestmark = pytest.mark.store
runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "brewslm.yaml"
SAMPLE = Path(__file__).resolve().parents[1] / "src" / "brewslm" / "samples" / "tickets.jsonl"
PARTS = ["project", "base_model", "description", "mapper_plugins", "clean", "prepare", "sources",
         "mapping", "recipe", "eval_pack", "export", "deploy"]
MINIMAL = "version: 1\nproject: {name: mini}\n"


def call(*args: str, code: int = 0) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def actions(plan: list[dict]) -> list[tuple[str, str]]:
    return [(e["part"], e["action"]) for e in plan]


def write(tmp_path: Path, text: str, name: str = "brewslm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the example and the defaults --------------------------------------------------------------

def test_the_example_validates_and_applies_then_is_all_noop():
    spec = projectfile.load(EXAMPLE)
    assert spec["data"]["sources"] == [str(SAMPLE)]  # relative to the file's folder
    assert spec["export"]["formats"] == [{"format": "gguf", "quant": "q8_0"},
                                         {"format": "safetensors", "quant": "f32"}]
    first = call("apply", "-f", str(EXAMPLE))
    assert first["applied"] is True and first["stages_run"] is False and first["run"] is None
    assert actions(first["plan"]) == [(p, "create") for p in PARTS]
    info = project.get("tickets")
    assert (info.base_model, info.description) == ("builtin:tiny",
                                                   "Support tickets to {category, priority} JSON")
    assert info.settings["clean"]["pii"] == "redact"
    assert info.settings["pipeline"] == {
        "sources": [str(SAMPLE)], "mapping": None, "recipe": {"name": "lora"},
        "eval_pack": {"name": "default"}, "export": spec["export"]["formats"], "deploy": True}
    again = call("apply", "-f", str(EXAMPLE))
    assert again["applied"] is False
    assert actions(again["plan"]) == [(p, "noop") for p in PARTS]
    applied = [e for e in query.events(info) if e["reason_code"] == "projectfile_applied"]
    assert len(applied) == 1 and len(applied[0]["payload"]["changes"]) == len(PARTS)


def test_defaults_are_the_stages_own():
    spec = projectfile.parse(MINIMAL)
    assert spec["data"]["clean"] == {**CLEAN_DEFAULTS,
                                     **dataclasses.asdict(QualityConfig())}
    assert spec["data"]["prepare"] == PREPARE_DEFAULTS
    assert spec["export"]["formats"] == projectfile.AUTOPILOT_EXPORTS
    assert (spec["data"]["sources"], spec["data"]["mapping"], spec["deploy"]) == ([], None, True)
    assert spec["train"]["recipe"] == {"name": "lora"}
    assert spec["eval"]["pack"] == {"name": "default"}


def test_knobs_are_normalised_by_the_recipe_and_pack_loaders():
    spec = projectfile.parse("version: 1\nproject: {name: k}\ntrain:\n  recipe:\n    name: full"
                             "\n    learning_rate: 1e-3\n    max_steps: null\neval:\n  pack:\n"
                             "    name: fast\n    generation: {max_new_tokens: 8}\n")
    assert spec["train"]["recipe"] == {"name": "full", "learning_rate": 0.001, "max_steps": None}
    assert spec["eval"]["pack"] == {"name": "fast", "generation": {"max_new_tokens": 8}}
    assert projectfile.run_args(spec | {"data": {**spec["data"], "sources": ["s"]}})[
        "eval_overrides"] == ["generation.max_new_tokens=8"]


# --- refusals: exact code, path and line --------------------------------------------------------

REFUSALS = [
    # (file text after `version: 1\nproject: {name: x}\n`, code, path, line)
    ("train:\n  recipe:\n    micro_btch: 4\n", "projectfile_unknown_key",
     "train.recipe.micro_btch", 5),
    ("eval:\n  pack:\n    generation: {max_new_tokenz: 4}\n", "projectfile_unknown_key",
     "eval.pack.generation.max_new_tokenz", 5),
    ("trian: {}\n", "projectfile_unknown_key", "trian", 3),
    ("data:\n  prepare: {seed: '3'}\n", "projectfile_invalid", "data.prepare.seed", 4),
    ("data:\n  prepare: {eval_fraction: 0}\n", "projectfile_invalid",
     "data.prepare.eval_fraction", 4),
    ("data:\n  prepare: {eval_fraction: 1.0}\n", "projectfile_invalid",
     "data.prepare.eval_fraction", 4),
    ("data:\n  clean: {pii: drop}\n", "projectfile_invalid", "data.clean.pii", 4),
    ("data:\n  clean: {min_alpha_ratio: 2.0}\n", "projectfile_invalid",
     "data.clean.min_alpha_ratio", 4),
    ("data:\n  sources: [nope.jsonl]\n", "projectfile_invalid", "data.sources[0]", 4),
    ("data:\n  mapping: {mapper: nope, field_map: {}}\n", "projectfile_invalid",
     "data.mapping.mapper", 4),
    ("data:\n  mapping:\n    mapper: alpaca\n    field_map: {output: answer}\n",
     "projectfile_invalid", "data.mapping.field_map", 6),
    ("train:\n  recipe: {name: nope}\n", "projectfile_invalid", "train.recipe.name", 4),
    ("train:\n  recipe:\n    lora: {r: 0}\n", "projectfile_invalid", "train.recipe.lora.r", 5),
    ("eval:\n  pack: {name: nope}\n", "projectfile_invalid", "eval.pack.name", 4),
    ("eval:\n  pack: {limit: 0}\n", "projectfile_invalid", "eval.pack.limit", 4),
    ("eval:\n  pack:\n    gates:\n      - {id: g, metric: nope, gte: 0.5}\n",
     "projectfile_invalid", "eval.pack.gates[0].metric", 6),
    ("export:\n  formats:\n    - {format: safetensors}\n    - {format: safetensors, quant: q8_0}"
     "\n", "projectfile_invalid", "export.formats[1].quant", 6),
    ("export:\n  formats: [{format: onnx}]\n", "projectfile_invalid",
     "export.formats[0].format", 4),
    ("export: {formats: []}\n", "projectfile_invalid", "deploy", 1),
    ("deploy: yes please\n", "projectfile_invalid", "deploy", 3),
    ("project: {name: y}\n", "projectfile_invalid", "project", 3),  # given twice
]


@pytest.mark.parametrize(("tail", "code", "path", "line"), REFUSALS,
                         ids=[r[2] + ":" + r[1] for r in REFUSALS])
def test_refusals_name_code_path_and_line(tail, code, path, line):
    with pytest.raises(InputError) as exc:
        projectfile.parse("version: 1\nproject: {name: x}\n" + tail)
    assert (exc.value.code, exc.value.details["path"], exc.value.details["line"]) == (
        code, path, line)
    assert exc.value.message.startswith(f"brewslm.yaml:{line}: {path}: ")


@pytest.mark.parametrize(("text", "code", "path", "line"), [
    ("version: 2\nproject: {name: x}\n", "projectfile_version_unsupported", "version", 1),
    ("version: '1'\nproject: {name: x}\n", "projectfile_version_unsupported", "version", 1),
    ("project: {name: x}\n", "projectfile_invalid", "version", 1),
    ("version: 1\n", "projectfile_invalid", "project", 1),
    ("version: 1\nproject: {name: Bad Name}\n", "projectfile_invalid", "project.name", 2),
    ("version: 1\nproject: [x\n", "projectfile_invalid", "", 3),
    ("- version: 1\n", "projectfile_invalid", "", 1),
])
def test_top_level_refusals(text, code, path, line):
    with pytest.raises(InputError) as exc:
        projectfile.parse(text)
    assert (exc.value.code, exc.value.details["path"], exc.value.details["line"]) == (
        code, path, line)


def test_an_unknown_key_lists_the_keys_known_there():
    with pytest.raises(InputError) as exc:
        projectfile.parse("version: 1\nproject: {name: x, base: builtin:tiny}\n")
    assert exc.value.code == "projectfile_unknown_key"
    assert exc.value.details["known"] == ["name", "base_model", "description"]


# --- the CLI: exit codes, dry run, plans --------------------------------------------------------

def test_cli_refusals_exit_2_and_write_nothing(tmp_path):
    bad = write(tmp_path, "version: 1\nproject: {name: cli}\ntrain:\n  recipe:\n"
                          "    micro_btch: 4\n")
    error = call("apply", "-f", str(bad), code=2)["error"]
    assert (error["code"], error["details"]["path"], error["details"]["line"]) == (
        "projectfile_unknown_key", "train.recipe.micro_btch", 5)
    missing = call("apply", "-f", str(tmp_path / "none.yaml"), code=2)["error"]
    assert missing["code"] == "projectfile_not_found"
    assert call("project", "list")["projects"] == []


def test_dry_run_shows_the_plan_and_writes_nothing():
    out = call("apply", "-f", str(EXAMPLE), "--dry-run")
    assert (out["dry_run"], out["applied"]) == (True, False)
    assert actions(out["plan"]) == [(p, "create") for p in PARTS]
    assert call("project", "list")["projects"] == []
    text = runner.invoke(app, ["apply", "-f", str(EXAMPLE), "--dry-run"]).stdout
    assert "nothing written" in text and "runs no stage" in text


def test_an_edit_plans_updates_for_exactly_the_parts_it_touches(tmp_path):
    call("apply", "-f", str(EXAMPLE))
    edited = EXAMPLE.read_text().replace("pii: redact", "pii: warn").replace(
        "    # max_steps: 40", "    max_steps: 40").replace(
        "../src/brewslm/samples/tickets.jsonl", str(SAMPLE))
    out = call("apply", "-f", str(write(tmp_path, edited)), "--dry-run")
    changed = {"clean", "recipe"}
    assert actions(out["plan"]) == [(p, "update" if p in changed else "noop") for p in PARTS]
    recipe = next(e for e in out["plan"] if e["part"] == "recipe")
    assert (recipe["before"], recipe["after"]) == ({"name": "lora"},
                                                   {"name": "lora", "max_steps": 40})
    clean = next(e for e in out["plan"] if e["part"] == "clean")
    assert (clean["before"]["pii"], clean["after"]["pii"]) == ("redact", "warn")
    call("apply", "-f", str(write(tmp_path, edited)))
    assert project.get("tickets").settings["clean"]["pii"] == "warn"


# --- round trips through `brewslm config` ------------------------------------------------------

def test_apply_config_parse_round_trip_and_config_apply_is_noop(tmp_path):
    declared = projectfile.load(EXAMPLE)
    call("apply", "-f", str(EXAMPLE))
    text = runner.invoke(app, ["config", "-p", "tickets"]).stdout
    assert text.startswith("# brewslm.yaml for project tickets")
    assert yaml.safe_load(text) == declared
    assert projectfile.parse(text) == declared
    written = tmp_path / "back.yaml"
    assert call("config", "-p", "tickets", "-o", str(written))["path"] == str(written)
    assert written.read_text() == text
    out = call("apply", "-f", str(written))
    assert out["applied"] is False and actions(out["plan"]) == [(p, "noop") for p in PARTS]


def test_config_of_a_cli_made_project_applies_back_as_noop(tmp_path):
    call("project", "create", "plain", "--base-model", "builtin:tiny")
    call("project", "set", "plain", "clean", '{"min_answer_chars": 1}')
    config = call("config", "-p", "plain")["config"]
    assert config["data"]["clean"]["min_answer_chars"] == 1
    assert config["data"]["sources"] == [] and config["deploy"] is True
    written = write(tmp_path, projectfile.to_yaml(config))
    assert actions(call("apply", "-f", str(written))["plan"]) == [(p, "noop") for p in PARTS]
    assert project.get("plain").settings == {"clean": {"min_answer_chars": 1}}  # untouched


def test_stored_settings_the_schema_refuses_are_repaired_by_apply(tmp_path):
    call("project", "create", "hand", "--base-model", "builtin:tiny")
    call("project", "set", "hand", "clean", '{"min_answr_chars": 1}')
    error = call("config", "-p", "hand", code=2)["error"]
    assert (error["code"], error["details"]["path"]) == ("projectfile_unknown_key",
                                                         "data.clean.min_answr_chars")
    fixed = write(tmp_path, "version: 1\nproject: {name: hand, base_model: builtin:tiny}\n")
    out = call("apply", "-f", str(fixed))
    assert [p for p, a in actions(out["plan"]) if a != "noop"] == ["clean"]
    assert "min_answr_chars" not in project.get("hand").settings["clean"]


def test_apply_is_refused_while_a_stage_holds_the_project(tmp_path):
    call("apply", "-f", str(write(tmp_path, MINIMAL)))
    info = project.get("mini")
    edited = write(tmp_path, MINIMAL + "deploy: false\n")
    with locks.project_lock(info.dir, project="mini", stage="train", run_id="r1"):
        assert call("apply", "-f", str(edited), code=2)["error"]["code"] == "stage_locked"
    assert project.get("mini").settings["pipeline"]["deploy"] is True


# --- apply --run --------------------------------------------------------------------------------

def test_run_calls_the_autopilot_with_the_files_values(monkeypatch, tmp_path):
    seen = {}

    def fake_run_project(info, **kwargs):
        seen.update(kwargs, project=info.name)
        return {"status": "done", "steps": []}

    monkeypatch.setattr("brewslm.autopilot.run_project", fake_run_project)
    text = EXAMPLE.read_text().replace("../src/brewslm/samples/tickets.jsonl", str(SAMPLE))
    text = text.replace("    # max_steps: 40", "    max_steps: 40").replace(
        "    # limit: 20", "    limit: 20").replace("deploy: true", "deploy: false")
    out = call("apply", "-f", str(write(tmp_path, text)), "--run")
    assert out["stages_run"] is True and out["run"]["status"] == "done"
    seen.pop("say")
    assert seen == {"project": "tickets", "data": str(SAMPLE), "recipe": "lora",
                    "overrides": ["max_steps=40"], "pack": "default",
                    "eval_overrides": ["limit=20"], "deploy": False}


@pytest.mark.parametrize(("tail", "path"), [
    ("data: {sources: []}\n", "data.sources"),
    ("data:\n  sources: [SAMPLE]\n  mapping:\n    mapper: alpaca\n"
     "    field_map: {instruction: instruction, output: output}\n", "data.mapping"),
    ("data: {sources: [SAMPLE]}\nexport: {formats: [{format: hf}]}\n", "export.formats"),
])
def test_run_refuses_what_the_autopilot_cannot_honour_before_writing(tmp_path, tail, path):
    file = write(tmp_path, MINIMAL + tail.replace("SAMPLE", str(SAMPLE)))
    error = call("apply", "-f", str(file), "--run", code=2)["error"]
    assert (error["code"], error["details"]["path"]) == ("projectfile_run_unsupported", path)
    assert call("project", "list")["projects"] == []


def test_stored_settings_are_what_the_clean_stage_accepts(tmp_path):
    from brewslm.stages import data

    text = EXAMPLE.read_text().replace("../src/brewslm/samples/tickets.jsonl", str(SAMPLE))
    call("apply", "-f", str(write(tmp_path, text.replace("pii: redact", "pii: warn"))))
    info = project.get("tickets")
    data.ingest(info, str(SAMPLE))
    data.map_rows(info)
    cleaned = data.clean(info)
    assert cleaned.status == "succeeded" and cleaned.result["pii_policy"] == "warn"
