"""Project as code: a `brewslm.yaml` declares a project (base model, sources, mapping, clean and
prepare policies, recipe, eval pack, exports, deploy); this module checks it, plans it against
the stored project, applies it, and writes a project back as YAML.

    from brewslm import projectfile
    spec = projectfile.load("brewslm.yaml")      # checked, defaults filled in (a plain dict)
    projectfile.plan(spec)          # [{part, action (create / update / noop), before, after}]
    projectfile.apply(spec, file="brewslm.yaml")        # stores it; runs no stage
    print(projectfile.to_yaml(projectfile.export_project("tickets")))

On the CLI: `brewslm apply -f brewslm.yaml [--dry-run] [--run]` and `brewslm config -p NAME`
(cli_projectfile.py). Where each part lives: name, base model and description on the project
row; `mapper_plugins`, `clean` and `prepare` in the project settings the stages already read;
the pipeline parts (sources, mapping, recipe, eval pack, export formats, deploy) under the
settings key `pipeline`, which only `apply --run` (through the autopilot) acts on.

The schema is pydantic models with extra="forbid" and strict types: a refusal names the key's
full path (`train.recipe.micro_btch`) and its line, and the YAML's own types are kept (no "1"
read as 1). After the schema, every value is checked by the code that will consume it: the
stage's tables (export FORMATS and QUANTS, the clean PII policies), the recipe and eval-pack
loaders (with the file's overrides applied), the mapper registry and the source registry.
Errors: projectfile_invalid, projectfile_unknown_key, projectfile_version_unsupported,
projectfile_not_found (exit 2, before anything is written).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from brewslm import locks, project
from brewslm.clean import QualityConfig
from brewslm.errors import InputError, NotFoundError
from brewslm.evaluate import pack as packs
from brewslm.events import emit_event
from brewslm.stages.clean import DEFAULTS as CLEAN_DEFAULTS
from brewslm.stages.clean import PII_POLICIES
from brewslm.stages.export import DEFAULT_QUANT, FORMATS, QUANTS
from brewslm.stages.prepare import DEFAULTS as PREPARE_DEFAULTS
from brewslm.store import session
from brewslm.store.models import Project
from brewslm.train import recipe as recipes

VERSION = 1
# What autopilot.run_project exports (its _model_stages): the default of `export.formats`,
# and the only list `apply --run` can honour.
AUTOPILOT_EXPORTS = [{"format": "gguf", "quant": "q8_0"},
                     {"format": "safetensors", "quant": "f32"}]
_QUALITY = QualityConfig()
_HEALTH = CLEAN_DEFAULTS["health"]


# --- the schema ---------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectPart(_Strict):
    name: str
    base_model: str | None = None
    description: str | None = None


class MappingPart(_Strict):
    mapper: str
    field_map: dict[str, str]


def _pair(signal: str) -> Any:
    """A health signal's [warn, block] shares (null: never); the default is the stage's."""
    return Field(default_factory=lambda: list(_HEALTH[signal]), min_length=2, max_length=2)


class HealthPart(_Strict):
    parse_failures: list[float | None] = _pair("parse_failures")
    low_quality: list[float | None] = _pair("low_quality")
    duplicates: list[float | None] = _pair("duplicates")
    pii: list[float | None] = _pair("pii")
    length_outliers: list[float | None] = _pair("length_outliers")


class CleanPart(_Strict):
    """The project's `clean` setting; defaults are the clean stage's own."""

    pii: Literal[PII_POLICIES] = CLEAN_DEFAULTS["pii"]
    pii_block_share: float = Field(CLEAN_DEFAULTS["pii_block_share"], ge=0, le=1)
    near_dup_threshold: float = Field(CLEAN_DEFAULTS["near_dup_threshold"], ge=0, le=1)
    chunk_max_tokens: int = Field(CLEAN_DEFAULTS["chunk_max_tokens"], gt=0)
    chunk_overlap: int = Field(CLEAN_DEFAULTS["chunk_overlap"], ge=0)
    health: HealthPart = Field(default_factory=HealthPart)
    # quality filters (ranges: QualityConfig.from_dict, called by _check_clean)
    min_answer_chars: int = _QUALITY.min_answer_chars
    min_text_chars: int = _QUALITY.min_text_chars
    max_chars: int = _QUALITY.max_chars
    min_alpha_ratio: float = _QUALITY.min_alpha_ratio
    max_repeated_line_ratio: float = _QUALITY.max_repeated_line_ratio
    max_repeated_ngram_ratio: float = _QUALITY.max_repeated_ngram_ratio
    repeated_ngram_n: int = _QUALITY.repeated_ngram_n


class PreparePart(_Strict):
    """The project's `prepare` setting (the split and tokenization policy)."""

    # (0, 1), not the stage's [0, 1): a declared pipeline evaluates, so it needs eval rows.
    eval_fraction: float = Field(PREPARE_DEFAULTS["eval_fraction"], gt=0, lt=1)
    seed: int = Field(PREPARE_DEFAULTS["seed"], ge=0)
    max_tokens: int = Field(PREPARE_DEFAULTS["max_tokens"], gt=0)
    truncation: Literal["drop", "truncate"] = PREPARE_DEFAULTS["truncation"]
    stratify_by: str | None = PREPARE_DEFAULTS["stratify_by"]
    chat_template: str | None = PREPARE_DEFAULTS["chat_template"]
    near_dup_threshold: float = Field(PREPARE_DEFAULTS["near_dup_threshold"], ge=0, le=1)


