"""Exports a trained model as a Hugging Face folder: the LoRA adapter alone, or the adapter
merged into the base weights (safetensors), each with its tokenizer, chat template and a
checksums file. Groundwork for stage 10 (issue 7); parity.py proves an export reproduces the
model it came from.

    from brewslm.export.hf import export_adapter, export_merged, load_candidate
    export_merged(base_path, model_dir, out_dir)     # loads with from_pretrained(out_dir)
    export_adapter(model_dir, out_dir)               # PeftModel.from_pretrained(base, out_dir)
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "special_tokens_map.json")
CHECKSUMS = "SHA256SUMS"


def load_candidate(base_path: str | Path, model_dir: str | Path) -> Any:
    """The trained model as evaluate saw it: base + adapter, or the full weights."""
    import torch
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    if not (model_dir / "adapter_config.json").exists():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(model_dir)).eval()


DTYPES = ("f32", "f16", "bf16")


def export_merged(base_path: str | Path, model_dir: str | Path, out_dir: str | Path, *,
                  dtype: str = "f32", max_shard_size: str = "2GB",
                  checksums: bool = True) -> Path:
    """The adapter merged into the base weights (in fp32, then cast to `dtype`), saved as
    safetensors with the tokenizer; sharded above `max_shard_size`, with an index."""
    import torch

    out = Path(out_dir)
    model = load_candidate(base_path, model_dir)
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    merged.to(torch_dtype).save_pretrained(out, safe_serialization=True,
                                           max_shard_size=max_shard_size)
    _copy_tokenizer(Path(model_dir), out)
    if checksums:
        write_checksums(out)
    return out


def export_adapter(model_dir: str | Path, out_dir: str | Path, *,
                   checksums: bool = True) -> Path:
    """The LoRA adapter alone (a few MB), with the tokenizer, for base + adapter serving."""
    src, out = Path(model_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(src / name, out / name)
    _copy_tokenizer(src, out)
    if checksums:
        write_checksums(out)
    return out


def write_checksums(folder: Path) -> Path:
    """SHA256SUMS in the `sha256sum -c` format, over every other file, sorted."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(folder).as_posix()}\n")
    (folder / CHECKSUMS).write_text("".join(lines), encoding="utf-8")
    return folder / CHECKSUMS


def _copy_tokenizer(src: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)
