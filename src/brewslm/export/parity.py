"""Parity: an export must reproduce the model it came from, read back by an independent reader.

    from brewslm.export.parity import check_parity, hf_reader, adapter_reader, gguf_reader
    report = check_parity(reference_model, reference_tokenizer, hf_reader(export_dir),
                          tolerance=1e-4)
    report["passed"], report["max_abs_diff"], report["argmax_agreement"], ...

Three things must hold, each reported: the same token ids for every prompt (tokenization), the
same chat template text, and next-token logits on fixed prompts within `tolerance` (max
absolute difference; tight for fp32 / f16, looser for quantized formats: see TOLERANCE). The
prompts are plain text and the same text rendered through the chat template, so the special
tokens of a chat turn are checked too. The classic failures of other tools this catches: a
"merged" model that equals its base (the adapter was never applied), a GGUF whose tensors were
written in the wrong layout, and a template or tokenizer that differs from the one evaluated.

A reader is a function returning (model, tokenizer, chat_template) loaded from the export alone:
transformers' from_pretrained for folders, base + peft for adapters, transformers' GGUF loader
for GGUF files (the tokenizer then comes from the GGUF metadata, not from tokenizer.json).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXED_PROMPTS = ("Classify the support ticket. Answer with JSON.\n\nMy invoice is wrong.",
                 "Hello, my parcel never arrived.", "Reset my password please")

# Max |logit difference| allowed per weight precision of a folder export (GGUF has its own,
# gguf.PARITY_TOLERANCE). fp32 reloads are exact up to summation order; f16 and bf16 round every
# weight (bf16 keeps 8 mantissa bits, f16 11), and the gap grows with the size of the logits:
# builtin:tiny after 500 pretraining steps differs by ~5e-3 in f16. Figures: benchmarks/README.md.
TOLERANCE = {"f32": 1e-4, "f16": 2e-2, "bf16": 1.5e-1}

Reader = Callable[[], tuple[Any, Any, str | None]]


def hf_reader(export_dir: str | Path) -> Reader:
    """A Hugging Face folder read back with from_pretrained (weights upcast to fp32)."""

    def read() -> tuple[Any, Any, str | None]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(export_dir)
        return model, tokenizer, getattr(tokenizer, "chat_template", None)

    return read


def adapter_reader(base_path: str | Path, export_dir: str | Path) -> Reader:
    """A LoRA adapter folder applied by peft to a fresh copy of the base weights."""

    def read() -> tuple[Any, Any, str | None]:
        from brewslm.evaluate.generate import load_model

        model, tokenizer = load_model(base_path, adapter=export_dir)
        return model, tokenizer, getattr(tokenizer, "chat_template", None)

    return read


def gguf_reader(gguf_file: str | Path) -> Reader:
    """A GGUF file read by transformers' GGUF loader; the template from the GGUF metadata."""

    def read() -> tuple[Any, Any, str | None]:
        from brewslm.export import gguf

        model, tokenizer = gguf.load_with_transformers(Path(gguf_file))
        return model.eval(), tokenizer, gguf.read_gguf_info(Path(gguf_file))["chat_template"]

    return read


def llama_cpp_reader(gguf_file: str | Path) -> Reader:
    """llama-cpp-python (optional extra `llama`): llama.cpp's own tokenizer and forward pass,
    wrapped so check_parity can call it like a transformers model."""

    def read() -> tuple[Any, Any, str | None]:
        from llama_cpp import Llama

        from brewslm.export import gguf

        llm = Llama(model_path=str(gguf_file), n_ctx=512, logits_all=True, verbose=False)
        return (_LlamaCppModel(llm), _LlamaCppTokenizer(llm),
                gguf.read_gguf_info(Path(gguf_file))["chat_template"])

    return read


class _LlamaCppTokenizer:
    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True)
        return {"input_ids": list(ids)}


class _LlamaCppModel:
    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def __call__(self, input_ids: Any) -> Any:
        import torch

        ids = [int(i) for i in input_ids[0]]
        self.llm.reset()
        self.llm.eval(ids)
        last = torch.tensor(self.llm.scores[len(ids) - 1], dtype=torch.float32)
        return _Logits(last.view(1, 1, -1))


class _Logits:
    def __init__(self, logits: Any) -> None:
        self.logits = logits


def parity_prompts(tokenizer: Any, prompts: tuple[str, ...] = FIXED_PROMPTS) -> list[str]:
    """The fixed prompts as plain text and rendered as a user turn by the chat template."""
    out = list(prompts)
    if getattr(tokenizer, "chat_template", None):
        out += [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in prompts]
    return out


def check_parity(reference: Any, tokenizer: Any, reader: Reader | str | Path,
                 prompts: tuple[str, ...] = FIXED_PROMPTS, *, tolerance: float,
                 name: str = "transformers") -> dict[str, Any]:
    """Compare the export (loaded by `reader`, or from_pretrained of a folder) with the
    reference model on the fixed prompts."""
    import torch

    if not callable(reader):
        reader = hf_reader(reader)
    exported, exported_tokenizer, exported_template = reader()
    texts = parity_prompts(tokenizer, prompts)
    mismatched = [t for t in texts if _ids(tokenizer, t) != _ids(exported_tokenizer, t)]
    template_equal = getattr(tokenizer, "chat_template", None) == exported_template
    max_diff, agree = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([_ids(tokenizer, text)])
            want = reference(input_ids=ids).logits[0, -1].float()
            got = exported(input_ids=ids).logits[0, -1].float()
            max_diff = max(max_diff, float((want - got).abs().max()))
            agree += int(want.argmax() == got.argmax())
    passed = not mismatched and template_equal and max_diff <= tolerance
    return {"passed": passed, "reader": name, "max_abs_diff": max_diff, "tolerance": tolerance,
            "argmax_agreement": agree / len(texts), "tokenization_equal": not mismatched,
            "tokenization_mismatches": mismatched[:3], "chat_template_equal": template_equal,
            "prompts": len(texts)}


def _ids(tokenizer: Any, text: str) -> list[int]:
    # Rendered chat text already holds its special tokens: add none of the tokenizer's own.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