class DataPart(_Strict):
    sources: list[str] = Field(default_factory=list)
    mapping: MappingPart | None = None  # null: introspection picks (as `brewslm run` does)
    mapper_plugins: list[str] = Field(default_factory=list)
    clean: CleanPart = Field(default_factory=CleanPart)
    prepare: PreparePart = Field(default_factory=PreparePart)


def _knobs_model(model_name: str, default: str, paths: list[str]) -> type[BaseModel]:
    """`name` (which recipe or pack) plus one optional key per override path; "a.b" paths
    become a nested section, so an unknown knob is refused with its full path. The values
    are checked by the recipe / pack loader itself (_check_recipe, _check_pack)."""
    top: dict[str, Any] = {"name": (str, default)}
    sections: dict[str, dict[str, Any]] = {}
    for path in paths:
        head, _, tail = path.partition(".")
        if tail:
            sections.setdefault(head, {})[tail] = (Any, None)
        else:
            top[head] = (Any, None)
    for head, keys in sections.items():
        top[head] = (create_model(f"{model_name}_{head}", __base__=_Strict, **keys), None)
    return create_model(model_name, __base__=_Strict, **top)


RecipePart = _knobs_model("RecipePart", "lora", sorted(recipes.SCHEMA))
PackPart = _knobs_model("PackPart", "default", sorted(
    [k for k in packs.TOP_KEYS if k not in ("name", "version", "description")]
    + [f"generation.{k}" for k in packs.GENERATION_KEYS]))


class TrainPart(_Strict):
    recipe: RecipePart = Field(default_factory=RecipePart)


class EvalPart(_Strict):
    pack: PackPart = Field(default_factory=PackPart)


class ExportFormat(_Strict):
    format: Literal[FORMATS]
    quant: str | None = None  # null: the format's default (export.DEFAULT_QUANT)


class ExportPart(_Strict):
    formats: list[ExportFormat] = Field(
        default_factory=lambda: [ExportFormat(**f) for f in AUTOPILOT_EXPORTS])


class ProjectFile(_Strict):
    version: int
    project: ProjectPart
    data: DataPart = Field(default_factory=DataPart)
    train: TrainPart = Field(default_factory=TrainPart)
    eval: EvalPart = Field(default_factory=EvalPart)
    export: ExportPart = Field(default_factory=ExportPart)
    deploy: bool = True


# Each plan part: where it sits in the file, and where it is stored (row, settings, pipeline).
PARTS: dict[str, tuple[tuple[str, ...], str]] = {
    "project": (("project", "name"), "row"),
    "base_model": (("project", "base_model"), "row"),
    "description": (("project", "description"), "row"),
    "mapper_plugins": (("data", "mapper_plugins"), "settings"),
    "clean": (("data", "clean"), "settings"),
    "prepare": (("data", "prepare"), "settings"),
    "sources": (("data", "sources"), "pipeline"),
    "mapping": (("data", "mapping"), "pipeline"),
    "recipe": (("train", "recipe"), "pipeline"),
    "eval_pack": (("eval", "pack"), "pipeline"),
    "export": (("export", "formats"), "pipeline"),
    "deploy": (("deploy",), "pipeline"),
}


