"""Stage 08's building blocks: recipes (the training knobs) and the data they train on.

    from brewslm.train import load_recipe, apply_overrides, load_split, PadCollator
    recipe = apply_overrides(load_recipe("lora"), ["max_steps=20"])
    train = load_split(manifest_dir, "train", max_length=recipe["max_length"])

recipe.py loads and validates the YAML recipes in recipes/ (lora, full, qlora) or a user's
file and applies `--set KEY=VALUE` overrides; data.py turns a manifest split into a torch
Dataset and pads its batches. stages/train.py wires them into the stage. The data names are
imported on first use, so that reading a recipe (the CLI checking --set) does not load torch.
"""

from typing import Any

from brewslm.train.recipe import (
    PACKAGED,
    SCHEMA,
    apply_overrides,
    load_recipe,
    recipe_hash,
    validate,
)

__all__ = [
    "PACKAGED",
    "SCHEMA",
    "PadCollator",
    "TokenizedSplit",
    "apply_overrides",
    "load_recipe",
    "load_split",
    "packed",
    "prompt_and_answer",
    "recipe_hash",
    "validate",
]

_DATA_NAMES = {"PadCollator", "TokenizedSplit", "load_split", "packed", "prompt_and_answer"}


def __getattr__(name: str) -> Any:
    if name in _DATA_NAMES:
        from brewslm.train import data

        return getattr(data, name)
    raise AttributeError(f"module 'brewslm.train' has no attribute {name!r}")
