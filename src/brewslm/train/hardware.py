"""Where and in what precision a recipe trains: the one place preflight and train decide it.

    from brewslm.train.hardware import resolve_device, resolve_dtype
    device = resolve_device(recipe)          # "cuda" or "cpu"
    dtype = resolve_dtype(recipe, device)    # "float32", "bfloat16" or "float16"

Preflight estimates memory for exactly the device and dtype training will use, so both read
them from here. torch is imported on first call, not at import, so that reading a recipe or
building the CLI stays cheap.
"""

from __future__ import annotations

from typing import Any

# Recipe precision names -> torch dtype names (the estimator's and from_pretrained's spelling).
PRECISION_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def cuda_available() -> bool:
    """True when torch sees a CUDA device (False when torch itself is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_bf16_supported() -> bool:
    """True when there is a CUDA device and it computes in bfloat16 natively."""
    if not cuda_available():
        return False
    import torch

    return bool(torch.cuda.is_bf16_supported())


def resolve_device(recipe: dict[str, Any]) -> str:
    """"cuda" when the recipe asks for it, or says auto and a CUDA device is present; else "cpu".

    An explicit "cuda" is returned even without a GPU: preflight must see what was asked for
    (and block it), not quietly train on the CPU instead."""
    wanted = recipe.get("device", "auto")
    if wanted == "cuda" or (wanted == "auto" and cuda_available()):
        return "cuda"
    return "cpu"


def resolve_dtype(recipe: dict[str, Any], device: str) -> str:
    """The dtype the weights and activations train in.

    "auto" is bfloat16 on a CUDA GPU that supports it and float32 everywhere else: bf16 on
    this project's CPU was measured 3.5x slower than fp32, and fp16 without loss scaling is
    unsafe. bf16 / fp16 / fp32 map directly (preflight checks that the device can do them)."""
    precision = recipe.get("precision", "auto")
    if precision in PRECISION_DTYPES:
        return PRECISION_DTYPES[precision]
    if device.startswith("cuda") and cuda_bf16_supported():
        return "bfloat16"
    return "float32"


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo), for run manifests and benchmark reports."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
