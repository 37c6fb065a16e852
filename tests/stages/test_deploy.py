"""Stage 11 and the endpoint: a deploy is smoke-tested through the real endpoint and promoted;
one version serves at a time; rollback returns to the predecessor or is refused; a failing
smoke test rejects the version; the official openai client talks to `brewslm serve`; telemetry
counts what was served; drift checks judge live traffic against the training data."""

from __future__ import annotations

import pytest

from brewslm.errors import InputError
from brewslm.serving import deployments, telemetry
from brewslm.serving.drift import check_drift
from brewslm.serving.server import background_server, create_project_app
from brewslm.stages.deploy import deploy
from brewslm.stages.evaluate import evaluate
from brewslm.stages.export import export
from brewslm.stages.train import train

pytestmark = pytest.mark.store


def codes(result) -> list[str]:
    return [e["reason_code"] for e in result.events]


@pytest.fixture
def exported(prepare_small):
    info = prepare_small("served")
    assert train(info, overrides=["max_steps=8", "learning_rate=5e-3"]).status == "succeeded"
    judged = evaluate(info, pack="fast", overrides=["limit=8", "generation.max_new_tokens=8"])
    assert judged.result["promotable"] is True
    hf = export(info, fmt="hf")
    adapter = export(info, fmt="adapter")
    assert hf.status == adapter.status == "succeeded"
    return info, hf.result["export_id"], adapter.result["export_id"]


def test_versions_promote_supersede_and_roll_back(exported):
    info, hf_id, adapter_id = exported
    first = deploy(info, export_id=hf_id, smoke_timeout_s=120)
    assert first.status == "succeeded", first.error
    assert first.result["deployment_status"] == "promoted" and first.result["version"] == 1
    assert first.result["smoke"]["passed"] and len(first.result["smoke"]["prompts"]) == 3
    assert all(a["http_status"] == 200 for a in first.result["smoke"]["prompts"])
    assert {"deploy_smoke_passed", "deploy_version_created", "deploy_promoted"} <= set(
        codes(first))

    second = deploy(info, export_id=adapter_id, smoke_timeout_s=120)
    assert second.result["deployment_status"] == "promoted" and second.result["version"] == 2
    statuses = {v.version: (v.status, v.predecessor) for v in deployments.list_versions(info)}
    assert statuses == {1: ("superseded", None), 2: ("promoted", 1)}

    back = deployments.rollback(info)
    assert back.version == 1 and deployments.active(info).version == 1
    assert deployments.get(info, 2).status == "rolled_back"
    with pytest.raises(InputError) as refused:
        deployments.rollback(info)  # version 1 replaced nothing
    assert refused.value.code == "deploy_no_predecessor"
    assert deployments.promote(info, 2).status == "promoted"
    assert [v.status for v in deployments.list_versions(info)].count("promoted") == 1


def test_a_failing_smoke_test_rejects_the_version(exported, monkeypatch):
    from brewslm.serving import backends

    info, hf_id, _ = exported

    def broken(*_args, **_kwargs):
        raise RuntimeError("weights are corrupt")

    monkeypatch.setattr(backends.TransformersBackend, "load", staticmethod(broken))
    result = deploy(info, export_id=hf_id, smoke_timeout_s=30)
    assert (result.status, result.exit_code) == ("blocked", 3)
    assert result.error["code"] == "deploy_smoke_failed"
    assert result.result["deployment_status"] == "rejected"
    assert {a["http_status"] for a in result.result["smoke"]["prompts"]} == {503}
    assert deployments.active(info) is None
    with pytest.raises(InputError) as refused:
        deployments.promote(info, result.result["version"])
    assert refused.value.code == "deploy_version_rejected"


def test_the_openai_client_is_served_by_the_promoted_version_with_telemetry_and_drift(
        exported):
    from openai import OpenAI

    info, hf_id, adapter_id = exported
    assert deploy(info, export_id=hf_id, smoke_timeout_s=120).status == "succeeded"
    with background_server(create_project_app(info)) as base_url:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
        assert [m.id for m in client.models.list().data] == ["served"]
        reply = client.chat.completions.create(
            model="served", messages=[{"role": "user", "content": "ticket 3: app 3 broken"}],
            max_tokens=8, temperature=0)
        assert reply.choices[0].message.content is not None and reply.usage.completion_tokens
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="served", messages=[{"role": "user", "content": "ticket 3: app 3 broken"}],
            max_tokens=8, temperature=0, stream=True) if c.choices]
        assert "".join(pieces) == reply.choices[0].message.content

        for i in range(10, 40, 3):  # traffic like the training prompts (conftest's rows)
            client.chat.completions.create(
                model="served", max_tokens=4, temperature=0,
                messages=[{"role": "user", "content": f"ticket {i}: app {i % 7} broken"}])
        stats = telemetry.summary(info, 1)
        assert stats["requests"] == 12 and stats["errors"] == 0
        assert stats["latency_s"]["p50"] <= stats["latency_s"]["p99"]
        assert stats["ttft_s"]["p50"] is not None and stats["tokens_per_s"] > 0

        report = check_drift(info, endpoint=f"{base_url}/v1")
        assert report["signals"]["live_eval"]["agreement"] == 1.0
        assert report["signals"]["vocabulary"]["verdict"] == "passing"
        assert report["verdict"] in ("passing", "borderline"), report

        for i in range(12):  # traffic unlike anything trained on
            client.completions.create(model="served", max_tokens=2, temperature=0,
                                      prompt=f"quantum chromodynamics lattice gauge {i} "
                                      "hadron spectroscopy renormalization")
        drifted = check_drift(info)
        assert drifted["signals"]["vocabulary"]["verdict"] == "drift_detected"
        assert drifted["verdict"] == "drift_detected"
        assert deployments.get(info, 1).drift["verdict"] == "drift_detected"


def test_gguf_is_served_by_llama_cpp_or_refused_without_it(exported):
    from brewslm.export.gguf import llama_cpp_available

    info, _, _ = exported
    gguf = export(info, fmt="gguf", quant="q8_0")
    assert gguf.status == "succeeded", gguf.error
    readers = [r["reader"] for r in gguf.result["parity"]["readers"]]
    if not llama_cpp_available():
        assert readers == ["transformers-gguf"]
        refused = deploy(info, export_id=gguf.result["export_id"])
        assert refused.error["code"] == "serve_backend_unavailable" and refused.exit_code == 2
        return
    assert readers == ["transformers-gguf", "llama-cpp"]  # llama.cpp itself reads the file
    served = deploy(info, export_id=gguf.result["export_id"], smoke_timeout_s=120)
    assert served.status == "succeeded", served.error
    assert served.result["deployment_status"] == "promoted" and served.result["format"] == "gguf"
    assert all(a["http_status"] == 200 for a in served.result["smoke"]["prompts"])
