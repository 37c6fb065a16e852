"""CLI commands for stage 11, deploy, and the endpoint; registered by cli.py.

    brewslm deploy -p NAME [--export ID] [--no-promote] [--smoke-timeout S] [--json]
    brewslm deploy list -p NAME [--json]
    brewslm deploy promote -p NAME VERSION [--json]
    brewslm deploy rollback -p NAME [--json]
    brewslm deploy telemetry -p NAME [--version V] [--json]
    brewslm deploy drift -p NAME [--version V] [--endpoint URL] [--json]
    brewslm serve -p NAME [--host 127.0.0.1] [--port 8000]

`deploy` smoke-tests an export through the real endpoint and promotes it when it passes (exit 3
and a rejected version when it does not). `serve` answers /v1/chat/completions,
/v1/completions and /v1/models with the promoted version, switching on promote or rollback
without a restart. The logic lives in stages/deploy.py and serving/.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brewslm import console, project
from brewslm.cli_common import DetachOpt, JsonOpt, ProjectOpt, finish_stage, guarded, stage_call

deploy_app = typer.Typer(help="11 deploy: versions of the served model (smoke test, promote, "
                         "rollback, telemetry, drift).")
VersionOpt = Annotated[int | None, typer.Option("--version", help="A deployment version "
                                                "(default: the promoted one).")]


def register(app: typer.Typer) -> None:
    """Add deploy (with its subcommands) and serve to the main app."""
    app.add_typer(deploy_app, name="deploy")

    @app.command("serve")
    @guarded
    def serve_cmd(project_name: ProjectOpt,
                  host: Annotated[str, typer.Option(help="Interface to bind; beyond loopback "
                                                    "needs BREWSLM_API_TOKEN.")] = "127.0.0.1",
                  port: Annotated[int, typer.Option(help="TCP port.")] = 8000) -> None:
        """Serve the promoted version at an OpenAI-compatible endpoint (/v1/...)."""
        from brewslm.serving.server import serve

        info = project.get(project_name)
        console.out.print(f"serving project {info.name} at http://{host}:{port}/v1 "
                          "(the promoted version; promote or rollback switch it live)")
        serve(info, host, port)


@deploy_app.callback(invoke_without_command=True)
@guarded
def deploy_cmd(ctx: typer.Context,
               project_name: Annotated[str | None, typer.Option(
                   "--project", "-p", help="Project name.")] = None,
               export_id: Annotated[str | None, typer.Option(
                   "--export", help="An export id (default: the latest export).")] = None,
               no_promote: Annotated[bool, typer.Option(
                   "--no-promote", help="Leave the new version pending.")] = False,
               smoke_timeout: Annotated[float, typer.Option(
                   "--smoke-timeout", help="Seconds each smoke prompt may take.")] = 60.0,
               json_out: JsonOpt = False, detach: DetachOpt = False) -> None:
    """Deploy an export as a new version: smoke test, then promote (exit 3 if rejected)."""
    if ctx.invoked_subcommand is not None:
        return
    if project_name is None:
        raise typer.BadParameter("missing --project / -p")
    result = stage_call("deploy", project_name, {
        "export_id": export_id, "promote": not no_promote, "smoke_timeout_s": smoke_timeout},
        json_out=json_out, detach=detach)
    if not json_out and result.result.get("smoke"):
        _print_smoke(result.result)
    finish_stage(result, json_out)


@deploy_app.command("list")
@guarded
def list_cmd(project_name: ProjectOpt, json_out: JsonOpt = False) -> None:
    """Every version with its status, export and smoke result."""
    from brewslm.serving import deployments

    versions = [v.to_dict() for v in deployments.list_versions(project.get(project_name))]
    if json_out:
        console.print_json({"project": project_name, "versions": versions})
        return
    console.out.print(console.table(f"deployments of {project_name}", [
        "version", "status", "format", "export", "smoke", "predecessor", "created"], [
        (v["version"], _status(v["status"]), v["format"], v["export_id"][:12],
         "pass" if v["smoke"].get("passed") else "FAIL", v["predecessor"] or "-",
         v["created_at"][:19]) for v in versions]))


@deploy_app.command("promote")
@guarded
def promote_cmd(project_name: ProjectOpt, version: int, json_out: JsonOpt = False) -> None:
    """Make VERSION the one served (it must have passed its smoke test)."""
    from brewslm.serving import deployments

    _done(deployments.promote(project.get(project_name), version).to_dict(), json_out)


@deploy_app.command("rollback")
@guarded
def rollback_cmd(project_name: ProjectOpt, json_out: JsonOpt = False) -> None:
    """Return to the version the serving one replaced (refused when there is none)."""
    from brewslm.serving import deployments

    _done(deployments.rollback(project.get(project_name)).to_dict(), json_out)


@deploy_app.command("telemetry")
@guarded
def telemetry_cmd(project_name: ProjectOpt, version: VersionOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Requests, errors, latency p50/p95/p99, time to first token and tokens/s."""
    from brewslm.serving import deployments, telemetry

    info = project.get(project_name)
    if version is None:
        active = deployments.active(info)
        version = active.version if active else None
    found = telemetry.summary(info, version)
    if json_out:
        console.print_json(found)
        return
    lat, ttft = found["latency_s"], found["ttft_s"]
    console.out.print(console.table(f"telemetry of version {version}", ["figure", "value"], [
        ("requests", found["requests"]), ("errors", found["errors"]),
        ("latency p50 / p95 / p99 (s)", _triple(lat)), ("ttft p50 / p95 / p99 (s)",
                                                         _triple(ttft)),
        ("tokens/s", found["tokens_per_s"] or "-"), ("by HTTP status", found["by_status"])]))


