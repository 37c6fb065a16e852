"""Training recipes: YAML files of training knobs, packaged (lora, full, qlora) or the user's own.

    from brewslm.train.recipe import apply_overrides, load_recipe
    recipe = load_recipe("lora")                         # or "full", "qlora", or "./mine.yaml"
    recipe = apply_overrides(recipe, ["max_steps=20", "lora.r=8"])   # what --set KEY=VALUE does
    recipe["learning_rate"], recipe["lora"]["r"]

The packaged recipes live in recipes/*.yaml beside this module, each key commented there. A
user's file may leave keys out: they come from the packaged recipe of the file's `method`
(lora when it names none). Every key path must be one SCHEMA knows, and every value must have
the type and range SCHEMA gives it; anything else is refused with InputError("recipe_invalid")
naming the key path. Override values are read as YAML scalars (`true`, `null`, `8`, `[q_proj,
v_proj]`); numbers written as `1e-3` (a string to YAML 1.1) are accepted as numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml

from brewslm.errors import InputError

CODE = "recipe_invalid"
PACKAGED = ("lora", "full", "qlora")
METHODS = ("lora", "qlora", "full")


@dataclass(frozen=True)
class Spec:
    """What one key accepts: a kind, an optional range or choices, and whether null is ok."""

    kind: str  # int, number, bool, choice, modules
    minimum: float | None = None
    below: float | None = None  # exclusive upper bound
    positive: bool = False  # strictly greater than minimum (0)
    choices: tuple[Any, ...] = ()
    nullable: bool = False


def _positive(kind: str, nullable: bool = False) -> Spec:
    return Spec(kind, minimum=0, positive=True, nullable=nullable)


SCHEMA: dict[str, Spec] = {
    "method": Spec("choice", choices=METHODS),
    "lora.r": _positive("int"),
    "lora.alpha": _positive("number"),
    "lora.dropout": Spec("number", minimum=0, below=1),
    "lora.target_modules": Spec("modules"),
    "quantization.bits": Spec("choice", choices=(4, 8)),
    "quantization.quant_type": Spec("choice", choices=("nf4", "fp4")),
    "quantization.double_quant": Spec("bool"),
    "learning_rate": _positive("number"),
    "lr_scheduler": Spec("choice", choices=("cosine", "linear", "constant",
                                            "constant_with_warmup")),
    "warmup_steps": Spec("int", minimum=0),
    "weight_decay": Spec("number", minimum=0),
    "max_grad_norm": _positive("number", nullable=True),
    "epochs": _positive("number"),
    "max_steps": _positive("int", nullable=True),
    "micro_batch": _positive("int"),
    "grad_accumulation": _positive("int"),
    "max_length": _positive("int"),
    "packing": Spec("bool"),
    "precision": Spec("choice", choices=("auto", "bf16", "fp16", "fp32")),
    "gradient_checkpointing": Spec("bool"),
    "device": Spec("choice", choices=("auto", "cpu", "cuda")),
    "cpu_allocator": Spec("choice", choices=("glibc", "tuned")),
    "seed": Spec("int", minimum=0),
    "eval_every": _positive("int", nullable=True),
    "save_every": _positive("int", nullable=True),
    "early_stopping_patience": _positive("int", nullable=True),
    "wall_clock_budget_s": _positive("number", nullable=True),
    "logging_every": _positive("int"),
}
SECTIONS = {path.split(".")[0] for path in SCHEMA if "." in path}


def load_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """A packaged recipe by name, or a YAML file by path, completed and validated."""
    text = str(name_or_path)
    if text in PACKAGED:
        return validate(_read_packaged(text))
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(CODE, f"Unknown recipe {text!r}: use one of {', '.join(PACKAGED)} or "
                         "the path of a YAML recipe file.", recipe=text, packaged=list(PACKAGED))
    own = _parse_yaml(path.read_text(encoding="utf-8"), str(path))
    _check_known(own)
    method = own.get("method", "lora")
    if method not in METHODS:
        raise InputError(CODE, f"Recipe key 'method' must be one of {', '.join(METHODS)}, got "
                         f"{method!r}.", key="method", value=method)
    return validate(_merge(_read_packaged(method), own))


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of recipe with each "a.b=value" applied; the result is validated."""
    out = copy.deepcopy(recipe)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(CODE, f"Override {item!r} is not KEY=VALUE (for example "
                             "lora.r=8).", override=item)
        _require_known(key)
        value = _parse_yaml(raw, f"--set {key}") if raw.strip() else None
        _set(out, key, value)
    return validate(out)


