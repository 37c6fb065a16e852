"""Parity: an export must reproduce the model it came from, read back by an independent
reader (transformers' from_pretrained for HF folders).

    from brewslm.export.parity import check_parity
    report = check_parity(reference_model, reference_tokenizer, export_dir, prompts,
                          tolerance=1e-4)
    report["passed"], report["max_abs_diff"], report["tokenization_equal"], ...

Three things must hold, each reported: the same token ids for every prompt (tokenization), the
same chat template text, and next-token logits on the fixed prompts within `tolerance` (max
absolute difference; tight for fp32 / f16 folders, looser for quantized formats). The classic
failures of other tools this catches: a "merged" model that equals its base (the adapter was
never applied), and a template or tokenizer that differs from the one evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIXED_PROMPTS = ("Classify the support ticket. Answer with JSON.\n\nMy invoice is wrong.",
                 "Hello, my parcel never arrived.", "Reset my password please")


def check_parity(reference: Any, tokenizer: Any, export_dir: str | Path,
                 prompts: tuple[str, ...] = FIXED_PROMPTS, *, tolerance: float) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    exported = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32).eval()
    exported_tokenizer = AutoTokenizer.from_pretrained(export_dir)
    tokenization_equal = all(tokenizer(p)["input_ids"] == exported_tokenizer(p)["input_ids"]
                             for p in prompts)
    template_equal = (getattr(tokenizer, "chat_template", None)
                      == getattr(exported_tokenizer, "chat_template", None))
    max_diff = 0.0
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
            want = reference(input_ids=ids).logits[0, -1].float()
            got = exported(input_ids=ids).logits[0, -1].float()
            max_diff = max(max_diff, float((want - got).abs().max()))
    passed = tokenization_equal and template_equal and max_diff <= tolerance
    return {"passed": passed, "max_abs_diff": max_diff, "tolerance": tolerance,
            "tokenization_equal": tokenization_equal, "chat_template_equal": template_equal,
            "prompts": len(prompts)}
