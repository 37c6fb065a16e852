"""Property-based test of the whole REST API: schemathesis reads the OpenAPI schema of
`create_app()` and, for every operation it lists (routes added later are picked up without
changing this file), sends generated requests, valid and invalid, through ASGI. No response may
be a server error, every declared response must match its schema, and every 4xx must carry the
project's one error body {"error": {"code", "message", "details"}}.

Each operation runs against a fresh BREWSLM_HOME holding a small real project, "fuzzed" (a
tiny JSONL ingested and mapped, a failed ingest, two deployment versions), and path and query
parameters are often swapped for that project's real name, runs, row, artifacts, dataset and
deployment versions (and for edge-of-calendar times), so the fuzzing reaches past the 404s into
the code behind them. Deterministic; BREWSLM_FUZZ_EXAMPLES=300 fuzzes deeper (about 4 min).
Left out: POST .../deployments/{version}/drift (see EXCLUDED).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from brewslm import project
from brewslm.api.app import create_app
from brewslm.serving import deployments
from brewslm.stages import data

pytestmark = pytest.mark.store

PROJECT = "fuzzed"

# Routes left out of fuzzing: (method, path). Drift re-runs the eval rows through the served
# model (long work), and the stand-in deployment versions below have no export behind them.
EXCLUDED = {("POST", "/api/projects/{name}/deployments/{version}/drift")}

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
schema.config.generation.update(
    max_examples=int(os.environ.get("BREWSLM_FUZZ_EXAMPLES", "12")),
    deterministic=True,  # the same cases on every run (Hypothesis' derandomize)
    database="none",  # and no .hypothesis folder of remembered failures
)
schema = schema.exclude(func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path)
                        in EXCLUDED)

# The real values of the current test's project by parameter name, filled in by the `fuzzed`
# fixture and read when a case is drawn.
REAL: dict[str, list[Any]] = {}
# Query parameters that name the same things as path parameters.
QUERY_ALIASES = {"run": "run_id", "row": "row_id", "artifact": "target"}
# Values generation rarely hits: ISO times at the ends of the calendar (local ones too); ids
# that are no file name (too long for one, an unknown ~user, a NUL byte); versions past INTEGER;
# a real stage, severity and reason code.
TIMES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "2026-11-27T10:00:00Z"]
NOT_FILES = ["x" * 300, "~no-such-user/x", "a\x00/b"]
EXTRA: dict[str, list[Any]] = {"since": TIMES, "until": TIMES, "target": NOT_FILES,
                               "candidate": NOT_FILES, "version": [2**31, 2**63],
                               "stage": ["ingest"], "severity": ["warning"],
                               "code": ["stage_failed"]}


def _real_or_generated(values: dict[str, Any] | None, aliases: dict[str, str]):
    """Each value with real counterparts of its type: one of them, or the generated one."""
    if not isinstance(values, dict) or not values:
        return st.just(values)
    choices = {}
    for key, generated in values.items():
        name = aliases.get(key, key)
        known = [*REAL.get(name, ()), *EXTRA.get(name, ())]
        real = [v for v in known if type(v) is type(generated)]
        choices[key] = st.sampled_from([*real, generated])
    return st.fixed_dictionaries(choices)


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict[str, Any] | None):
    return _real_or_generated(path_parameters, {})


@schema.hook
def flatmap_query(context, query: dict[str, Any] | None):
    return _real_or_generated(query, QUERY_ALIASES)


def error_body(ctx, response, case) -> bool | None:
    """A 4xx answers with the project's error body, and its reason code is a string."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert set(body) == {"error"}, f"{response.status_code} without the error body: {body}"
        err = body["error"]
        assert set(err) == {"code", "message", "details"}, err
        assert isinstance(err["code"], str) and err["code"], err
    return None


@pytest.fixture
def fuzzed(tmp_path):
    """The project the fuzzing reaches: a tiny JSONL ingested and mapped (dataset version 1)."""
    info = project.create(PROJECT, base_model="builtin:tiny", description="schema fuzzing")
    src = tmp_path / "tiny.jsonl"
    src.write_text('{"instruction": "reset my password", "response": "account"}\n'
                   '{"instruction": "the app crashes on start", "response": "bug"}\n')
    ingest = data.ingest(info, str(src))
    mapped = data.map_rows(info)
    assert ingest.status == mapped.status == "succeeded"
    # a failed run too, so the project has error events (clusters, audit, the timeline)
    assert data.ingest(info, str(tmp_path / "gone.jsonl")).status == "failed"
    rows = data.dataset_rows(info, limit=1)
    # deployment versions without an export behind them: 1 passed its smoke test, 2 did not
    for passed in (True, False):
        deployments.create(info, export_id=mapped.outputs["dataset"]["id"], fmt="safetensors",
                           run_id=None, smoke={"passed": passed})
    REAL.clear()
    REAL.update({
        "name": [PROJECT],
        "run_id": [ingest.run_id, mapped.run_id],
        "row_id": [rows["rows"][0]["row_id"]],
        "version": [str(rows["version"]["version"]), 1, 2],
        "candidate": [mapped.run_id],
        "target": [mapped.outputs["dataset"]["id"], ingest.outputs["snapshot"]["id"][:12],
                   mapped.outputs["dataset"]["path"]],  # an id, a prefix, a path inside one
    })
    yield info
    REAL.clear()


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large,
                                 # `fuzzed` is set up once per operation, on purpose
                                 HealthCheck.function_scoped_fixture])
def test_no_server_errors_and_schema_conformance(case, fuzzed):
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance,
                                   error_body])
