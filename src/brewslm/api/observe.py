"""REST routes for observability over the event stream, the same answers as the CLI's
`clusters`, `bundle`, `audit` (why, lineage, row) and `doctor`; added by api/app.py.

    GET /api/projects/{name}/clusters[?stage=&since=&until=]
    GET /api/projects/{name}/bundle[?since=]                      -> application/zip
    GET /api/projects/{name}/audit?stage=&severity=&code=&run=&since=&until=&row=&artifact=
    GET /api/projects/{name}/audit/why/{candidate}
    GET /api/projects/{name}/audit/lineage/{target}               (an id, prefix or file path)
    GET /api/projects/{name}/audit/rows/{row_id}
    GET /api/doctor
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response

from brewslm import project
from brewslm.observe import audit, bundle, clusters, doctor, lineage, why


def add_routes(app: FastAPI, deps: list[Any]) -> None:
    """Add the observability routes; `deps` holds the token check."""

    @app.get("/api/projects/{name}/clusters", dependencies=deps, tags=["observability"])
    def failure_clusters(name: str, stage: str | None = None, since: str | None = None,
                         until: str | None = None) -> dict[str, Any]:
        """Failure clusters: the project's error and critical events grouped by (stage, reason
        code, cause, normalized summary), most frequent first, each with count, first and last
        seen, three exemplars and the taxonomy's hint. Computed from the events on each call,
        so the same events always give the same clusters (ids included). Same as `brewslm
        clusters -p NAME --json`."""
        return clusters.compute(project.get(name), stage=stage, since=since, until=until)

    @app.get("/api/projects/{name}/bundle", dependencies=deps, tags=["observability"],
             response_class=Response,
             responses={200: {"content": {"application/zip": {}},
                              "description": "The support bundle (a zip)."}})
    def support_bundle(name: str, since: str | None = None) -> Response:
        """The support bundle as a zip: manifest, project config, stage runs, events, clusters,
        ledger stats, artifacts with checksums, environment report and recent logs, with
        secrets redacted (counted per kind in manifest.json). Records a bundle_created event.
        Same as `brewslm bundle -p NAME -o FILE.zip`."""
        info = project.get(name)
        data, manifest = bundle.build(info, since=since)
        bundle.record(info, manifest, len(data), None)
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="brewslm-{name}-bundle.zip"'})

    @app.get("/api/projects/{name}/audit", dependencies=deps, tags=["observability"])
    def audit_search(name: str, stage: str | None = None, severity: str | None = None,
                     code: str | None = None, run: str | None = None,
                     since: str | None = None, until: str | None = None,
                     row: str | None = None, artifact: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=100_000)] = audit.DEFAULT_LIMIT,
                     ) -> dict[str, Any]:
        """The audit explorer: events, stage runs, ledger entries and decisions (promotion and
        preflight verdicts, --force, *_forced events, settings), each narrowed by every filter
        that applies to it. `artifact` takes an id, a unique prefix or a path inside an
        artifact. Same as `brewslm audit -p NAME ... --json`."""
        q = audit.make_query(stage=stage, severity=severity, code=code, run=run, since=since,
                             until=until, row=row, artifact=artifact, limit=limit)
        return audit.search(project.get(name), q)

    @app.get("/api/projects/{name}/audit/why/{candidate}", dependencies=deps,
             tags=["observability"])
    def audit_why(name: str, candidate: str) -> dict[str, Any]:
        """Why a model was promoted or refused: every evaluation of the candidate (a model id or
        prefix, a train run id, or an artifact made from the model) with its gates and evidence,
        the verdict of the latest, what was forced and by whom, and the runs that used it.
        Same as `brewslm audit -p NAME why CANDIDATE --json`."""
        return why.explain(project.get(name), candidate)

    @app.get("/api/projects/{name}/audit/lineage/{target:path}", dependencies=deps,
             tags=["observability"])
    def audit_lineage(name: str, target: str) -> dict[str, Any]:
        """Where an artifact came from: nodes (the artifact, then each producing run's inputs,
        back to the ingest snapshot and its source files) and edges. `target` is an id, a
        unique prefix, or a URL-encoded path of a file inside an artifact (e.g. a GGUF).
        Same as `brewslm audit -p NAME lineage TARGET --json`."""
        return lineage.trace(project.get(name), target)

    @app.get("/api/projects/{name}/audit/rows/{row_id}", dependencies=deps,
             tags=["observability"])
    def audit_row(name: str, row_id: str) -> dict[str, Any]:
        """A row's whole story (every stage's ledger entry, as GET .../rows/{row_id}) plus, for
        each evaluation that scored it, the reference, both predictions and their scores.
        Same as `brewslm audit -p NAME row ROW_ID --json`."""
        return audit.row_story(project.get(name), row_id)

    @app.get("/api/doctor", dependencies=deps, tags=["observability"])
    def doctor_report() -> dict[str, Any]:
        """Environment checks, each {name, status: ok | warn | fail, code, detail, data}, with
        the worst status and counts per status. Same as `brewslm doctor --json` (which exits 1
        when a check fails)."""
        return doctor.run_checks()