# --- reading a file -----------------------------------------------------------------------------

class _Where:
    """The text being read (a file, or a project's stored state) and its YAML node tree, so a
    refusal can name the path and the line."""

    def __init__(self, name: str, root: yaml.Node | None = None) -> None:
        self.name, self.root = name, root

    def error(self, code: str, loc: tuple[Any, ...], problem: str, *, line: int | None = None,
              **details: Any) -> InputError:
        path, line = dotted(loc), line or _line_of(self.root, loc)
        at = f"{self.name}:{line}" if line else self.name
        return InputError(code, f"{at}: {path or '(top)'}: {problem}", file=self.name,
                          path=path, line=line, **details)


def load(file: str | Path) -> dict[str, Any]:
    """Read, check and normalise a project file; relative paths are resolved against its
    folder."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise NotFoundError("projectfile_not_found", f"no project file at {str(path)!r}",
                            file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("projectfile_invalid", f"cannot read {path}: {exc}",
                         file=str(path)) from None
    return parse(text, name=str(path), base_dir=path.resolve().parent)


def parse(text: str, *, name: str = "brewslm.yaml", base_dir: Path | None = None
          ) -> dict[str, Any]:
    """Check and normalise the text of a project file (the spec: a plain dict, every default
    filled in)."""
    where, raw = _read_yaml(text, name)
    if "version" in raw and (type(raw["version"]) is not int or raw["version"] != VERSION):
        raise where.error("projectfile_version_unsupported", ("version",),
                          f"version {raw['version']!r} is not supported; this BrewSLM reads "
                          f"version {VERSION}", supported=[VERSION])
    spec = _normalise(raw, where)
    _check(spec, where, base_dir or Path.cwd())
    return spec


def _read_yaml(text: str, name: str) -> tuple[_Where, dict[str, Any]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise InputError("projectfile_invalid", f"{name}:{line or '?'}: not valid YAML: "
                         f"{getattr(exc, 'problem', None) or exc}", file=name, path="",
                         line=line) from None
    where = _Where(name, root)
    if not isinstance(raw, dict):
        raise where.error("projectfile_invalid", (), "a project file is a mapping that starts "
                          f"with `version: {VERSION}`; got {type(raw).__name__}")
    _refuse_duplicates(root, (), where)
    return where, raw


def _refuse_duplicates(node: yaml.Node, loc: tuple[Any, ...], where: _Where) -> None:
    # YAML keeps the last of two equal keys without a word: in a config file that hides an edit.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            if name in seen:
                raise where.error("projectfile_invalid", (*loc, name), "the key is given twice",
                                  line=key.start_mark.line + 1)
            seen.add(name)
            _refuse_duplicates(value, (*loc, name), where)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, (*loc, i), where)


def _normalise(raw: dict[str, Any], where: _Where) -> dict[str, Any]:
    """The schema: types and known keys; returns the spec with every default filled in."""
    try:
        model = ProjectFile.model_validate(raw)
    except ValidationError as exc:
        raise _schema_error(exc, where) from None
    spec = model.model_dump()
    # Recipe and pack knobs are overrides: only the keys given (the rest is the recipe's own).
    for part, key, knobs in (("train", "recipe", model.train.recipe),
                             ("eval", "pack", model.eval.pack)):
        spec[part][key] = {"name": knobs.name,
                           **knobs.model_dump(exclude_unset=True, exclude={"name"})}
    for fmt in spec["export"]["formats"]:
        fmt["quant"] = fmt["quant"] or DEFAULT_QUANT[fmt["format"]]
    return spec


def _schema_error(exc: ValidationError, where: _Where) -> InputError:
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = (unknown or errors)[0]
    loc = tuple(first["loc"])
    listed = [{"path": dotted(e["loc"]), "line": _line_of(where.root, tuple(e["loc"])),
               "problem": e["msg"]} for e in errors]
    if unknown:
        known = _known_keys(loc[:-1])
        return where.error("projectfile_unknown_key", loc, f"unknown key; known here: "
                           f"{', '.join(known)}", known=known, errors=listed)
    given = "" if first["type"] == "missing" else f" (got {_short(first['input'])})"
    return where.error("projectfile_invalid", loc, f"{first['msg']}{given}", errors=listed)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at loc (a mapping's path)."""
    model: Any = ProjectFile
    for part in loc:
        if isinstance(part, int):
            continue  # a list item: the list's own type was unwrapped below
        model = _unwrap(model.model_fields[part].annotation)
    return list(model.model_fields)


