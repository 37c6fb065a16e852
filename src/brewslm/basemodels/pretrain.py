"""Pretrain `builtin:tiny`: a brief, deterministic, cached causal-LM pass over corpus.txt.

    from brewslm.basemodels.pretrain import pretrain_builtin_tiny
    path = pretrain_builtin_tiny()            # $BREWSLM_MODELS_DIR/builtin-tiny-pretrained-<key>
    path = pretrain_builtin_tiny(steps=5)     # a short run, cached under its own key

LoRA on a randomly initialised model barely learns (see FACTS.md): the adapter has nothing to
adapt. So `builtin:tiny` is the random-init build of builtin_tiny.py (`builtin:tiny-random`)
trained for PRETRAIN_CONFIG["steps"] steps on the shipped corpus, packed into fixed-length
blocks, with a plain torch loop in fp32 on the CPU (always the CPU: the same settings give the
same weights whether or not a GPU is present). Measured on the 2-core build machine: 500 steps
take ~2.5 min; bf16 autocast was 3.5x slower there (no native bf16), and two threads were 4x
slower than one whenever another process was busy, so the run uses one thread.

The run is deterministic: fixed seeds, deterministic algorithms, a fixed thread count (the
caller's settings are restored afterwards). The cache key hashes the random build's key,
PRETRAIN_VERSION and the settings, steps included. BREWSLM_TINY_PRETRAIN_STEPS overrides the
step count (tests set it low, so that needing a tokenizer never costs minutes). The folder
follows builtin_tiny.py's conventions: built in a temporary sibling, renamed into place under a
file lock, with the `brewslm-model.json` sidecar (steps, tokens, losses, seconds, hashes)
written last.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brewslm import config, progress
from brewslm.basemodels import builtin_tiny
from brewslm.basemodels.builtin_tiny import (
    HASHED_FILES,
    SIDECAR,
    _clear_stale,
    _locked,
    _quiet_progress,
    _sha256,
)

# Bump when the training loop changes in a way PRETRAIN_CONFIG does not capture.
PRETRAIN_VERSION = "1"
BUILTIN_REF = "builtin:tiny"
STEPS_ENV = "BREWSLM_TINY_PRETRAIN_STEPS"
PROGRESS_TASK = "pretrain builtin:tiny"

PRETRAIN_CONFIG: dict[str, Any] = {
    "steps": 500,              # 1.02M tokens, ~19 passes over the corpus: ~2.5 min on one core
    "block_size": 128,         # tokens per packed block (the ticket task fits in ~90)
    "batch_size": 16,          # blocks per step
    "learning_rate": 4e-3,     # peak AdamW rate; 2e-3 left a base LoRA needed 3x longer to adapt
    "min_lr_ratio": 0.1,       # cosine decays to this fraction of the peak
    "warmup_steps": 30,        # linear warm-up
    "weight_decay": 0.1,       # on matrices only; norms keep theirs
    "betas": [0.9, 0.95],
    "max_grad_norm": 1.0,
    "autocast_bf16": False,    # bf16 matmuls; 3.5x slower on CPUs without native bf16
    "threads": 1,              # fixed: a different count may change the bits of the result
    "seed": 0,
}


def pretrain_steps(steps: int | None = None) -> int:
    """The step count to use: the argument, else $BREWSLM_TINY_PRETRAIN_STEPS, else default."""
    if steps is None:
        raw = os.environ.get(STEPS_ENV, "").strip()
        if not raw:
            return PRETRAIN_CONFIG["steps"]
        try:
            steps = int(raw)
        except ValueError:
            raise ValueError(f"{STEPS_ENV} must be a whole number, got {raw!r}") from None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"pretraining steps must be a whole number >= 0, got {steps!r}")
    return steps


def settings(steps: int | None = None) -> dict[str, Any]:
    """PRETRAIN_CONFIG with the effective step count."""
    return {**PRETRAIN_CONFIG, "steps": pretrain_steps(steps)}


def cache_key(steps: int | None = None) -> str:
    """First 12 hex of sha256(random build's key + PRETRAIN_VERSION + settings)."""
    digest = hashlib.sha256(builtin_tiny.cache_key().encode())
    digest.update(PRETRAIN_VERSION.encode())
    digest.update(json.dumps(settings(steps), sort_keys=True).encode())
    return digest.hexdigest()[:12]


def default_pretrained_dir(steps: int | None = None) -> Path:
    """Where the pretrained `builtin:tiny` lives (it may not be built yet)."""
    return config.models_dir() / f"builtin-tiny-pretrained-{cache_key(steps)}"


def is_complete(folder: Path, steps: int | None = None) -> bool:
    """True when folder holds a finished pretraining run for the current key."""
    try:
        sidecar = json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return sidecar.get("key") == cache_key(steps)


def pretrain_builtin_tiny(*, steps: int | None = None) -> Path:
    """Build (or reuse) the pretrained `builtin:tiny` and return its folder."""
    steps = pretrain_steps(steps)
    target = default_pretrained_dir(steps)
    if is_complete(target, steps):
        return target
    base = builtin_tiny.build_builtin_tiny()  # the random-init weights and the tokenizer
    with _locked(target.parent / f".{target.name}.lock"):
        if is_complete(target, steps):  # another process finished it while we waited
            return target
        _clear_stale(target)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            _pretrain_into(tmp, base, settings(steps))
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _pretrain_into(folder: Path, base: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train base's weights per cfg; write the model, the tokenizer and, last, the sidecar."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base)
    # The backend tokenizer: the corpus is far longer than model_max_length, and the wrapper
    # would warn about that although the text is cut into blocks below.
    ids = tokenizer.backend_tokenizer.encode(builtin_tiny.corpus_bytes().decode("utf-8"),
                                             add_special_tokens=False).ids
    corpus = torch.tensor(ids, dtype=torch.long)
    started = time.perf_counter()
    with _deterministic(cfg["threads"], cfg["seed"]):
        with _quiet_progress():  # no "Loading weights" bar among the stage's output
            model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
        losses = _train(model, corpus, cfg)
    seconds = time.perf_counter() - started
    _copy_tokenizer_files(base, folder)
    with _quiet_progress():
        model.save_pretrained(folder)
    sidecar = _sidecar(folder, cfg, losses, seconds, len(ids),
                       sum(p.numel() for p in model.parameters()))
    (folder / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return sidecar


@contextmanager
def _deterministic(threads: int, seed: int) -> Iterator[None]:
    """Fixed threads, deterministic kernels and a private seeded RNG; all restored after."""
    import torch

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(threads)
    # warn_only: an op without a deterministic kernel warns instead of failing the build.
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])


def _train(model: Any, corpus: Any, cfg: dict[str, Any]) -> list[float]:
    """The training loop; returns the loss of every step."""
    import torch

    optimizer = torch.optim.AdamW(_param_groups(model, cfg["weight_decay"]),
                                  lr=cfg["learning_rate"], betas=tuple(cfg["betas"]),
                                  foreach=True)
    batches = _batches(corpus, cfg)
    losses: list[float] = []
    model.train()
    for step in range(cfg["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, cfg)
        batch = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["autocast_bf16"]):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 10 == 9 or step + 1 == cfg["steps"]:
            progress.report(PROGRESS_TASK, step + 1, cfg["steps"], loss=round(losses[-1], 4))
    model.eval()
    return losses


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    # Decay matrices (embeddings, projections), not the RMSNorm scales.
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _batches(corpus: Any, cfg: dict[str, Any]) -> Iterator[Any]:
    """Endless batches of packed blocks: each epoch shifts the block boundaries and shuffles
    the blocks with its own seed, so repeated epochs do not see identical windows."""
    import torch

    block, size = cfg["block_size"], cfg["batch_size"]
    epoch = 0
    while True:
        offset = (epoch * 37) % block  # 37 is coprime with the block size
        count = (len(corpus) - offset) // block
        if count < size:
            raise ValueError(f"corpus too small: {count} blocks of {block} tokens < a batch")
        blocks = corpus[offset:offset + count * block].view(count, block)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(cfg["seed"] + epoch))
        for start in range(0, count - size + 1, size):
            yield blocks[order[start:start + size]]
        epoch += 1


def _lr(step: int, cfg: dict[str, Any]) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak."""
    peak, warmup, total = cfg["learning_rate"], cfg["warmup_steps"], cfg["steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress_ratio = (step - warmup) / max(1, total - warmup)
    floor = cfg["min_lr_ratio"]
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress_ratio)))


def _copy_tokenizer_files(base: Path, folder: Path) -> None:
    # Everything but the weights, the configs (save_pretrained rewrites them) and the sidecar.
    skip = {"model.safetensors", "config.json", "generation_config.json", SIDECAR}
    for path in base.iterdir():
        if path.is_file() and path.name not in skip:
            shutil.copy2(path, folder / path.name)


def _sidecar(folder: Path, cfg: dict[str, Any], losses: list[float], seconds: float,
             corpus_tokens: int, parameters: int) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    tokens = cfg["steps"] * cfg["batch_size"] * cfg["block_size"]
    tail = losses[-20:]
    return {
        "ref": BUILTIN_REF,
        "key": cache_key(cfg["steps"]),
        "base_key": builtin_tiny.cache_key(),
        "pretrain_version": PRETRAIN_VERSION,
        "settings": cfg,
        "config": builtin_tiny.TINY_CONFIG,
        "steps": cfg["steps"],
        "tokens": tokens,
        "corpus_tokens": corpus_tokens,
        "epochs": round(tokens / corpus_tokens, 2),
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(sum(tail) / len(tail), 4) if tail else None,  # mean of last 20
        "loss_every_50": [round(x, 4) for x in losses[::50]],
        "seconds": round(seconds, 1),
        "tokens_per_second": round(tokens / seconds) if seconds > 0 else None,
        "parameters": parameters,
        "sha256": {name: _sha256(folder / name) for name in HASHED_FILES},
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
