"""What the benchmarks share: a throwaway BREWSLM_HOME, a child process per measured run (so
its peak RSS is its own), and one JSON object on stdout.

    from harness import child_env, run_child
    with child_env("brewslm-bench-x-") as (home, env):
        figures, peak_mib = run_child(__file__, ["--child", "--rows", "10"], env)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def child_env(prefix: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary BREWSLM_HOME (removed afterwards) and an environment for children that
    uses it — on SQLite there, whatever BREWSLM_DATABASE_URL says, and without strict codes."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {k: v for k, v in os.environ.items()
           if k not in ("BREWSLM_DATABASE_URL", "BREWSLM_STRICT_CODES")}
    env["BREWSLM_HOME"] = str(home)
    try:
        yield home, env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_child(script: str, args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run `python script args` and return the JSON object it printed last and the peak RSS in
    MiB of the largest child so far (ru_maxrss of RUSAGE_CHILDREN is a maximum over children:
    run the child whose peak matters first, or alone)."""
    proc = subprocess.run([sys.executable, os.path.abspath(script), *args], env=env,
                          stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), peak_child_rss_mib()


def peak_child_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)
