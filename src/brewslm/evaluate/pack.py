"""Eval packs: versioned YAML files of metrics, generation settings and gates.

    from brewslm.evaluate.pack import load_pack
    pack = load_pack("default")                       # or "strict", "fast", or "./mine.yaml"
    pack = load_pack("default", ["limit=20", "generation.max_new_tokens=32"])   # --set

The packaged packs live in packs/*.yaml beside this module, every key commented there. A user's
file may leave keys out: they come from the packaged pack `default` (a user's `gates` list
replaces the default's whole). A gate is {id, metric, required} and exactly one test:
  gte: X / lte: X              the candidate's aggregate is at least / at most X
  relative: X                  the candidate beats the base by at least X (and by more than
                               nothing), in the metric's better direction
  max_slice_regression: Y      no slice of the split loses more than Y against the base
A gate judges the eval split, or with `split: gold` the user's locked gold set (`--gold FILE`;
`gold_sha256` in a pack pins which file). Gate metrics are the pack's metrics, plus eval_loss and
perplexity when `loss` is on. Anything else is refused with InputError("eval_pack_invalid")
naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml

from brewslm.errors import InputError

CODE = "eval_pack_invalid"
PACKAGED = ("default", "strict", "fast")
LOSS_METRICS = {"eval_loss": False, "perplexity": False}  # name -> higher_is_better
GATE_TESTS = ("gte", "lte", "relative", "max_slice_regression")
TOP_KEYS = {"name", "version", "metrics", "metric_plugins", "loss", "slice_by", "limit",
            "generation", "gates", "description", "gold_sha256"}
GATE_SPLITS = ("eval", "gold")
GENERATION_KEYS = {"max_new_tokens": int, "batch_size": int, "greedy": bool,
                   "temperature": (int, float), "top_p": (int, float), "seed": int}


def load_pack(name_or_path: str | Path = "default", overrides: list[str] | tuple = ()) -> dict:
    """A packaged pack by name or a YAML file by path, completed, overridden and validated."""
    text = str(name_or_path)
    if text in PACKAGED:
        pack = _read_packaged(text)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            _refuse(f"Unknown eval pack {text!r}: use one of {', '.join(PACKAGED)} or the path "
                    "of a YAML pack file.", pack=text)
        own = _parse(path.read_text(encoding="utf-8"), str(path))
        if not isinstance(own, dict):
            _refuse(f"{path} must be a mapping of pack keys.", pack=text)
        pack = _merge(_read_packaged("default"), own)
    for item in overrides:
        _override(pack, item)
    return validate(pack)


def pack_hash(pack: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(pack, sort_keys=True).encode()).hexdigest()


def validate(pack: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(pack) - TOP_KEYS)
    if unknown:
        _refuse(f"Unknown eval pack key {unknown[0]!r}; known: {', '.join(sorted(TOP_KEYS))}.",
                key=unknown[0])
    if not isinstance(pack.get("metrics"), list) or not pack["metrics"]:
        _refuse("Pack key 'metrics' must be a non-empty list of metric names or "
                "{name: ..., params} mappings.", key="metrics")
    _check_generation(pack.get("generation") or {})
    limit = pack.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 1):
        _refuse(f"Pack key 'limit' must be a positive whole number or null, got {limit!r}.",
                key="limit")
    slice_by = pack.get("slice_by")
    if slice_by is not None and not (isinstance(slice_by, str)
                                     and slice_by.split(".", 1)[0] in ("meta", "json")
                                     and "." in slice_by):
        _refuse(f"Pack key 'slice_by' must be meta.KEY or json.KEY, got {slice_by!r}.",
                key="slice_by")
    pinned = pack.get("gold_sha256")
    if pinned is not None and not (isinstance(pinned, str) and len(pinned) == 64
                                   and all(c in "0123456789abcdef" for c in pinned)):
        _refuse("Pack key 'gold_sha256' must be the 64 hex digits of a sha256 (quote it), or "
                f"null; got {pinned!r}.", key="gold_sha256")
    names = {metric_name(m) for m in pack["metrics"]}
    if pack.get("loss"):
        names |= set(LOSS_METRICS)
    for i, gate in enumerate(pack.get("gates") or []):
        _check_gate(gate, i, names)
    return pack


def metric_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else str((spec or {}).get("name"))


# --- pieces ------------------------------------------------------------------------------------

def _check_generation(gen: dict[str, Any]) -> None:
    for key, value in gen.items():
        kind = GENERATION_KEYS.get(key)
        if kind is None:
            _refuse(f"Unknown eval pack key 'generation.{key}'; known: "
                    f"{', '.join(sorted(GENERATION_KEYS))}.", key=f"generation.{key}")
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            _refuse(f"Pack key 'generation.{key}' has the wrong type: {value!r}.",
                    key=f"generation.{key}")
        if key in ("max_new_tokens", "batch_size") and value < 1:
            _refuse(f"Pack key 'generation.{key}' must be at least 1.", key=f"generation.{key}")


def _check_gate(gate: Any, index: int, names: set[str]) -> None:
    where = f"gates[{index}]"
    if not isinstance(gate, dict) or "id" not in gate or "metric" not in gate:
        _refuse(f"{where} must be a mapping with id, metric and one of "
                f"{', '.join(GATE_TESTS)}.", key=where)
    tests = [t for t in GATE_TESTS if t in gate]
    if len(tests) != 1:
        _refuse(f"{where} ({gate['id']}) must have exactly one of {', '.join(GATE_TESTS)}; "
                f"it has {tests or 'none'}.", key=where)
    extra = sorted(map(str, set(gate) - {"id", "metric", "required", "split", *GATE_TESTS}))
    if extra:
        _refuse(f"{where} ({gate['id']}): unknown key {extra[0]!r}.", key=f"{where}.{extra[0]}")
    if gate.get("split", "eval") not in GATE_SPLITS:
        _refuse(f"{where} ({gate['id']}): split must be eval or gold, got {gate['split']!r}.",
                key=f"{where}.split")
    value = gate[tests[0]]
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(f"{where} ({gate['id']}): {tests[0]} must be a number.", key=where)
    if gate["metric"] not in names:
        _refuse(f"{where} ({gate['id']}): metric {gate['metric']!r} is not computed by this "
                f"pack; computed: {', '.join(sorted(names))}.", key=f"{where}.metric")
    if tests[0] == "max_slice_regression" and gate["metric"] in LOSS_METRICS:
        _refuse(f"{where} ({gate['id']}): slices are per-example metrics, not "
                f"{gate['metric']}.", key=where)


def _override(pack: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        _refuse(f"Override {item!r} is not KEY=VALUE (for example limit=20).", override=item)
    value = _parse(raw, f"--set {key}") if raw.strip() else None
    head, _, tail = key.partition(".")
    if tail:
        if head != "generation":
            _refuse(f"Only generation.* keys are nested; got {key!r}.", key=key)
        pack.setdefault("generation", {})[tail] = value
    else:
        pack[head] = value


def _read_packaged(name: str) -> dict[str, Any]:
    text = resources.files("brewslm.evaluate").joinpath("packs", f"{name}.yaml").read_text(
        encoding="utf-8")
    return _parse(text, f"packaged pack {name}")


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in own.items():
        if key == "generation" and isinstance(value, dict):
            out["generation"] = {**out.get("generation", {}), **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _refuse(f"{where} is not valid YAML: {exc}", where=where)


def _refuse(message: str, **details: Any) -> NoReturn:
    raise InputError(CODE, message, **details)
