"""REST routes for stages 10 and 11: exports, deployment versions (promote, rollback),
telemetry and drift; the same service functions as `brewslm export` and `brewslm deploy`.

The model endpoint itself (/v1/...) is a separate app, `brewslm serve` (serving/server.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from brewslm import artifacts, project


class DriftRequest(BaseModel):
    endpoint: str | None = Field(None, description="The live endpoint's base URL (…/v1): "
                                 "the eval rows are re-run against it")


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the export and deployment routes; `deps` holds the token check."""
    from brewslm.serving import deployments, telemetry

    @app.get("/api/projects/{name}/exports", dependencies=deps)
    def list_exports(name: str) -> dict[str, Any]:
        """Every export of the project with its format, quant, candidate and parity verdict."""
        found = [a.to_dict() for a in artifacts.list_artifacts(project.get(name))
                 if a.kind == "export"]
        return {"exports": found}

    @app.get("/api/projects/{name}/deployments", dependencies=deps)
    def list_deployments(name: str) -> dict[str, Any]:
        """Every deployment version: status, export, smoke test, predecessor, last drift."""
        info = project.get(name)
        active = deployments.active(info)
        return {"versions": [v.to_dict() for v in deployments.list_versions(info)],
                "promoted": active.version if active else None}

    @app.post("/api/projects/{name}/deployments/{version}/promote", dependencies=deps)
    def promote(name: str, version: int) -> dict[str, Any]:
        """Make a version the served one (it must have passed its smoke test)."""
        return {"version": deployments.promote(project.get(name), version).to_dict()}

    @app.post("/api/projects/{name}/deployments/rollback", dependencies=deps)
    def rollback(name: str) -> dict[str, Any]:
        """Return to the predecessor of the served version (400 deploy_no_predecessor)."""
        return {"version": deployments.rollback(project.get(name)).to_dict()}

    @app.get("/api/projects/{name}/deployments/{version}/telemetry", dependencies=deps)
    def version_telemetry(name: str, version: int) -> dict[str, Any]:
        """Requests, errors, latency p50/p95/p99, time to first token and tokens/s."""
        info = project.get(name)
        deployments.get(info, version)  # 404 for an unknown version
        return telemetry.summary(info, version)

    @app.post("/api/projects/{name}/deployments/{version}/drift", dependencies=deps)
    def version_drift(name: str, version: int, body: DriftRequest | None = None
                      ) -> dict[str, Any]:
        """Run a drift check of the version: passing, borderline or drift_detected."""
        from brewslm.serving.drift import check_drift

        return check_drift(project.get(name), version,
                           endpoint=body.endpoint if body else None)
