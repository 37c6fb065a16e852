"""CLI commands for stage deploy. Placeholder until filled in."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the deploy commands to the main app."""
