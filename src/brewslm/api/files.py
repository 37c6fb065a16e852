"""REST routes (being written)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the routes; `deps` holds the token check."""
