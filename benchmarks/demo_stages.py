"""`make demo`, timed stage by stage on this machine, and the demo's result over several seeds.

    python benchmarks/demo_stages.py [--seeds 0,1,2] [--setup] [--write-readme]

In a throwaway BREWSLM_HOME with an empty model cache, as on a fresh machine: builds and
pretrains builtin:tiny (timed alone), then runs `brewslm demo --json` and reads each stage
run's duration from it. With --seeds, trains and evaluates the demo's recipe again with each
extra seed (the demo itself uses the recipe's seed 0) and reports exact match base ->
candidate, so a lucky seed cannot pass for the demo's result. With --setup, also times
`make install` in a fresh clone with a new virtualenv (packages from the registry or pip's
cache). --write-readme replaces the table between the demo-stages markers in
benchmarks/README.md. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import child_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BREWSLM = str(Path(sys.executable).with_name("brewslm"))
README = ROOT / "benchmarks" / "README.md"
MARKERS = ("<!-- demo-stages:start -->", "<!-- demo-stages:end -->")


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return time.monotonic() - start, proc.stdout


def pretrain(env: dict[str, str]) -> float:
    code = "from brewslm.basemodels import resolve_base_model; resolve_base_model('builtin:tiny')"
    return timed([sys.executable, "-c", code], env)[0]


def demo(env: dict[str, str]) -> tuple[float, dict]:
    seconds, out = timed([BREWSLM, "demo", "--json"], env)
    return seconds, json.loads(out)


def seed_run(env: dict[str, str], seed: int, overrides: list[str]) -> dict:
    sets = [a for o in [*overrides, f"seed={seed}"] for a in ("--set", o)]
    train_s, out = timed([BREWSLM, "train", "-p", "demo", *sets, "--json"], env)
    trained = json.loads(out)
    eval_s, out = timed([BREWSLM, "evaluate", "-p", "demo", "--json"], env)
    evaluated = json.loads(out)
    em = evaluated["metrics"]
    return {"seed": seed, "final_loss": trained["final_loss"], "train_s": round(train_s, 1),
            "eval_s": round(eval_s, 1), "exact_match_base": em["base"]["exact_match"],
            "exact_match_candidate": em["candidate"]["exact_match"],
            "promotable": evaluated["promotable"]}


def setup_time() -> float:
    """`make install` in a fresh clone (a new .venv), as `make demo` does first."""
    with tempfile.TemporaryDirectory(prefix="brewslm-setup-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        return timed(["make", "install"], env, cwd=clone)[0]


def table(figures: dict) -> str:
    lines = ["| step | seconds | result |", "|---|---:|---|"]
    if "setup_s" in figures:
        lines.append(f"| set-up (`make install`, fresh clone) | {figures['setup_s']:.0f} | |")
    lines.append(f"| build + pretrain builtin:tiny (first run only) | "
                 f"{figures['pretrain_s']:.0f} | |")
    for stage in figures["stages"]:
        lines.append(f"| {stage['stage']} | {stage['seconds']:.1f} | {stage['result']} |")
    lines.append(f"| **demo total** (`brewslm demo`, model cached) | "
                 f"**{figures['demo_s']:.0f}** | |")
    lines.append(f"| **fresh machine total** | **{figures['fresh_total_s']:.0f}** | "
                 f"budget 600 |")
    if figures.get("seeds"):
        lines += ["", "| seed | final loss | exact match base -> candidate | promotable |",
                  "|---:|---:|---|---|"]
        lines += [f"| {s['seed']} | {s['final_loss']:.4f} | {s['exact_match_base']:.3f} -> "
                  f"{s['exact_match_candidate']:.3f} | {s['promotable']} |"
                  for s in figures["seeds"]]
    return "\n".join(lines)


def stage_rows(summary: dict) -> list[dict]:
    rows = []
    for name, run in summary["runs"].items():
        counts = run.get("counts")
        result = (f"{counts['in']} -> {counts['out']} (+{counts['rejected']} rejected)"
                  if counts else run.get("verdict") or run.get("deployment_status") or "")
        if "comparison" in run:
            em = run["comparison"]["exact_match"]
            result = f"exact match {em['base']:.3f} -> {em['candidate']:.3f}"
        rows.append({"stage": name, "seconds": run.get("duration_s") or 0.0, "result": result})
    return rows


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
    README.write_text(pattern.sub(f"{MARKERS[0]}\n{text}\n{MARKERS[1]}", readme),
                      encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="", help="extra seeds to train and evaluate")
    parser.add_argument("--setup", action="store_true", help="also time make install")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    figures: dict = {}
    if args.setup:
        figures["setup_s"] = setup_time()
    with child_env("brewslm-bench-demo-") as (home, env):
        env.pop("BREWSLM_MODELS_DIR", None)
        env.pop("BREWSLM_TINY_PRETRAIN_STEPS", None)
        figures["pretrain_s"] = pretrain(env)
        figures["demo_s"], summary = demo(env)
        figures["stages"] = stage_rows(summary)
        figures["chat_answer"] = summary["chat"]["answer"] if summary.get("chat") else None
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        figures["seeds"] = [seed_run(env, s, summary["train_overrides"]) for s in seeds]
    figures["fresh_total_s"] = (figures.get("setup_s", 0) + figures["pretrain_s"]
                                + figures["demo_s"])
    figures["cpu_count"] = os.cpu_count()
    if args.write_readme:
        write_readme(table(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
