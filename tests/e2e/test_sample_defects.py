"""The large bundled sample (samples/support_tickets.jsonl) through ingest -> introspect -> map
-> clean -> prepare on builtin:tiny: each data stage catches exactly the defects that
examples/make_tickets.py planted, each with the reason code meant for it, nothing else is
caught, and a row's trace names the stage and the code that caught it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from brewslm import project, rows
from brewslm.ledger import ledger_path
from brewslm.stages import data

pytestmark = pytest.mark.store
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src" / "brewslm" / "samples" / "support_tickets.jsonl"
STAGE_OF = {"malformed_json": "ingest", "not_a_record": "ingest", "missing_field": "map",
            "empty_text": "map", "wrong_type": "map", "pii_found": "clean",
            "exact_duplicate": "clean", "near_duplicate": "clean", "too_short": "clean",
            "mostly_non_text": "clean", "answer_equals_prompt": "clean",
            "repeated_ngrams": "clean", "too_many_tokens": "prepare"}


def generator():
    spec = importlib.util.spec_from_file_location("make_tickets", ROOT / "examples" /
                                                  "make_tickets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ledger(info, stage: str, run_id: str) -> list[dict]:
    return pq.read_table(ledger_path(info.dir, stage, run_id)).to_pylist()


def test_the_examples_link_is_the_packaged_file():
    assert (ROOT / "examples" / "support_tickets.jsonl").resolve() == SAMPLE.resolve()


def test_every_stage_catches_exactly_the_planted_defects():
    sample = generator().large_sample()  # (line, planted reason code or "")
    assert [line for line, _ in sample] == SAMPLE.read_text(encoding="utf-8").splitlines()
    planted = {f"line {n}": code for n, (_, code) in enumerate(sample, start=1) if code}

    info = project.create("support", base_model="builtin:tiny")
    ingest = data.ingest(info, str(SAMPLE)).to_dict()
    assert ingest["counts"] == {"in": 2468, "out": 2463, "rejected": 5}
    assert ingest["rejections_by_reason"] == {"malformed_json": 3, "not_a_record": 2}
    intro = data.introspect(info).to_dict()
    assert intro["proposal"]["mapper"] == "alpaca" and intro["proposal"]["confidence"] >= 0.8
    mapped = data.map_rows(info).to_dict()
    assert mapped["counts"] == {"in": 2463, "out": 2458, "rejected": 5}
    assert mapped["rejections_by_reason"] == {"empty_text": 2, "missing_field": 2,
                                              "wrong_type": 1}
    cleaned = data.clean(info).to_dict()
    assert cleaned["counts"] == {"in": 2458, "out": 2403, "rejected": 55}
    assert cleaned["rejections_by_reason"] == {
        "answer_equals_prompt": 1, "exact_duplicate": 30, "mostly_non_text": 1,
        "near_duplicate": 20, "repeated_ngrams": 1, "too_short": 2}
    assert cleaned["notes_by_reason"] == {"pii_found": 72}
    signals = cleaned["health"]["signals"]
    assert {s for s, v in signals.items() if v["status"] != "ok"} == {"pii"}
    assert cleaned["health"]["verdict"] == "warn" and cleaned["pii_policy"] == "redact"
    prepared = data.prepare(info).to_dict()
    assert prepared["counts"] == {"in": 2403, "out": 2401, "rejected": 2}
    assert prepared["rejections_by_reason"] == {"too_many_tokens": 2}
    assert prepared["splits"] == {"train": 2161, "eval": 240}

    # Line by line: what each stage caught is what was planted for it, with the planted code.
    results = {"ingest": ingest, "map": mapped, "clean": cleaned, "prepare": prepared}
    entries = {stage: ledger(info, stage, result["run_id"]) for stage, result in results.items()}
    position = {e["row_id"]: e["position"] for e in entries["ingest"]}
    caught = {position[e["row_id"]]: (stage, e["reason_code"])
              for stage, found in entries.items() for e in found if e["reason_code"]}
    assert caught == {line: (STAGE_OF[code], code) for line, code in planted.items()}

    # One row of each kind, traced: the stage and the code that caught it.
    row_of = {}
    for row_id, line in position.items():  # the first row of each kind, "" a clean ticket
        row_of.setdefault(planted.get(line, ""), row_id)
    for code, stage in STAGE_OF.items():
        trace = rows.trace(info, row_of[code])
        step = next(s for s in trace["steps"] if s.get("reason_code") == code)
        assert step["stage"] == stage
        if code == "pii_found":
            assert step["outcome"] == "changed" and trace["final"] == "kept at prepare"
        else:
            assert trace["final"] == f"dropped at {stage} ({code})"
        if code.endswith("_duplicate"):  # names the kept row it duplicates, an earlier line
            kept = step["detail"]["duplicate_of"]
            assert rows.trace(info, kept)["final"] == "kept at prepare"
            assert int(position[kept].split()[1]) < int(position[row_of[code]].split()[1])
    clean_row = rows.trace(info, row_of[""])
    assert [(s["stage"], s["outcome"]) for s in clean_row["steps"]] == [
        ("ingest", "kept"), ("map", "changed"), ("clean", "kept"), ("prepare", "kept")]

    # PII is redacted in the cleaned version, not only counted.
    texts = [json.dumps(r) for r in data.dataset_rows(info, limit=None)["rows"]]
    assert not any("@example." in t or "4111 1111" in t for t in texts)
    assert sum("<EMAIL>" in t or "<PHONE>" in t or "<CREDIT_CARD>" in t for t in texts) == 72