@deploy_app.command("drift")
@guarded
def drift_cmd(project_name: ProjectOpt, version: VersionOpt = None,
              endpoint: Annotated[str | None, typer.Option(
                  "--endpoint", help="The live endpoint's base URL (…/v1): re-run the eval "
                  "rows against it.")] = None,
              json_out: JsonOpt = False) -> None:
    """Compare live requests with the training data and live answers with evaluate's."""
    from brewslm.serving.drift import check_drift

    report = check_drift(project.get(project_name), version, endpoint=endpoint)
    if json_out:
        console.print_json(report)
        return
    console.out.print(console.table(f"drift of version {report['version']}", [
        "signal", "verdict", "value", "baseline", "why"], [
        (name, s["verdict"], s.get("value", "-"), s.get("baseline", "-"), s.get("why", ""))
        for name, s in report["signals"].items()]))
    console.out.print(f"verdict: [bold]{report['verdict']}[/]")


def _print_smoke(res: dict[str, Any]) -> None:
    smoke = res["smoke"]
    console.out.print(console.table("smoke test through /v1/chat/completions", [
        "prompt", "status", "latency (s)", "answer"], [
        (a["prompt"][:40], a["http_status"], f"{a['latency_s']:.2f}",
         (a["answer"] or "")[:50]) for a in smoke["prompts"]]))
    console.out.print(f"version {res['version']}: {_status(res['deployment_status'])}; serve "
                      f"it with `{res['serve']}` at {res['endpoint']}")


def _done(version: dict[str, Any], json_out: bool) -> None:
    if json_out:
        console.print_json(version)
    else:
        console.out.print(f"version {version['version']} is {_status(version['status'])}")


def _status(status: str) -> str:
    colour = {"promoted": "green", "rejected": "red", "rolled_back": "yellow"}.get(status)
    return f"[{colour}]{status}[/]" if colour else status


def _triple(p: dict[str, Any]) -> str:
    return " / ".join("-" if p[k] is None else f"{p[k]:.3f}" for k in ("p50", "p95", "p99"))
