"""REST routes for observability (issue 8). Placeholder until filled in."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the observability routes; `deps` holds the token check."""
