"""Mappers: turn a source record into one canonical training row, or say why not.

The built-in mappers are in BUILTIN_MAPPERS (by id); plugin mappers come from modules that
expose a `MAPPERS` list. A mapping is a mapper id plus a field map (slot -> source field, a
dotted path reaching into nested objects), checked before any row is mapped:

    mapper = get_mapper("alpaca")
    field_map = check_field_map(mapper, {"instruction": "prompt", "output": "meta.answer"})
    row, code = mapper.map(record, field_map)   # (row, None) or (None, reason_code)

The schema, the protocol and introspection's types are in mappers/base.py; the introspection
itself (profile_fields, propose) in mappers/introspect.py.
"""

from __future__ import annotations

import importlib
from typing import Any

from brewslm.errors import InputError
from brewslm.mappers.base import Mapper
from brewslm.mappers.chat import OPENAI_MESSAGES, SHAREGPT
from brewslm.mappers.instruction import ALPACA, PROMPT_COMPLETION, QUESTION_ANSWER
from brewslm.mappers.preference import PREFERENCE
from brewslm.mappers.text import CLASSIFICATION, TEXT

BUILTIN_MAPPERS: dict[str, Mapper] = {m.id: m for m in (
    ALPACA, SHAREGPT, OPENAI_MESSAGES, PROMPT_COMPLETION, QUESTION_ANSWER, PREFERENCE, TEXT,
    CLASSIFICATION)}

__all__ = ["BUILTIN_MAPPERS", "check_field_map", "get_mapper", "load_plugin_mappers"]


def get_mapper(mapper_id: str, extra: dict[str, Mapper] | None = None) -> Mapper:
    """The mapper with that id among the built-ins and `extra` (plugins); else mapper_unknown."""
    known = {**BUILTIN_MAPPERS, **(extra or {})}
    if isinstance(mapper_id, str) and mapper_id in known:
        return known[mapper_id]
    raise InputError("mapper_unknown", f"no mapper {mapper_id!r}; known mappers: "
                     f"{', '.join(sorted(known))}", mapper=mapper_id, known=sorted(known))


def check_field_map(mapper: Mapper, field_map: Any) -> dict[str, str]:
    """The field map, checked against the mapper's slots; field_map_invalid if it is not a
    dict of slot -> field name, names an unknown slot, or lacks a required one."""
    slots = (f"{mapper.id} has slots {', '.join(mapper.slots)} "
             f"(required: {', '.join(mapper.required)})")

    def invalid(problem: str) -> InputError:
        return InputError("field_map_invalid", f"{problem}; {slots}", mapper=mapper.id,
                          slots=list(mapper.slots), required=list(mapper.required))

    if not isinstance(field_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in field_map.items()):
        raise invalid("the field map must be a JSON object of slot -> source field name")
    unknown = [slot for slot in field_map if slot not in mapper.slots]
    if unknown:
        raise invalid(f"unknown slot(s): {', '.join(unknown)}")
    missing = [slot for slot in mapper.required if slot not in field_map]
    if missing:
        raise invalid(f"required slot(s) not mapped: {', '.join(missing)}")
    return dict(field_map)


def load_plugin_mappers(module_names: list[str]) -> tuple[dict[str, Mapper], list[dict]]:
    """Import each module and collect the mappers in its `MAPPERS` list.

    Returns (mappers by id, errors). A module that does not import, has no MAPPERS list, or
    lists an object that is not a mapper (or reuses a taken id) adds {"module", "error"} to
    errors — the caller emits extension_load_failed — and the other mappers still load.
    """
    found: dict[str, Mapper] = {}
    errors: list[dict] = []
    for name in module_names:
        try:
            module = importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a plugin's failure must not stop the others
            errors.append({"module": str(name), "error": f"{type(exc).__name__}: {exc}"})
            continue
        objects = getattr(module, "MAPPERS", None)
        if not isinstance(objects, list | tuple):
            errors.append({"module": name, "error": "the module has no MAPPERS list"})
            continue
        for i, obj in enumerate(objects):
            problem = _mapper_problem(obj, taken={**BUILTIN_MAPPERS, **found})
            if problem:
                errors.append({"module": name, "error": f"MAPPERS[{i}]: {problem}"})
            else:
                found[obj.id] = obj
    return found, errors


def _mapper_problem(obj: Any, taken: dict[str, Mapper]) -> str | None:
    """Why `obj` does not look like a Mapper (None when it does)."""
    try:
        mapper_id, slots = getattr(obj, "id", None), getattr(obj, "slots", None)
        required, map_fn = getattr(obj, "required", None), getattr(obj, "map", None)
    except Exception as exc:  # a property that raises: the object is broken, not the loader
        return f"reading its attributes raised {type(exc).__name__}: {exc}"
    if not isinstance(mapper_id, str) or not mapper_id:
        return "it has no id (a non-empty string)"
    if not isinstance(slots, list | tuple) or not all(isinstance(s, str) for s in slots):
        return f"{mapper_id}: slots is not a list of slot names"
    if not isinstance(required, list | tuple) or not all(s in slots for s in required):
        return f"{mapper_id}: required is not a list of its slots"
    if not callable(map_fn):
        return f"{mapper_id}: it has no map(record, field_map) method"
    if mapper_id in taken:
        return f"{mapper_id}: the id is already taken by another mapper"
    return None
