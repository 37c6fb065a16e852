"""The data stages as services (01-04): what the CLI and the API call, with the same
parameters. Each picks its inputs (the latest snapshot, introspection or dataset version
unless one is named) and runs the stage through the runner.
"""

from __future__ import annotations

import json
from typing import Any

from brewslm import artifacts
from brewslm.errors import InputError, NotFoundError
from brewslm.project import ProjectInfo
from brewslm.stages.ingest import IngestStage
from brewslm.stages.introspect import IntrospectStage
from brewslm.stages.mapping import MapDryRunStage, MapStage, read_dataset
from brewslm.stages.outputs import latest_output, output_history, require_output
from brewslm.stages.runner import StageResult, run_stage

# Stages that write a dataset version: map (from a snapshot) and clean (from a version).
DATASET_STAGES = ("map", "clean")


def ingest(project: ProjectInfo, source: str, *, fmt: str | None = None,
           text_blocks: bool = False, parent_run_id: str | None = None) -> StageResult:
    params = {"source": source, "format": fmt, "text_blocks": text_blocks}
    return run_stage(IngestStage(), project, params=params, parent_run_id=parent_run_id)


def introspect(project: ProjectInfo, *, snapshot: str | None = None,
               parent_run_id: str | None = None) -> StageResult:
    snap = _snapshot(project, snapshot)
    return run_stage(IntrospectStage(), project, inputs={"snapshot": snap},
                     parent_run_id=parent_run_id)


def map_rows(project: ProjectInfo, *, dry_run: bool = False, mapper: str | None = None,
             field_map: str | dict[str, str] | None = None, mapping: str | None = None,
             force: bool = False, plugins: list[str] | None = None,
             snapshot: str | None = None, parent_run_id: str | None = None) -> StageResult:
    """Map (or dry-run) the snapshot; introspects first when no introspection of it exists."""
    snap = _snapshot(project, snapshot)
    params: dict[str, Any] = {"force": force, "plugins": plugins or []}
    if mapping:
        params.update(_saved_mapping(project, mapping))
    if mapper:
        params["mapper"] = mapper
    if field_map:
        params["field_map"] = parse_field_map(field_map)
    inputs = {"snapshot": snap}
    report = _introspection_for(project, snap, parent_run_id)
    if report:
        inputs["introspection"] = report
    stage = MapDryRunStage() if dry_run else MapStage()
    return run_stage(stage, project, params=params, inputs=inputs, parent_run_id=parent_run_id)


def parse_field_map(value: str | dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InputError("field_map_invalid", f"--field-map is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InputError("field_map_invalid", "--field-map must be a JSON object of "
                         'slot -> field, e.g. {"instruction": "question"}')
    return parsed


def clean(project: ProjectInfo, *, pii: str | None = None, force: bool = False,
          dataset: str | None = None, parent_run_id: str | None = None) -> StageResult:
    from brewslm.stages.clean import CleanStage

    params = {"pii": pii, "force": force}
    return run_stage(CleanStage(), project, params=params,
                     inputs={"dataset": _dataset(project, dataset)}, parent_run_id=parent_run_id)


def prepare(project: ProjectInfo, *, eval_fraction: float | None = None, seed: int | None = None,
            max_tokens: int | None = None, truncation: str | None = None,
            stratify_by: str | None = None, dataset: str | None = None,
            parent_run_id: str | None = None) -> StageResult:
    from brewslm.stages.prepare import PrepareStage

    params = {"eval_fraction": eval_fraction, "seed": seed, "max_tokens": max_tokens,
              "truncation": truncation, "stratify_by": stratify_by}
    return run_stage(PrepareStage(), project, params=params,
                     inputs={"dataset": _dataset(project, dataset)}, parent_run_id=parent_run_id)


def dataset_versions(project: ProjectInfo) -> list[dict[str, Any]]:
    versions = []
    history = output_history(project, DATASET_STAGES, "dataset")
    for n, art_id in enumerate(history, start=1):
        art = artifacts.get(project, art_id)
        versions.append({"version": n, "dataset_id": art.id, **art.meta})
    return versions


def dataset_rows(project: ProjectInfo, *, version: str | None = None,
                 limit: int | None = 20) -> dict[str, Any]:
    versions = dataset_versions(project)
    if not versions:
        raise NotFoundError("dataset_version_missing", f"project {project.name!r} has no "
                            "dataset version yet: run `brewslm map -p NAME`")
    chosen = _pick_version(versions, version)
    art = artifacts.get(project, chosen["dataset_id"])
    rows = [{"row_id": rid, **row} for rid, row in read_dataset(art.path, limit)]
    return {"version": chosen, "rows": rows, "shown": len(rows), "total": chosen.get("rows")}


def _pick_version(versions: list[dict[str, Any]], version: str | None) -> dict[str, Any]:
    if version is None:
        return versions[-1]
    for v in versions:
        if str(v["version"]) == version or v["dataset_id"].startswith(version):
            return v
    raise NotFoundError("dataset_version_missing", f"no dataset version {version!r}; versions: "
                        f"{[v['version'] for v in versions]}")


def _dataset(project: ProjectInfo, dataset: str | None) -> str:
    return require_output(project, DATASET_STAGES, "dataset", dataset, "dataset_version_missing",
                          "run `brewslm map -p NAME` first")


def _snapshot(project: ProjectInfo, snapshot: str | None) -> str:
    return require_output(project, "ingest", "snapshot", snapshot, "snapshot_missing",
                          "run `brewslm ingest -p NAME SOURCE` first")


def _saved_mapping(project: ProjectInfo, mapping_id: str) -> dict[str, Any]:
    art = artifacts.get(project, mapping_id)
    if art.kind != "mapping":
        raise InputError("field_map_invalid", f"artifact {mapping_id} is a {art.kind}, "
                         "not a saved mapping")
    return json.loads((art.path / "mapping.json").read_text())


def _introspection_for(project: ProjectInfo, snapshot: str,
                       parent_run_id: str | None) -> str | None:
    """The latest introspection of this snapshot; run one if there is none."""
    for art_id in reversed(output_history(project, "introspect", "introspection")):
        if artifacts.get(project, art_id).meta.get("snapshot_id") == snapshot:
            return art_id
    result = introspect(project, snapshot=snapshot, parent_run_id=parent_run_id)
    return result.outputs.get("introspection", {}).get("id") or latest_output(
        project, "introspect", "introspection")
