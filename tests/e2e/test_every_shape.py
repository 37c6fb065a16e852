"""Every source format and every shape, through ingest -> introspect -> map: the right mapper
at confidence >= 0.8, and exact accounting of every record (in = accepted + rejected, with the
exact codes) — the mapping errors other tools raise at tokenization time, caught here."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brewslm import project, rows
from brewslm.stages import data

pytestmark = pytest.mark.store


def openai_json(tmp):
    good = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": [{"type": "text", "text": f"Add {i}+1"}]},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(6)]
    tool = {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3C"},
        {"role": "assistant", "content": "3C in Oslo."}]}
    bad = [{"messages": []}, {"messages": [{"role": "user", "content": "hi"}]}, "not a record"]
    path = tmp / "chat.json"
    path.write_text(json.dumps(good + [tool] + bad))
    return path, "openai_messages", (9, 7, {"empty_conversation": 1, "no_assistant_turn": 1}), 1


def sharegpt_parquet(tmp):
    convs = [[{"from": "human", "value": f"Q{i}"}, {"from": "gpt", "value": f"A{i}"}]
             for i in range(6)]
    convs.append([{"from": "human", "value": "Call it"},
                  {"from": "function_call", "value": '{"name": "f", "arguments": {"x": 1}}'},
                  {"from": "observation", "value": "42"}, {"from": "gpt", "value": "It is 42."}])
    convs.append([{"from": "human", "value": "Q"}, {"from": "gpt", "value": None}])
    convs.append([{"from": "human", "value": "Q"}, {"from": "alien", "value": "A"}])
    table = pa.table({"conversations": [json.dumps(c) for c in convs],
                      "tools": ["[]"] * len(convs)})
    table = table.set_column(0, "conversations", pa.array(convs))
    path = tmp / "sharegpt.parquet"
    pq.write_table(table, path)
    return path, "sharegpt", (9, 7, {"null_turn": 1, "unknown_role": 1}), 0


def prompt_completion_csv(tmp):
    path = tmp / "pc.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "completion"])
        for i in range(6):
            writer.writerow([f"Translate 'cat, dog' #{i}", f"chat, chien\n(line two {i})"])
        writer.writerow(["Empty answer", ""])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("only one field\n")
    return path, "prompt_completion", (7, 6, {"empty_text": 1}), 1


def question_answer_tsv(tmp):
    lines = ["question\tanswer\tcontext"]
    lines += [f"What is {i}+{i}?\t{2 * i}\tArithmetic." for i in range(6)]
    lines += ["\tforty\tNo question."]
    path = tmp / "qa.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path, "question_answer", (7, 6, {"empty_text": 1}), 0


def preference_object(tmp):
    records = {f"pair{i}": {"prompt": f"Say hi {i}", "chosen": f"Hi {i}!", "rejected": "Go away."}
               for i in range(6)}
    records["same"] = {"prompt": "x", "chosen": "y", "rejected": "y"}
    path = tmp / "prefs.json"
    path.write_text(json.dumps(records))
    return path, "preference", (7, 6, {"identical_preference": 1}), 0


def text_folder(tmp):
    folder = tmp / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"doc{i}.md").write_text(f"# Title {i}\n\nSome body text number {i}.\n")
    return folder, "text", (5, 5, {}), 0


def classification_hf(tmp):
    datasets = pytest.importorskip("datasets")
    records = [{"text": f"I {'love' if i % 2 else 'hate'} it #{i}",
                "label": "pos" if i % 2 else "neg"} for i in range(8)]
    records.append({"text": "no label", "label": None})
    datasets.Dataset.from_list(records).save_to_disk(str(tmp / "clf"))
    return f"hf:{tmp / 'clf'}", "classification", (9, 8, {"missing_field": 1}), 0


SHAPES = [openai_json, sharegpt_parquet, prompt_completion_csv, question_answer_tsv,
          preference_object, text_folder, classification_hf]


@pytest.mark.parametrize("make", SHAPES, ids=[f.__name__ for f in SHAPES])
def test_shape_maps_with_exact_accounting(tmp_path, make):
    source, mapper, (n_in, n_out, reasons), malformed = make(tmp_path)
    info = project.create("shapes", base_model="builtin:tiny")
    ingest = data.ingest(info, str(source)).to_dict()
    assert ingest["status"] == "succeeded", ingest.get("error")
    assert ingest["counts"]["in"] == n_in + malformed
    assert ingest["counts"]["rejected"] == malformed
    intro = data.introspect(info).to_dict()
    assert intro["proposal"]["mapper"] == mapper, intro["hypotheses"][:2]
    assert intro["proposal"]["confidence"] >= 0.8
    dry = data.map_rows(info, dry_run=True).to_dict()
    committed = data.map_rows(info).to_dict()
    for out in (dry, committed):
        assert out["counts"] == {"in": n_in, "out": n_out, "rejected": n_in - n_out}
        assert out["rejections_by_reason"] == reasons
    # clean and prepare work on every mapper's output (tiny fixtures are repetitive, so the
    # health gate is forced here; test_clean covers the gate itself)
    cleaned = data.clean(info, force=True).to_dict()
    assert cleaned["status"] == "succeeded", cleaned.get("error")
    prepared = data.prepare(info, eval_fraction=0.2).to_dict()
    assert prepared["status"] == "succeeded", prepared.get("error")
    assert prepared["counts"]["in"] == cleaned["rows_written"]
    assert prepared["counts"]["out"] > 0
    stats = rows.stats(info)
    assert not stats["flagged"]
    assert [s["stage"] for s in stats["stages"]] == ["ingest", "map", "clean", "prepare"]
