"""CLI commands for stage export. Placeholder until filled in."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the export commands to the main app."""