def _unwrap(annotation: Any) -> Any:
    """The model inside `X | None` or `list[X]`."""
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _unwrap(arg) if typing.get_args(arg) else None
        if inner is not None:
            return inner
    return annotation


# --- checking values against what the stages accept -------------------------------------------

def _check(spec: dict[str, Any], where: _Where, base_dir: Path) -> None:
    """Each value checked by the code that consumes it; paths made absolute (in place)."""
    _check_project(spec["project"], where, base_dir)
    data = spec["data"]
    data["sources"] = [_check_source(s, i, where, base_dir) for i, s in
                       enumerate(data["sources"])]
    if data["mapping"]:
        _check_mapping(data["mapping"], data["mapper_plugins"], where)
    _check_clean(data["clean"], where)
    _check_recipe(spec["train"]["recipe"], where, base_dir)
    _check_pack(spec["eval"]["pack"], where, base_dir)
    _check_exports(spec["export"]["formats"], where)
    if spec["deploy"] and not spec["export"]["formats"]:
        raise where.error("projectfile_invalid", ("deploy",), "deploy needs an export: list "
                          "at least one format under export.formats, or set deploy: false")


def _check_project(part: dict[str, Any], where: _Where, base_dir: Path) -> None:
    if not project.NAME_RE.match(part["name"]):
        raise where.error("projectfile_invalid", ("project", "name"), f"invalid project name "
                          f"{part['name']!r}: use 1-64 of a-z 0-9 - _ . starting with a letter "
                          "or digit")
    ref = part["base_model"]
    if ref is None:
        return
    local = base_dir / ref
    if not ref.startswith("builtin:") and local.exists():
        part["base_model"] = ref = str(local.resolve())
    from brewslm.basemodels.reference import validate_base_model_ref

    try:
        validate_base_model_ref(ref)
    except InputError as exc:
        raise where.error("projectfile_invalid", ("project", "base_model"), exc.message,
                          cause=exc.code) from None


def _check_source(spec: str, index: int, where: _Where, base_dir: Path) -> str:
    """The source as ingest will get it: a local path resolved against the file's folder."""
    from brewslm.sources import find_source
    from brewslm.sources.local import LocalSource

    loc = ("data", "sources", index)
    try:
        source = find_source(spec)
    except InputError as exc:
        raise where.error("projectfile_invalid", loc, exc.message, cause=exc.code) from None
    if not isinstance(source, LocalSource) or spec.startswith("file://"):
        return spec
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise where.error("projectfile_invalid", loc, f"no file or folder at {str(path)!r} "
                          "(a relative path is read from the project file's folder)")
    return str(path.resolve())


def _check_mapping(mapping: dict[str, Any], plugins: list[str], where: _Where) -> None:
    from brewslm.mappers import BUILTIN_MAPPERS, check_field_map, get_mapper, load_plugin_mappers

    extra, problems = ({}, []) if mapping["mapper"] in BUILTIN_MAPPERS else (
        load_plugin_mappers(plugins))
    try:
        mapper = get_mapper(mapping["mapper"], extra)
    except InputError as exc:
        raise where.error("projectfile_invalid", ("data", "mapping", "mapper"), exc.message,
                          cause=exc.code, plugin_errors=problems) from None
    try:
        check_field_map(mapper, mapping["field_map"])
    except InputError as exc:
        raise where.error("projectfile_invalid", ("data", "mapping", "field_map"),
                          exc.message, cause=exc.code) from None


def _check_clean(clean: dict[str, Any], where: _Where) -> None:
    quality = {k: v for k, v in clean.items() if k not in CLEAN_DEFAULTS}
    try:
        QualityConfig.from_dict(quality)
    except InputError as exc:
        name = str(exc.details.get("field", "clean")).split(".")[-1]
        raise where.error("projectfile_invalid", ("data", "clean", name), exc.message,
                          cause=exc.code) from None


