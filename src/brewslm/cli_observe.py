"""CLI commands for observability (issue 8): clusters, bundle, audit, doctor. Registered by
cli.py. Placeholder until filled in."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the observability commands to the main app."""
