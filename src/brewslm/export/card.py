"""What every export carries beside its weights: a model card (README.md, Hugging Face format)
naming the manifest hash, the training run and the eval results, and a generation config with
the settings the candidate was evaluated under.

    from brewslm.export.card import write_card, write_generation_config
    write_generation_config(folder, tokenizer, evaluation)
    write_card(folder, facts)     # facts: format, quant, base model, runs, eval, parity, usage
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LIBRARY = {"adapter": "peft", "gguf": "gguf", "hf": "transformers",
           "safetensors": "transformers", "vllm": "vllm"}


def generation_config(tokenizer: Any, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """Greedy decoding up to the eval pack's max_new_tokens, stopping at EOS or end of turn."""
    from brewslm.evaluate.generate import stop_ids

    gen = (evaluation or {}).get("generation") or {}
    greedy = gen.get("greedy", True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = {"do_sample": not greedy, "max_new_tokens": gen.get("max_new_tokens", 64),
              "eos_token_id": stop_ids(tokenizer), "pad_token_id": pad,
              "bos_token_id": tokenizer.bos_token_id}
    if not greedy:
        config |= {"temperature": gen.get("temperature", 1.0), "top_p": gen.get("top_p", 1.0)}
    return config


def write_generation_config(folder: Path, tokenizer: Any,
                            evaluation: dict[str, Any] | None) -> Path:
    path = folder / "generation_config.json"
    path.write_text(json.dumps(generation_config(tokenizer, evaluation), indent=2,
                               sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_card(folder: Path, facts: dict[str, Any]) -> Path:
    """README.md: YAML front matter for the Hub, then provenance, eval results, parity, usage."""
    front = {"library_name": LIBRARY[facts["format"]], "base_model": facts["base_model"],
             "tags": ["brewslm", "fine-tuned", facts["format"]],
             "brewslm": {"manifest_hash": facts["manifest_hash"],
                         "candidate_id": facts["candidate_id"],
                         "training_run": facts["training_run"],
                         "evaluation_run": (facts.get("evaluation") or {}).get("run_id"),
                         "forced": facts["forced"]}}
    parts = ["---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n",
             f"# {facts['project']} ({facts['format']}"
             + (f", {facts['quant']}" if facts.get("quant") else "") + ")\n",
             f"Fine-tuned from `{facts['base_model']}` by BrewSLM.\n",
             _provenance(facts), _eval_section(facts.get("evaluation")),
             _parity_section(facts["parity"]), _usage(facts)]
    path = folder / "README.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _provenance(facts: dict[str, Any]) -> str:
    rows = [("manifest hash", facts["manifest_hash"]), ("training run", facts["training_run"]),
            ("candidate (model artifact)", facts["candidate_id"])]
    text = "## Provenance\n\n| | |\n|---|---|\n" + "".join(f"| {k} | `{v}` |\n" for k, v in rows)
    if facts["forced"]:
        text += ("\n**Exported with --force**: this candidate was not shown promotable by "
                 "evaluate.\n")
    return text


def _eval_section(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return "## Evaluation\n\nNot evaluated.\n"
    lines = [f"## Evaluation\n\nEval run `{evaluation['run_id']}`, pack "
             f"`{evaluation.get('pack')}`, {evaluation.get('rows')} eval rows; "
             f"promotable: **{evaluation['promotable']}**.\n",
             "| metric | base | candidate | delta |", "|---|---|---|---|"]
    for name, m in (evaluation.get("comparison") or {}).items():
        lines.append(f"| {name} | {_n(m.get('base'))} | {_n(m.get('candidate'))} "
                     f"| {_n(m.get('delta'))} |")
    lines += ["", "| gate | required | passed | evidence |", "|---|---|---|---|"]
    lines += [f"| {g['id']} | {g['required']} | {g['passed']} | {g['evidence']} |"
              for g in evaluation.get("gates") or []]
    return "\n".join(lines) + "\n"


def _parity_section(parity: list[dict[str, Any]]) -> str:
    lines = ["## Parity\n\nNext-token logits of this export, read back independently, against "
             "the evaluated candidate on fixed prompts:\n",
             "| reader | passed | max abs diff | tolerance | argmax agreement | tokenization "
             "| chat template |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['reader']} | {p['passed']} | {p['max_abs_diff']:.3g} | {p['tolerance']} | "
              f"{p['argmax_agreement']:.0%} | {p['tokenization_equal']} | "
              f"{p['chat_template_equal']} |" for p in parity]
    return "\n".join(lines) + "\n"


def _usage(facts: dict[str, Any]) -> str:
    return "## Usage\n\n```\n" + facts["usage"].strip() + "\n```\n\nVerify the files with " \
        "`sha256sum -c SHA256SUMS`.\n"


def _n(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if isinstance(x, float) else str(x)
