"""Preflight (stage 07) building blocks: will this training job fit in memory?

    from brewslm.preflight import estimate_memory, free_memory_bytes, plan_that_fits

`estimate_memory` predicts the peak memory of a training job from the model's architecture
and the manifest's token lengths; `free_memory_bytes` says what the device has free;
`plan_that_fits` changes the job (micro-batch, checkpointing, QLoRA, max length) until it fits;
`tune_cpu_allocator`, called first in a CPU training process, makes its peak RSS follow the
estimate. See memory.py for the formulas.
"""

from brewslm.preflight.memory import (
    Architecture,
    MemoryEstimate,
    Plan,
    architecture,
    estimate_memory,
    fits,
    free_memory_bytes,
    peak_rss_bytes,
    plan_that_fits,
    tune_cpu_allocator,
)

__all__ = ["Architecture", "MemoryEstimate", "Plan", "architecture", "estimate_memory", "fits",
           "free_memory_bytes", "peak_rss_bytes", "plan_that_fits",
           "tune_cpu_allocator"]
