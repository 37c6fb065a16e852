"""Run a model over the eval split: greedy (or sampled) answers with their latency, and the
teacher-forced loss. Base and candidate go through the same code with the same settings.

    from brewslm.evaluate.generate import load_model, generate, eval_loss
    model, tokenizer = load_model(base_path)                       # the base
    model, tokenizer = load_model(base_path, adapter=model_dir)    # base + LoRA adapter
    model, tokenizer = load_model(model_dir)                       # full fine-tune weights
    answers = generate(model, tokenizer, rows, max_new_tokens=64, batch_size=16)
    loss = eval_loss(model, rows, pad_id=tokenizer.pad_token_id, batch_size=16)

Rows are the manifest's eval rows (input_ids, labels as prepare wrote them): the prompt is every
token before the first trained label — exactly what the chat template renders up to the
assistant turn — and the reference is the trained answer, decoded without special tokens.
Batches are left-padded so every prompt ends where generation starts. Latency per example is
its batch's wall time divided by the batch size (what a batched server would see per request).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from brewslm.train.data import PadCollator, prompt_and_answer


def load_model(path: str | Path, *, adapter: str | Path | None = None) -> tuple[Any, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(adapter or path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        from brewslm.train.engine import quiet_deprecations

        with quiet_deprecations():
            model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval(), tokenizer


def stop_ids(tokenizer: Any) -> list[int]:
    """End of sequence and end of turn (ChatML's <|im_end|>) both end an answer."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def generate(model: Any, tokenizer: Any, rows: list[dict[str, Any]], *, max_new_tokens: int,
             batch_size: int, greedy: bool = True, temperature: float = 1.0, top_p: float = 1.0,
             seed: int = 0, progress: Any = None) -> list[dict[str, Any]]:
    """One {row_id, prompt, prediction, reference, latency_s, new_tokens} per row, in order."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    collate = PadCollator(pad_id, padding_side="left")
    stops = stop_ids(tokenizer)
    out: list[dict[str, Any]] = []
    torch.manual_seed(seed)
    for start in range(0, len(rows), batch_size):
        batch_rows = rows[start:start + batch_size]
        pieces = [prompt_and_answer(row) for row in batch_rows]
        batch = collate([{"input_ids": prompt} for prompt, _ in pieces])
        began = time.perf_counter()
        with torch.no_grad():
            generated = model.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                max_new_tokens=max_new_tokens, do_sample=not greedy,
                temperature=temperature if not greedy else None,
                top_p=top_p if not greedy else None, eos_token_id=stops, pad_token_id=pad_id)
        latency = (time.perf_counter() - began) / len(batch_rows)
        width = batch["input_ids"].shape[1]
        for row, (prompt, answer), ids in zip(batch_rows, pieces, generated, strict=True):
            new = _until_stop(ids[width:].tolist(), stops)
            out.append({"row_id": row["row_id"],
                        "prompt": tokenizer.decode(prompt, skip_special_tokens=False),
                        "prediction": tokenizer.decode(new, skip_special_tokens=True).strip(),
                        "reference": tokenizer.decode(answer, skip_special_tokens=True).strip(),
                        "latency_s": round(latency, 5), "new_tokens": len(new)})
        if progress:
            progress(len(out), len(rows))
    return out


def _until_stop(ids: list[int], stops: list[int]) -> list[int]:
    for i, tid in enumerate(ids):
        if tid in stops:
            return ids[:i]
    return ids


def eval_loss(model: Any, rows: list[dict[str, Any]], *, pad_id: int,
              batch_size: int) -> dict[str, float]:
    """Mean loss per trained token over the rows (labels as prepare masked them), and its
    perplexity: the same number the Trainer's eval_loss estimates, but token-weighted."""
    import torch

    collate = PadCollator(pad_id)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collate(rows[start:start + batch_size])
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
            labels = batch["labels"][:, 1:].reshape(-1)
            total += float(torch.nn.functional.cross_entropy(shifted, labels,
                                                             ignore_index=-100,
                                                             reduction="sum"))
            tokens += int((labels != -100).sum())
    from brewslm.evaluate.metrics import perplexity_from_loss

    mean = total / tokens if tokens else float("nan")
    return {"eval_loss": round(mean, 6), "perplexity": round(perplexity_from_loss(mean), 4)}