def validate(recipe: dict[str, Any]) -> dict[str, Any]:
    """Check every key path and value; normalises numbers in place and returns recipe."""
    _check_known(recipe)
    if "method" not in recipe:
        raise InputError(CODE, "Recipe key 'method' is missing.", key="method")
    for path, value in _leaves(recipe):
        _set(recipe, path, _checked(path, value, SCHEMA[path]))
    return recipe


def recipe_hash(recipe: dict[str, Any]) -> str:
    """sha256 of the recipe's canonical JSON: the same knobs give the same hash."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- reading -----------------------------------------------------------------------------------

def _read_packaged(name: str) -> dict[str, Any]:
    text = resources.files("brewslm.train").joinpath("recipes", f"{name}.yaml").read_text(
        encoding="utf-8")
    return _parse_yaml(text, f"packaged recipe {name}")


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(CODE, f"{where} is not valid YAML: {exc}", where=where) from None


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """base with own's keys on top, one level into sections."""
    out = copy.deepcopy(base)
    for key, value in own.items():
        if key in SECTIONS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- key paths ---------------------------------------------------------------------------------

def _check_known(recipe: Any) -> None:
    if not isinstance(recipe, dict):
        raise InputError(CODE, f"A recipe must be a mapping of keys to values, got "
                         f"{type(recipe).__name__}.")
    for key, value in recipe.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise InputError(CODE, f"Recipe key {key!r} must be a section of keys.",
                                 key=str(key))
            for sub in value:
                _require_known(f"{key}.{sub}")
        else:
            _require_known(str(key))


def _require_known(path: str) -> None:
    if path not in SCHEMA:
        raise InputError(CODE, f"Unknown recipe key {path!r}; known keys: "
                         f"{', '.join(sorted(SCHEMA))}.", key=path)


def _leaves(recipe: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for key, value in recipe.items():
        if key in SECTIONS:
            out += [(f"{key}.{sub}", v) for sub, v in value.items()]
        else:
            out.append((key, value))
    return out


def _set(recipe: dict[str, Any], path: str, value: Any) -> None:
    head, _, tail = path.partition(".")
    if tail:
        recipe.setdefault(head, {})[tail] = value
    else:
        recipe[head] = value


# --- values ------------------------------------------------------------------------------------

def _checked(path: str, value: Any, spec: Spec) -> Any:
    """value, normalised (for example "1e-3" -> 0.001), or InputError naming path."""
    if value is None:
        if spec.nullable:
            return None
        _refuse(path, value, "a value (null is not allowed)")
    checker = {"int": _as_int, "number": _as_number, "bool": _as_bool,
               "choice": _as_choice, "modules": _as_modules}[spec.kind]
    return checker(path, value, spec)


def _as_number(path: str, value: Any, spec: Spec) -> float | int:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as text
        try:
            value = float(value)
        except ValueError:
            _refuse(path, value, "a number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(path, value, "a number")
    _check_range(path, value, spec)
    return value


def _as_int(path: str, value: Any, spec: Spec) -> int:
    number = _as_number(path, value, Spec("number"))
    if not float(number).is_integer():
        _refuse(path, value, "a whole number")
    _check_range(path, int(number), spec)
    return int(number)


def _check_range(path: str, value: float, spec: Spec) -> None:
    if spec.minimum is not None and (value < spec.minimum
                                     or (spec.positive and value <= spec.minimum)):
        _refuse(path, value, f"{'>' if spec.positive else '>='} {spec.minimum}")
    if spec.below is not None and value >= spec.below:
        _refuse(path, value, f"< {spec.below}")


def _as_bool(path: str, value: Any, spec: Spec) -> bool:
    if not isinstance(value, bool):
        _refuse(path, value, "true or false")
    return value


def _as_choice(path: str, value: Any, spec: Spec) -> Any:
    if value not in spec.choices or isinstance(value, bool):
        _refuse(path, value, f"one of {', '.join(map(str, spec.choices))}")
    return value


def _as_modules(path: str, value: Any, spec: Spec) -> str | list[str]:
    if value == "all-linear":
        return value
    if (isinstance(value, list) and value
            and all(isinstance(name, str) and name for name in value)):
        return value
    _refuse(path, value, "all-linear or a list of module names such as [q_proj, v_proj]")


def _refuse(path: str, value: Any, expected: str) -> NoReturn:
    raise InputError(CODE, f"Recipe key {path!r} must be {expected}, got {value!r}.",
                     key=path, value=value if isinstance(value, str | int | float | bool)
                     else repr(value))
