"""Introspection: what the sampled records look like, and which mapping fits them best.

The introspect stage calls both on a sample of the snapshot:

    fields = profile_fields(records)        # one FieldProfile per top-level field
    hypotheses = propose(records)           # ranked, best first; auto-pick the first only if
                                            # its confidence >= AUTO_PICK_THRESHOLD

For each built-in mapper, `propose` finds a field map by field names (conventional names, then
common aliases) and, for required slots no name fills, by field kind (a list of {role, content}
under any name is a conversation). It then dry-runs the mapper on the sample, so a mapping that
would fail at tokenization time fails here, record by record. Confidence is how well the fields
fit (names over kinds, minus a penalty for each field that looks meaningful but the mapping
leaves unused) times the square root of the sample's accept rate: a few defective records (map
rejects them, each with its reason) do not sink a clear mapping, but with 60% accepted even a
perfect name match stays below 0.8 (sqrt(0.6) = 0.77). The richer mapping wins an ambiguous shape:
classification over text when there is a label, preference over prompt_completion when there
are chosen and rejected answers. Everything here is deterministic: same records, same answer.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from brewslm.mappers import BUILTIN_MAPPERS
from brewslm.mappers.base import FieldProfile, Hypothesis, Mapper

AUTO_PICK_THRESHOLD = 0.8

EXAMPLES, EXAMPLE_CHARS = 3, 80

# --- profiling ---------------------------------------------------------------------------------

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
# A file path: no spaces, at least one separator, and a root ("/", "./", "~/", "C:\\") or an
# extension ("images/cat.png"); "yes/no" or "and/or" are not paths.
_ROOTED = re.compile(r"^(?:[a-zA-Z]:[\\/]|\.{1,2}[\\/]|~[\\/]|/)\S*$")
_WITH_EXT = re.compile(r"^\S*[\\/]\S*\.[A-Za-z0-9]{1,5}$")
_SHAPE_ORDER = ("chat", "turns", "string", "number", "boolean", "list", "object")


def profile_fields(records: list[dict]) -> list[FieldProfile]:
    """One profile per top-level field seen in the sample, in first-seen order."""
    names: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            names.update((k, None) for k in record if isinstance(k, str))
    return [_profile(name, [r.get(name) if isinstance(r, dict) else None for r in records])
            for name in names]


def _profile(name: str, values: list[Any]) -> FieldProfile:
    present = [v for v in values if v is not None]
    filled = [v for v in present if not _blank(v)]
    return FieldProfile(name=name, kind=_kind(filled),
                        present=round(len(present) / len(values), 4) if values else 0.0,
                        distinct=len({_key(v) for v in present}), examples=_examples(present))


def _blank(value: Any) -> bool:
    return value in ("", [], {}) or (isinstance(value, str) and not value.strip())


def _key(value: Any) -> str:
    """A hashable stand-in for a value, for counting distinct values."""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _examples(present: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for value in present:
        if len(seen) == EXAMPLES:
            break
        seen.setdefault(_key(value), value)
    return [_cut(v) for v in seen.values()]


def _cut(value: Any) -> Any:
    """Strings cut to 80 characters; lists and objects shown as JSON text, cut the same way,
    so that a report never carries a whole conversation."""
    if isinstance(value, list | dict):
        value = _key(value)
    return value[:EXAMPLE_CHARS] if isinstance(value, str) else value


def _shape(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return _list_shape(value)
    return "object"


def _list_shape(value: list[Any]) -> str:
    """chat ({role, content} dicts), turns ({from, value} dicts) or a plain list."""
    dicts = [e for e in value if isinstance(e, dict)]
    if len(dicts) * 2 < len(value):
        return "list"
    if sum("role" in d for d in dicts) * 2 >= len(dicts):
        return "chat"
    if sum("from" in d for d in dicts) * 2 >= len(dicts):
        return "turns"
    return "list"


def _kind(filled: list[Any]) -> str:
    if not filled:
        return "empty"
    shapes = Counter(_shape(v) for v in filled)
    # The most common shape wins; a fixed order breaks ties, so the kind is deterministic.
    shape = max(_SHAPE_ORDER, key=lambda s: (shapes[s], -_SHAPE_ORDER.index(s)))
    values = [v for v in filled if _shape(v) == shape]
    if shape == "string":
        return _string_kind(values)
    if shape == "number":
        ints = all(isinstance(v, int) for v in values)
        return "categorical" if ints and _few_distinct(values) else "numeric"
    return {"chat": "chat_messages", "turns": "role_turns", "boolean": "boolean",
            "list": "list", "object": "object"}[shape]


def _few_distinct(values: list[Any]) -> bool:
    distinct = len(set(values))
    return distinct <= 50 and (distinct <= 3 or distinct * 2 <= len(values))


def _string_kind(values: list[str]) -> str:
    if _share(values, lambda s: _is_path(s)) >= 0.8:
        return "path"
    if _share(values, lambda s: len(s.split()) >= 3 or len(s) > 50) >= 0.5:
        return "text"
    # Short strings: labels when few distinct values repeat, else (names, ids, short answers)
    # free text.
    return "categorical" if _few_distinct(values) else "text"


def _is_path(value: str) -> bool:
    return bool(_URL.match(value) or _ROOTED.match(value) or _WITH_EXT.match(value))


def _share(values: list[Any], test: Any) -> float:
    return sum(1 for v in values if test(v)) / len(values)


# --- proposing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    names: tuple[str, ...]  # the conventional name first, then common aliases (normalized)
    kinds: tuple[str, ...]  # the field kinds that fit the slot
    by_kind: tuple[str, ...] = ()  # kinds that may fill a required slot that no name fills


TEXTY = ("text", "categorical")
_SYSTEM = Slot(("system", "systemprompt", "sys"), TEXTY)
_TOOLS = Slot(("tools", "functions"), ("list", "object", "text"))

SLOTS: dict[str, dict[str, Slot]] = {
    "alpaca": {
        "instruction": Slot(("instruction", "instructions", "task"), TEXTY, ("text",)),
        "input": Slot(("input", "inputs", "context"), TEXTY),
        "output": Slot(("output", "response", "outputs"), TEXTY, ("text",)),
        "system": _SYSTEM},
    "sharegpt": {
        "conversations": Slot(("conversations", "conversation", "dialog", "dialogue", "turns"),
                              ("role_turns",), ("role_turns",)),
        "system": _SYSTEM, "tools": _TOOLS},
    "openai_messages": {
        "messages": Slot(("messages", "chat", "dialog", "conversation"), ("chat_messages",),
                         ("chat_messages",)),
        "tools": _TOOLS},
    "prompt_completion": {
        "prompt": Slot(("prompt",), TEXTY, ("text",)),
        "completion": Slot(("completion", "response", "target", "continuation"), TEXTY,
                           ("text",)),
        "system": _SYSTEM},
    "question_answer": {
        "question": Slot(("question", "query", "q"), TEXTY, ("text",)),
        "answer": Slot(("answer", "response", "a"), TEXTY, ("text",)),
        "context": Slot(("context", "passage", "document"), TEXTY),
        "system": _SYSTEM},
    "preference": {
        "prompt": Slot(("prompt", "question", "instruction", "query", "input"), TEXTY),
        "chosen": Slot(("chosen", "preferred", "chosenresponse", "winner"),
                       (*TEXTY, "chat_messages", "role_turns")),
        "rejected": Slot(("rejected", "dispreferred", "rejectedresponse", "loser"),
                         (*TEXTY, "chat_messages", "role_turns")),
        "system": _SYSTEM},
    "text": {
        "text": Slot(("text", "content", "document", "body", "passage"), ("text",), ("text",))},
    "classification": {
        "text": Slot(("text", "sentence", "content", "document", "body", "review"), ("text",),
                     ("text",)),
        "label": Slot(("label", "labels", "category", "class", "sentiment", "intent"),
                      ("categorical", "numeric", "boolean", "text"), ("categorical",)),
        "system": _SYSTEM},
}

# How well a field fits a slot: its conventional name, an alias, a name whose values have the
# wrong kind, or only the kind (a conversation's structure says more than a string's).
NAME_FIT, ALIAS_FIT, NAME_ONLY_FIT = 1.0, 0.9, 0.6
KIND_FIT = {"chat_messages": 0.85, "role_turns": 0.85, "text": 0.5, "categorical": 0.5}
# What an unused field costs a mapping: leaving a conversation unused means the shape is
# probably another one; a field with a known slot name (a label, a rejected answer) is a
# smaller hint.
UNUSED_CONVERSATION, UNUSED_KNOWN_NAME = 0.25, 0.1
KNOWN_NAMES = frozenset(n for slots in SLOTS.values() for s in slots.values() for n in s.names)


@dataclass(frozen=True)
class Match:
    field: str
    fit: float
    by: str  # "name" or "kind"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def propose(records: list[dict]) -> list[Hypothesis]:
    """Ranked mapping hypotheses (best first, ties by mapper id) that accept some records."""
    if not records:
        return []
    profiles = profile_fields(records)
    hypotheses = [h for mapper_id, slots in SLOTS.items()
                  if (h := _hypothesis(BUILTIN_MAPPERS[mapper_id], slots, profiles, records))]
    return sorted(hypotheses, key=lambda h: (-h.confidence, h.mapper))


def _hypothesis(mapper: Mapper, slots: dict[str, Slot], profiles: list[FieldProfile],
                records: list[dict]) -> Hypothesis | None:
    matches = _match_slots(mapper, slots, profiles)
    if matches is None:
        return None
    field_map = {slot: m.field for slot, m in matches.items()}
    field_map, accepted, reasons = _best_dry_run(mapper, field_map, records)
    if not accepted:
        return None
    rate = accepted / len(records)
    fit = _fit(mapper, matches, field_map, profiles)
    confidence = round(max(0.0, min(1.0, fit * math.sqrt(rate))), 4)
    return Hypothesis(mapper=mapper.id, field_map=field_map, confidence=confidence,
                      rationale=_rationale(mapper, matches, field_map, accepted, len(records),
                                           reasons),
                      sample_accept_rate=round(rate, 4))


def _match_slots(mapper: Mapper, slots: dict[str, Slot],
                 profiles: list[FieldProfile]) -> dict[str, Match] | None:
    """Slot -> field: every slot by name first, then unfilled required slots by kind (so a
    kind match never takes a field another slot names); None if a required slot stays empty."""
    matches: dict[str, Match] = {}
    for slot, spec in slots.items():
        match = _by_name(spec, profiles, {m.field for m in matches.values()})
        if match:
            matches[slot] = match
    for slot in mapper.required:
        if slot not in matches:
            match = _by_kind(slots[slot], profiles, {m.field for m in matches.values()})
            if match is None:
                return None
            matches[slot] = match
    return {slot: matches[slot] for slot in mapper.slots if slot in matches}


def _by_name(spec: Slot, profiles: list[FieldProfile], used: set[str]) -> Match | None:
    for rank, alias in enumerate(spec.names):
        for p in profiles:
            if p.name not in used and _norm(p.name) == alias:
                fits = p.kind in spec.kinds or p.kind == "empty"
                fit = (NAME_FIT if rank == 0 else ALIAS_FIT) if fits else NAME_ONLY_FIT
                return Match(p.name, fit, "name")
    return None


def _by_kind(spec: Slot, profiles: list[FieldProfile], used: set[str]) -> Match | None:
    candidates = [p for p in profiles if p.name not in used and p.kind in spec.by_kind]
    if not candidates:
        return None
    # The field present in most records; the first such field on a tie (profiles keep order).
    best = max(candidates, key=lambda p: (p.present, -profiles.index(p)))
    return Match(best.name, KIND_FIT[best.kind], "kind")


def _dry_run(mapper: Mapper, field_map: dict[str, str],
             records: list[dict]) -> tuple[int, Counter[str]]:
    accepted, reasons = 0, Counter[str]()
    for record in records:
        row, code = mapper.map(record, field_map)
        if row is not None:
            accepted += 1
        else:
            reasons[str(code)] += 1
    return accepted, reasons


def _best_dry_run(mapper: Mapper, field_map: dict[str, str],
                  records: list[dict]) -> tuple[dict[str, str], int, Counter[str]]:
    """Dry-run the map; drop an optional slot when the sample maps better without it (a
    'system' column that is sometimes a number should not sink the whole mapping)."""
    accepted, reasons = _dry_run(mapper, field_map, records)
    for slot in [s for s in field_map if s not in mapper.required]:
        trial = {s: f for s, f in field_map.items() if s != slot}
        trial_accepted, trial_reasons = _dry_run(mapper, trial, records)
        if trial_accepted > accepted:
            field_map, accepted, reasons = trial, trial_accepted, trial_reasons
    return field_map, accepted, reasons


def _fit(mapper: Mapper, matches: dict[str, Match], field_map: dict[str, str],
         profiles: list[FieldProfile]) -> float:
    """Mean fit of the required slots, less the cost of the meaningful fields left unused."""
    fit = sum(matches[s].fit for s in mapper.required) / len(mapper.required)
    used = set(field_map.values())
    for p in profiles:
        if p.name in used or p.kind == "empty":
            continue
        if p.kind in ("chat_messages", "role_turns"):
            fit -= UNUSED_CONVERSATION
        elif _norm(p.name) in KNOWN_NAMES:
            fit -= UNUSED_KNOWN_NAME
    return fit


def _rationale(mapper: Mapper, matches: dict[str, Match], field_map: dict[str, str],
               accepted: int, total: int, reasons: Counter[str]) -> str:
    pairs = ", ".join(f"{slot} <- {field!r} (by {matches[slot].by})"
                      for slot, field in field_map.items())
    why = f"{mapper.id} maps {pairs} and accepts {accepted} of {total} sampled records"
    if reasons:
        code, n = min(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        why += f"; the most common rejection is {code} ({n})"
    return why + "."
