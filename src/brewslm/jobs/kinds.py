"""What a job may run: each stage's service function, and the parameters it takes.

    from brewslm.jobs.kinds import KINDS, check_params, call
    check_params("train", {"overrides": ["max_steps=20"]})   # raises job_params_invalid
    result = call("train", project, params)                  # a StageResult

Parameters are the keyword arguments of the service function the CLI calls (so an API job and
the CLI command run the same code with the same inputs); `project` and `parent_run_id` are
supplied by the job itself.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from brewslm.errors import InputError
from brewslm.project import ProjectInfo

KINDS = {
    "ingest": "brewslm.stages.data:ingest",
    "introspect": "brewslm.stages.data:introspect",
    "map": "brewslm.stages.data:map_rows",
    "clean": "brewslm.stages.data:clean",
    "prepare": "brewslm.stages.data:prepare",
    "preflight": "brewslm.stages.preflight:preflight",
    "train": "brewslm.stages.train:train",
    "evaluate": "brewslm.stages.evaluate:evaluate",
    "export": "brewslm.stages.export:export",
    "deploy": "brewslm.stages.deploy:deploy",
    "run": "brewslm.autopilot:run_project",  # the autopilot: every stage in order
}
SUPPLIED = ("project", "parent_run_id", "say")


def service(kind: str) -> Any:
    if kind not in KINDS:
        raise InputError("job_kind_unknown", f"no stage {kind!r} to run as a job; one of "
                         f"{', '.join(KINDS)}", kind=kind)
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def parameters(kind: str) -> dict[str, dict[str, Any]]:
    """name -> {required, default, annotation} of the service function's keyword arguments."""
    sig = inspect.signature(service(kind))
    out = {}
    for name, p in sig.parameters.items():
        if name in SUPPLIED:
            continue
        required = p.default is inspect.Parameter.empty
        out[name] = {"required": required, "default": None if required else p.default,
                     "annotation": str(p.annotation)}
    return out


def check_params(kind: str, params: Any) -> dict[str, Any]:
    """The parameters as given, refused (job_params_invalid) when the function cannot take
    them: not an object, an unknown name, or a required one missing."""
    if not isinstance(params, dict):
        raise InputError("job_params_invalid", "job parameters must be a JSON object",
                         kind=kind)
    known = parameters(kind)
    unknown = sorted(set(params) - set(known))
    missing = sorted(n for n, p in known.items() if p["required"] and n not in params)
    if unknown or missing:
        raise InputError("job_params_invalid", f"{kind} takes {', '.join(known) or 'nothing'}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; missing: {', '.join(missing)}" if missing else ""),
                         kind=kind, unknown=unknown, missing=missing, accepted=list(known))
    return dict(params)


def call(kind: str, project: ProjectInfo, params: dict[str, Any]) -> Any:
    return service(kind)(project, **check_params(kind, params))
