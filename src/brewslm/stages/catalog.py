"""The one list of BrewSLM's stages: number, name, command, and what each promises.

Everything that names the stages (help text, the timeline's --stage filter, the project board)
reads this list, so docs and code cannot disagree on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    number: int
    name: str
    command: str
    contract: str


STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, "ingest", "brewslm ingest -p P SOURCE",
              "every source record is in the snapshot or in the ledger as malformed"),
    StageSpec(2, "introspect", "brewslm introspect -p P",
              "reads, never writes rows; below confidence 0.8 nothing is auto-picked"),
    StageSpec(3, "map_dry_run", "brewslm map -p P --dry-run", "writes no rows"),
    StageSpec(4, "map", "brewslm map -p P", "in = accepted + rejected, every rejection coded"),
    StageSpec(5, "clean", "brewslm clean -p P", "every dropped or changed row has a reason"),
    StageSpec(6, "prepare", "brewslm prepare -p P",
              "content-addressed manifest; deterministic splits; truncation counted per row"),
    StageSpec(7, "preflight", "brewslm preflight -p P",
              "no compute is spent on a run that preflight blocks"),
    StageSpec(8, "train", "brewslm train -p P", "resumable; the run cites the manifest hash"),
    StageSpec(9, "evaluate", "brewslm evaluate -p P",
              "promotable only if every required gate passes"),
    StageSpec(10, "export", "brewslm export -p P --format F",
              "each export reproduces the candidate's outputs (parity)"),
    StageSpec(11, "deploy", "brewslm deploy -p P", "one version serves at a time"),
)

# Not lifecycle stages, but they run through the same runner or emit events of their own.
AUXILIARY = ("synthetic", "pipeline", "project", "runner", "ledger", "model", "system")


def stage_names() -> tuple[str, ...]:
    return tuple(s.name for s in STAGES)


def known_event_stages() -> tuple[str, ...]:
    return stage_names() + AUXILIARY