def _check_recipe(part: dict[str, Any], where: _Where, base_dir: Path) -> None:
    """The named recipe with the file's knobs as --set overrides, through the recipe loader;
    the knobs are stored as it normalised them (1e-3 -> 0.001)."""
    part["name"] = _named_file(part["name"], recipes.PACKAGED, base_dir)
    knobs = flatten({k: v for k, v in part.items() if k != "name"})
    try:
        loaded = recipes.apply_overrides(recipes.load_recipe(part["name"]), overrides(knobs))
    except InputError as exc:
        raise where.error("projectfile_invalid", ("train", "recipe", *_loc(
            exc.details.get("key") or "name")), exc.message, cause=exc.code) from None
    for key in knobs:
        head, _, tail = key.partition(".")
        if tail:
            part[head][tail] = loaded[head][tail]
        else:
            part[head] = loaded[head]


def _check_pack(part: dict[str, Any], where: _Where, base_dir: Path) -> None:
    part["name"] = _named_file(part["name"], packs.PACKAGED, base_dir)
    knobs = flatten({k: v for k, v in part.items() if k != "name"})
    try:
        packs.load_pack(part["name"], overrides(knobs))
    except InputError as exc:
        raise where.error("projectfile_invalid", ("eval", "pack", *_loc(
            exc.details.get("key") or "name")), exc.message, cause=exc.code) from None


def _check_exports(formats: list[dict[str, Any]], where: _Where) -> None:
    seen = set()
    for i, fmt in enumerate(formats):
        if fmt["quant"] not in QUANTS[fmt["format"]]:
            raise where.error("projectfile_invalid", ("export", "formats", i, "quant"),
                              f"quant {fmt['quant']!r} is not available for {fmt['format']}; "
                              f"choose one of {', '.join(QUANTS[fmt['format']])}")
        pair = (fmt["format"], fmt["quant"])
        if pair in seen:
            raise where.error("projectfile_invalid", ("export", "formats", i),
                              f"{fmt['format']} {fmt['quant']} is listed twice")
        seen.add(pair)


def _named_file(name: str, packaged: tuple[str, ...], base_dir: Path) -> str:
    """A packaged name as is; anything else is a file path, read from the file's folder."""
    if name in packaged:
        return name
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return str(path.resolve()) if path.exists() else name


# --- plan and apply -----------------------------------------------------------------------------

