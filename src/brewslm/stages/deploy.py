"""Stage 11, deploy: an export becomes a numbered deployment version, smoke-tested through the
real OpenAI-compatible endpoint, and promoted to serve when the smoke test passes.

    from brewslm.stages.deploy import deploy
    result = deploy(project)                    # the latest export; promote when smoke passes
    result = deploy(project, export_id="ab12", promote=False)       # pending until promoted
    result.result["version"], result.result["deployment_status"], result.result["endpoint"]

validate() refuses an artifact that is not a published export (every published export passed
its parity gate) and a format this machine cannot serve (GGUF without llama-cpp-python). run()
starts the endpoint on a free loopback port with this export as the served model, sends the
fixed SMOKE_PROMPTS as chat completions, and requires each to answer 200 within the time limit.
The smoke report is the stage's output artifact. The version is created `pending` (passed) or
`rejected` (failed: the run ends blocked, exit 3, with the report kept); a passing version is
promoted unless promote=False. Versions, promote and rollback: serving/deployments.py;
`brewslm serve` serves the promoted version.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.outputs import require_output
from brewslm.stages.runner import StageResult, run_stage

SMOKE_PROMPTS = ("Hello, my parcel never arrived.", "Reset my password please",
                 "My invoice is wrong, I was charged twice.")
SMOKE_MAX_TOKENS = 16
DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"


def deploy(project: ProjectInfo, *, export_id: str | None = None, promote: bool = True,
           smoke_timeout_s: float = 60.0, parent_run_id: str | None = None) -> StageResult:
    """Run stage 11 on `export_id` (default: the latest export)."""
    chosen = require_output(project, "export", "export", export_id, "deploy_no_export",
                            "run `brewslm export -p NAME --format hf` first")
    params = {"promote": promote, "smoke_timeout_s": smoke_timeout_s}
    # Never reused: every deploy is a new version, smoke-tested afresh.
    return run_stage(DeployStage(), project, params=params, inputs={"export": chosen},
                     parent_run_id=parent_run_id, reuse=False)


class DeployStage:
    name, number, version = "deploy", 11, "1"
    inputs = ("export",)
    outputs = ("smoke_report",)

    def validate(self, ctx: StageContext) -> None:
        export = ctx.inputs["export"]
        if export.kind != "export" or not export.meta.get("parity_passed"):
            raise InputError("deploy_export_invalid", f"artifact {export.id[:16]} is a "
                             f"{export.kind}, not an export that passed parity; deploy what "
                             "`brewslm export` published", artifact=export.id)
        if export.meta.get("format") == "gguf":
            from brewslm.export.gguf import llama_cpp_available

            if not llama_cpp_available():
                raise InputError("serve_backend_unavailable", "serving GGUF needs "
                                 "llama-cpp-python: pip install 'brewslm[llama]' (or deploy "
                                 "an hf, safetensors, adapter or vllm export)", format="gguf")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from brewslm.serving import deployments

        export = ctx.inputs["export"]
        smoke = self._smoke(ctx)
        builder = ctx.new_artifact("smoke_report")
        (builder.dir / "smoke.json").write_text(json.dumps(smoke, indent=2, sort_keys=True),
                                                encoding="utf-8")
        ctx.publish("smoke_report", builder, {"passed": smoke["passed"]})
        version = deployments.create(ctx.project, export_id=export.id,
                                     fmt=export.meta["format"], run_id=ctx.run_id, smoke=smoke)
        if not smoke["passed"]:
            ctx.refuse_after_outputs(BlockedError(
                "deploy_smoke_failed", f"version {version.version} is rejected: "
                f"{smoke['failed']} of {len(smoke['prompts'])} smoke prompts did not answer "
                f"200 within {smoke['timeout_s']}s", version=version.version))
        elif ctx.params["promote"]:
            version = deployments.promote(ctx.project, version.version, run_id=ctx.run_id)
        return {"deployment_id": version.id, "version": version.version,
                "deployment_status": version.status, "export_id": export.id,
                "format": export.meta["format"], "smoke": smoke,
                "endpoint": DEFAULT_ENDPOINT, "serve": f"brewslm serve -p {ctx.project.name}"}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        """A version is promoted only with a passing smoke test (deployments enforces the rest)."""
        if result["deployment_status"] == "promoted" and not result["smoke"]["passed"]:
            raise BrewError("contract_violated", "a version was promoted without a passing "
                            "smoke test")

    def _smoke(self, ctx: StageContext) -> dict[str, Any]:
        from brewslm.serving.deployments import Version
        from brewslm.serving.openai_app import create_serving_app
        from brewslm.serving.server import active_model_for, background_server

        export, timeout = ctx.inputs["export"], float(ctx.params["smoke_timeout_s"])
        candidate = Version("smoke-" + ctx.run_id, 0, export.id, export.meta["format"],
                            "pending", None, ctx.run_id, {}, None, "", "")
        active = active_model_for(ctx.project, candidate)
        app = create_serving_app(lambda: active, lambda _record: None)
        answers = []
        with background_server(app) as base_url:
            for i, prompt in enumerate(SMOKE_PROMPTS):
                answers.append(_ask(base_url, ctx.project.name, prompt, timeout))
                ctx.progress(i + 1, len(SMOKE_PROMPTS), step="smoke")
        failed = sum(not a["ok"] for a in answers)
        smoke = {"passed": failed == 0, "failed": failed, "timeout_s": timeout,
                 "prompts": answers, "endpoint": "/v1/chat/completions"}
        if failed:
            ctx.emit("deploy_smoke_failed", f"smoke test failed: {failed} of {len(answers)} "
                     f"prompts did not answer within {timeout}s", severity="error",
                     answers=answers)
        else:
            ctx.emit("deploy_smoke_passed", f"smoke test passed: {len(answers)} prompts "
                     f"answered, slowest {max(a['latency_s'] for a in answers):.2f}s",
                     answers=answers)
        return smoke


def _ask(base_url: str, model: str, prompt: str, timeout: float) -> dict[str, Any]:
    """One chat completion through HTTP; ok when it answers 200 within `timeout`."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": SMOKE_MAX_TOKENS, "temperature": 0}).encode()
    request = urllib.request.Request(f"{base_url}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            doc, status = json.loads(response.read()), response.status
    except urllib.error.HTTPError as exc:
        doc, status = _error_doc(exc), exc.code
    except (urllib.error.URLError, TimeoutError) as exc:
        doc, status = {"error": {"message": str(exc)}}, None
    latency = time.monotonic() - started
    ok = status == 200 and latency <= timeout
    answer = doc["choices"][0]["message"]["content"] if status == 200 else None
    return {"prompt": prompt, "ok": ok, "http_status": status, "latency_s": round(latency, 4),
            "answer": answer, "error": None if status == 200 else doc.get("error")}


def _error_doc(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        return json.loads(exc.read())
    except ValueError:
        return {"error": {"message": str(exc)}}

