"""The reason-code taxonomy: one YAML file (taxonomy.yaml) read once per process.

    from brewslm.events.taxonomy import lookup
    lookup("stage_failed").hint
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")
SEVERITIES = ("info", "warning", "error", "critical")


class UnknownReasonCode(ValueError):
    """Raised (under BREWSLM_STRICT_CODES=1) when a code is not in the taxonomy."""


@dataclass(frozen=True)
class ReasonCode:
    code: str
    stage: str
    severity: str
    meaning: str
    hint: str
    reserved: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "stage": self.stage, "severity": self.severity,
                "meaning": self.meaning, "hint": self.hint, "reserved": self.reserved}


@cache
def codes() -> dict[str, ReasonCode]:
    raw = yaml.safe_load(TAXONOMY_FILE.read_text(encoding="utf-8")) or {}
    table = {}
    for code, spec in raw.items():
        if spec.get("severity") not in SEVERITIES:
            raise ValueError(f"taxonomy.yaml: {code} has severity {spec.get('severity')!r}")
        table[code] = ReasonCode(code=code, stage=spec["stage"], severity=spec["severity"],
                                 meaning=spec["meaning"], hint=spec["hint"],
                                 reserved=bool(spec.get("reserved", False)))
    return table


def is_known(code: str) -> bool:
    return code in codes()


def lookup(code: str) -> ReasonCode:
    try:
        return codes()[code]
    except KeyError:
        raise UnknownReasonCode(
            f"reason code {code!r} is not in {TAXONOMY_FILE.name}; add it there first"
        ) from None
