"""Observability surfaces over the one RunEvent stream (issue 8), shared by the CLI and the API.

    clusters.compute(project)        brewslm clusters -p NAME     error events grouped by signature
    bundle.write(project, path)      brewslm bundle -p NAME -o F  support bundle, secrets redacted
    audit.search(project, flt)       brewslm audit -p NAME ...    events, runs, ledger, decisions
    why.explain(project, candidate)  brewslm audit -p NAME why C  why a model was promoted/refused
    lineage.trace(project, target)   brewslm audit -p NAME lineage ARTIFACT
    audit.row_story(project, row)    brewslm audit -p NAME row ROW_ID
    doctor.run_checks()              brewslm doctor               environment checks

Everything here reads (events, stage runs, ledger files, artifacts) and computes on demand: no
table of its own, so every answer is a pure function of the stream and recomputing it is
idempotent.
"""
