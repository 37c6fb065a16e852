"""Errors that carry a reason code and the CLI exit code they map to.

Every failure a user can see is one of these: the code comes from the taxonomy
(src/brewslm/events/taxonomy.yaml) and the exit code follows DESIGN.md —
1 failure, 2 bad usage or input refused before any work, 3 blocked by a gate.
"""

from __future__ import annotations

from typing import Any


class BrewError(Exception):
    """A failure with a reason code; exit code 1."""

    exit_code = 1

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InputError(BrewError):
    """Bad usage or bad input, refused before any work; exit code 2."""

    exit_code = 2


class NotFoundError(InputError):
    """A named thing (project, run, artifact, row) does not exist; exit code 2."""


class BlockedError(BrewError):
    """A gate refused to go on; exit code 3.

    `result`, when given, is what the gate found (preflight: verdict, blockers, memory): the
    runner stores it as the blocked run's result, so `--json` still shows why."""

    exit_code = 3

    def __init__(self, code: str, message: str, *, result: dict[str, Any] | None = None,
                 **details: Any) -> None:
        super().__init__(code, message, **details)
        self.result = result
