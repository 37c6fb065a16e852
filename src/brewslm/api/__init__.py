"""The REST API (FastAPI), a thin face over the same services as the CLI."""
