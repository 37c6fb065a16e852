"""Recipes: packaged ones load and validate, user files inherit, overrides parse and refuse."""

from __future__ import annotations

import sys
from importlib import resources

import pytest

from brewslm.errors import InputError
from brewslm.train.recipe import (
    PACKAGED,
    SCHEMA,
    apply_overrides,
    load_recipe,
    recipe_hash,
    validate,
)

DOCUMENTED = ["method", "lora.r", "lora.alpha", "lora.dropout", "lora.target_modules",
              "learning_rate", "lr_scheduler", "warmup_steps", "epochs", "max_steps",
              "micro_batch", "grad_accumulation", "max_length", "packing", "seed", "eval_every",
              "save_every", "early_stopping_patience", "wall_clock_budget_s", "logging_every"]


def refused(call, *args) -> InputError:
    with pytest.raises(InputError) as caught:
        call(*args)
    assert caught.value.code == "recipe_invalid"
    assert caught.value.exit_code == 2
    return caught.value


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_recipes_load_with_their_method(name):
    recipe = load_recipe(name)
    assert recipe["method"] == name
    assert set(DOCUMENTED) - {"lora.r", "lora.alpha", "lora.dropout",
                              "lora.target_modules"} <= set(recipe) | {"method"}


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_recipe_files_open_with_the_command_and_comment_every_key(name):
    text = resources.files("brewslm.train").joinpath("recipes", f"{name}.yaml").read_text()
    first = text.splitlines()[0]
    assert first.startswith(f"# brewslm train -p NAME --recipe {name}") and "--set" in first
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert "#" in line, f"{name}.yaml: key without a comment: {line!r}"


def test_lora_recipe_holds_the_values_that_learned():
    recipe = load_recipe("lora")
    assert recipe["lora"] == {"r": 32, "alpha": 64, "dropout": 0.0,
                              "target_modules": "all-linear"}
    assert (recipe["learning_rate"], recipe["lr_scheduler"], recipe["warmup_steps"],
            recipe["micro_batch"], recipe["epochs"]) == (0.001, "cosine", 10, 16, 10)


def test_every_documented_key_is_in_the_schema():
    assert set(DOCUMENTED) <= set(SCHEMA)


def test_user_file_inherits_missing_keys_from_its_method(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("method: full\nlearning_rate: 5.0e-5\nepochs: 1\n")
    recipe = load_recipe(path)
    assert recipe == {**load_recipe("full"), "learning_rate": 5e-5, "epochs": 1}
    path.write_text("lora:\n  r: 4\n")  # no method: lora; the section merges key by key
    recipe = load_recipe(str(path))
    assert recipe["method"] == "lora"
    assert recipe["lora"] == {**load_recipe("lora")["lora"], "r": 4}


def test_unknown_recipe_name_and_bad_files_are_refused(tmp_path):
    error = refused(load_recipe, "lorax")
    assert "lora, full, qlora" in error.message
    bad = tmp_path / "bad.yaml"
    for text, needle in [("method: [unclosed\n", "YAML"), ("- a list\n", "mapping"),
                         ("learnin_rate: 0.1\n", "'learnin_rate'"),
                         ("lora:\n  rank: 8\n", "'lora.rank'"), ("lora: 8\n", "section"),
                         ("method: dpo\n", "method")]:
        bad.write_text(text)
        assert needle in refused(load_recipe, bad).message, text


def test_overrides_parse_yaml_scalars():
    recipe = apply_overrides(load_recipe("lora"), [
        "max_steps=20", "lora.r=8", "learning_rate=1e-3", "packing=true",
        "wall_clock_budget_s=null", "lora.target_modules=[q_proj, v_proj]", "eval_every=",
        "epochs=1.5", "max_length=1e3"])
    assert recipe["max_steps"] == 20 and recipe["lora"]["r"] == 8
    assert recipe["learning_rate"] == 0.001 and recipe["packing"] is True
    assert recipe["wall_clock_budget_s"] is None and recipe["eval_every"] is None
    assert recipe["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert recipe["epochs"] == 1.5 and recipe["max_length"] == 1000


def test_overrides_leave_the_input_alone():
    recipe = load_recipe("lora")
    apply_overrides(recipe, ["lora.r=8", "seed=3"])
    assert recipe == load_recipe("lora")


def test_unknown_override_keys_are_refused_naming_the_path():
    recipe = load_recipe("lora")
    assert "'lora.rank'" in refused(apply_overrides, recipe, ["lora.rank=8"]).message
    assert "'optimizer'" in refused(apply_overrides, recipe, ["optimizer=sgd"]).message
    assert "'lora.r.x'" in refused(apply_overrides, recipe, ["lora.r.x=1"]).message
    assert "KEY=VALUE" in refused(apply_overrides, recipe, ["max_steps"]).message


@pytest.mark.parametrize("override, needle", [
    ("learning_rate=fast", "a number"), ("learning_rate=0", "> 0"), ("lora.r=2.5", "whole"),
    ("micro_batch=0", "> 0"), ("packing=maybe", "true or false"), ("method=dpo", "one of"),
    ("lora.dropout=1", "< 1"), ("lr_scheduler=step", "one of"), ("seed=null", "null"),
    ("lora.target_modules=[]", "all-linear"), ("warmup_steps=true", "a number"),
])
def test_bad_override_values_are_refused_naming_the_key(override, needle):
    error = refused(apply_overrides, load_recipe("lora"), [override])
    assert needle in error.message and repr(override.split("=")[0]) in error.message
    assert error.details["key"] == override.split("=")[0]


def test_validate_and_hash():
    recipe = load_recipe("lora")
    assert validate(dict(recipe)) == recipe
    assert recipe_hash(recipe) == recipe_hash(load_recipe("lora"))
    assert recipe_hash(recipe) != recipe_hash(apply_overrides(recipe, ["seed=1"]))
    del recipe["method"]
    assert "method" in refused(validate, recipe).message


def test_reading_a_recipe_does_not_import_torch():
    import subprocess

    code = ("import sys; from brewslm.train import load_recipe; load_recipe('lora'); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
