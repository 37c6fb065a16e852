"""Stage 09 through the runner: the trained candidate against its base on the same eval rows;
per-row results in the ledger; gates decide; a worse candidate is refused with exit 3 and its
report kept; a simulated model is refused."""

from __future__ import annotations

import json

import pytest

from brewslm import artifacts, rows
from brewslm.stages.evaluate import evaluate
from brewslm.stages.train import train

pytestmark = pytest.mark.store

FAST = ["limit=12", "generation.max_new_tokens=24"]


@pytest.fixture
def prepared(prepare_sample):
    return prepare_sample("judged")


def codes(result) -> list[str]:
    return [e["reason_code"] for e in result.events]


def test_a_better_candidate_is_promotable_and_every_row_is_scored(prepared):
    trained = train(prepared, overrides=["max_steps=30", "logging_every=10"])
    assert trained.status == "succeeded", trained.error
    result = evaluate(prepared, pack="fast", overrides=[*FAST, "slice_by=json.category"])
    out = result.to_dict()
    assert out["status"] == "succeeded", out.get("error")
    assert out["promotable"] is True and out["rows"] == 12
    assert out["candidate_run"] == trained.run_id
    loss = out["comparison"]["eval_loss"]
    assert loss["candidate"] < loss["base"] and loss["improved"] is True
    assert {g["id"]: g["passed"] for g in out["gates"]}["beats_base_on_loss"] is True
    assert set(out["metrics"]["base"]) == set(out["metrics"]["candidate"]) >= {
        "exact_match", "token_f1", "json_valid", "empty_or_refusal", "latency", "eval_loss",
        "perplexity"}
    assert set(out["slices"]["candidate"]) <= {"billing", "technical", "account", "shipping"}
    assert sum(s["rows"] for s in out["slices"]["candidate"].values()) == 12
    assert out["counts"] == {"in": 12, "out": 12, "rejected": 0}
    assert out["notes_by_reason"] == {"eval_scored": 12}
    assert "eval_promotable" in codes(result) and "eval_gate_passed" in codes(result)

    report = artifacts.get(prepared, out["report_id"])
    examples = [json.loads(line) for line in (report.path / "examples.jsonl").open()]
    assert len(examples) == 12 and examples[0]["base"]["scores"].keys() == examples[0][
        "candidate"]["scores"].keys()
    page = (report.path / "report.html").read_text()
    assert "PROMOTABLE" in page and "worst regressions first" in page
    story = rows.trace(prepared, examples[0]["row_id"])["steps"]
    assert story[-1]["stage"] == "evaluate" and story[-1]["reason_code"] == "eval_scored"


def test_a_worse_candidate_is_refused_with_exit_3_and_its_report_kept(prepared):
    broken = train(prepared, recipe="full", overrides=["learning_rate=0.5", "max_steps=4",
                                                       "warmup_steps=0", "max_grad_norm=null"])
    assert broken.status == "succeeded", broken.error
    result = evaluate(prepared, pack="fast", overrides=FAST)
    out = result.to_dict()
    assert (out["status"], result.exit_code) == ("blocked", 3)
    assert out["error"]["code"] == "eval_not_promotable"
    assert out["promotable"] is False and "beats_base_on_loss" in out["required_failed"]
    assert out["comparison"]["eval_loss"]["improved"] is False
    report = artifacts.get(prepared, out["outputs"]["eval_report"]["id"])
    assert "NOT PROMOTABLE" in (report.path / "report.html").read_text()
    assert "eval_gate_failed" in codes(result) and "stage_blocked" in codes(result)


def test_simulated_and_unknown_candidates_are_refused(prepared):
    simulated = train(prepared, backend="simulate", overrides=["max_steps=5"])
    result = evaluate(prepared, pack="fast")
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error["code"] == "eval_candidate_simulated"
    with pytest.raises(Exception) as caught:
        evaluate(prepared, candidate="run-doesnotexist")
    assert getattr(caught.value, "code", None) == "run_not_found"
    assert simulated.status == "succeeded"


def test_a_locked_gold_set_is_evaluated_pinned_and_checked_for_leaks(prepared, tmp_path):
    import pyarrow.parquet as pq

    assert train(prepared, overrides=["max_steps=10"]).status == "succeeded"
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"prompt": "Classify the support ticket. Answer with JSON. My card was "
                    "charged twice.", "reference": '{"category": "billing", "priority": '
                    '"high"}'}) + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "Reset my password please"},
                                   {"role": "assistant", "content": '{"category": "account", '
                                    '"priority": "low"}'}]}) + "\n")
    pack = tmp_path / "gold_pack.yaml"
    pack.write_text("name: gold\nmetrics: [exact_match, json_valid]\nloss: true\n"
                    "gates:\n  - {id: gold_loss, metric: eval_loss, split: gold, lte: 100.0, "
                    "required: true}\n")
    out = evaluate(prepared, pack=str(pack), overrides=FAST, gold=str(gold)).to_dict()
    assert out["status"] == "succeeded", out.get("error")
    assert out["gold"]["rows"] == 2 and out["gold"]["rows_in_train"] == 0
    assert len(out["gold"]["sha256"]) == 64
    assert out["gates"][0]["split"] == "gold" and out["gates"][0]["passed"]
    assert set(out["gold"]["metrics"]["candidate"]) >= {"exact_match", "eval_loss"}
    assert out["counts"] == {"in": 12, "out": 12, "rejected": 0}  # gold rows: not in the ledger

    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(pack.read_text() + f"gold_sha256: '{'ab' * 32}'\n")
    refused = evaluate(prepared, pack=str(pinned), overrides=FAST, gold=str(gold))
    assert (refused.exit_code, refused.error["code"]) == (2, "eval_gold_changed")

    # a gold row whose prompt is a train row's prompt is reported as a leak
    manifest = artifacts.get(prepared, out["outputs"]["eval_report"]["meta"]["candidate_id"])
    run_manifest = json.loads((manifest.path / "run_manifest.json").read_text())
    train_file = artifacts.get(prepared, run_manifest["manifest_id"]).path / "train.parquet"
    first = pq.read_table(train_file).slice(0, 1).to_pylist()[0]
    from transformers import AutoTokenizer

    from brewslm.train.data import prompt_and_answer

    tokenizer = AutoTokenizer.from_pretrained(manifest.path)
    prompt_ids, _ = prompt_and_answer(first)
    text = tokenizer.decode(prompt_ids)
    user = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text(json.dumps({"prompt": user, "reference": "x"}) + "\n")
    leaked = evaluate(prepared, pack=str(pack), overrides=FAST, gold=str(leaky))
    assert leaked.result["gold"]["rows_in_train"] == 1
    assert "eval_gold_in_train" in codes(leaked)