def plan(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per part: create (no project yet), update (stored value differs) or noop."""
    current = _current(spec["project"]["name"])
    entries = []
    for part, (path, _) in PARTS.items():
        after = _get(spec, path)
        before = None if current is None else _get(current, path)
        action = "create" if current is None else "noop" if before == after else "update"
        entries.append({"part": part, "action": action, "before": before, "after": after})
    return entries


def apply(spec: dict[str, Any], *, file: str | Path | None = None) -> dict[str, Any]:
    """Store what the spec declares (creating the project if needed); runs no stage.
    Refused (stage_locked) while one of the project's stages runs."""
    name = spec["project"]["name"]
    steps = plan(spec)
    changed = [e for e in steps if e["action"] != "noop"]
    if not changed:
        return {"project": name, "plan": steps, "applied": False}
    if steps[0]["action"] == "create":
        project.create(name, base_model=spec["project"]["base_model"],
                       description=spec["project"]["description"])
    info = project.get(name)
    with locks.project_lock(info.dir, project=name, stage="apply", run_id="-"):
        _write(info.id, spec)
    emit_event("projectfile_applied", f"project {name}: {len(changed)} part(s) applied from "
               f"{file or 'a project file'}", project_id=info.id, stage="project",
               payload={"file": str(file) if file else None, "sha256": spec_hash(spec),
                        "changes": changed})
    return {"project": name, "plan": steps, "applied": True}


def _write(project_id: str, spec: dict[str, Any]) -> None:
    # project.py writes one setting per call; a file is applied in one transaction, so a
    # failure leaves the project as it was rather than half-updated.
    with session() as s:
        row = s.get(Project, project_id)
        settings = dict(row.settings or {})
        pipeline = dict(settings.get("pipeline") or {})
        for part, (path, place) in PARTS.items():
            value = _get(spec, path)
            if place == "row" and part != "project":
                setattr(row, part, value)
            elif place == "settings":
                settings[part] = value
            elif place == "pipeline":
                pipeline[part] = value
        row.settings = {**settings, "pipeline": pipeline}
        row.updated_at = datetime.now(UTC)


def _current(name: str) -> dict[str, Any] | None:
    """The stored project as a spec, None when there is none. Stored settings the schema
    refuses (set by hand with `brewslm project set`) are compared as they are, so that the
    plan shows them as updates and applying a good file repairs them."""
    try:
        raw = _stored(name)
    except NotFoundError as exc:
        if exc.code == "project_not_found":
            return None
        raise
    where = _Where(f"project {name} (stored settings)")
    try:
        return _normalise(raw, where)
    except InputError:
        spec = _normalise({"version": VERSION, "project": raw["project"]}, where)
        for path, _ in PARTS.values():
            with contextlib.suppress(KeyError):  # not stored: the default stands
                _put(spec, path, _get(raw, path))
        return spec


def export_project(name: str) -> dict[str, Any]:
    """The stored project as a spec (what `brewslm config` writes): the same schema and
    defaults as a file, so that applying it back is a no-op."""
    return _normalise(_stored(name), _Where(f"project {name} (stored settings)"))


def _stored(name: str) -> dict[str, Any]:
    """The project row and settings, laid out as a project file (nothing filled in)."""
    info = project.get(name)
    settings, pipeline = info.settings, info.settings.get("pipeline") or {}
    raw: dict[str, Any] = {"version": VERSION, "project": {
        "name": info.name, "base_model": info.base_model, "description": info.description}}
    for part, (path, place) in PARTS.items():
        stored = settings if place == "settings" else pipeline if place == "pipeline" else {}
        if part in stored:
            _put(raw, path, stored[part])
    return raw


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars: `parse_failures: [0.01, 0.2]` on one line."""


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flat = all(not isinstance(item, dict | list) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def to_yaml(spec: dict[str, Any], *, header: str | None = None) -> str:
    text = yaml.dump(spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return (f"# {header}\n" if header else "") + text


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# --- apply --run ------------------------------------------------------------------------------

def run_args(spec: dict[str, Any]) -> dict[str, Any]:
    """autopilot.run_project's keyword arguments for this spec; projectfile_run_unsupported
    for what the autopilot cannot honour (it ingests one source, maps by introspection and
    exports AUTOPILOT_EXPORTS), so that --run never silently ignores a declared part."""
    data = spec["data"]
    where = _Where("--run")
    if len(data["sources"]) != 1:
        raise where.error("projectfile_run_unsupported", ("data", "sources"), "--run ingests "
                          f"exactly one source; the file lists {len(data['sources'])}")
    if data["mapping"] is not None:
        raise where.error("projectfile_run_unsupported", ("data", "mapping"), "--run maps by "
                          "introspection; a declared mapping is applied by `brewslm map -p "
                          "NAME --mapper M --field-map JSON` (set mapping: null for --run)")
    if spec["export"]["formats"] != AUTOPILOT_EXPORTS:
        raise where.error("projectfile_run_unsupported", ("export", "formats"), "--run "
                          f"exports {AUTOPILOT_EXPORTS}; other formats go through `brewslm "
                          "export -p NAME --format F --quant Q`")
    recipe, pack = spec["train"]["recipe"], spec["eval"]["pack"]
    return {"data": data["sources"][0], "recipe": recipe["name"],
            "overrides": overrides(flatten({k: v for k, v in recipe.items() if k != "name"})),
            "pack": pack["name"],
            "eval_overrides": overrides(flatten({k: v for k, v in pack.items() if k != "name"})),
            "deploy": spec["deploy"]}


# --- small helpers ------------------------------------------------------------------------------

def flatten(knobs: dict[str, Any]) -> dict[str, Any]:
    """{"lora": {"r": 8}, "micro_batch": 4} -> {"lora.r": 8, "micro_batch": 4}."""
    flat: dict[str, Any] = {}
    for key, value in knobs.items():
        if isinstance(value, dict) and key in (recipes.SECTIONS | {"generation"}):
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    return flat


def overrides(flat: dict[str, Any]) -> list[str]:
    """--set KEY=VALUE strings; JSON is a YAML scalar or flow value, which the loaders read."""
    return [f"{key}={json.dumps(value)}" for key, value in flat.items()]


def dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    """("export", "formats", 0, "quant") -> "export.formats[0].quant"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _loc(path: str) -> tuple[Any, ...]:
    """The inverse of dotted(): "gates[0].metric" -> ("gates", 0, "metric")."""
    loc: list[Any] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        loc.append(int(index) if index else name)
    return tuple(loc)


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node of loc that the document has."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _get(spec: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        spec = spec[key]
    return spec


def _put(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        raw = raw.setdefault(key, {})
    raw[path[-1]] = value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
