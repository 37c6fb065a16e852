"""Peak-memory estimate for one training job, and a plan that fits (stage 07, preflight).

    from brewslm.preflight import estimate_memory, free_memory_bytes, plan_that_fits
    est = estimate_memory(model_config, method="lora", micro_batch=8, seq_lens=train_lengths,
                          grad_checkpointing=False, dtype="float32", device="cpu")
    est.total_bytes, est.breakdown          # bytes; breakdown sums to total_bytes
    plan = plan_that_fits(model_config, method="lora", micro_batch=8, seq_lens=train_lengths,
                          grad_checkpointing=False, dtype="float32", device="cpu")
    plan.fits, plan.settings, plan.changes, plan.tried

Every term is derived from the architecture (hidden and intermediate size, layers, attention
and key/value heads, head dim, vocabulary, tied embeddings) and from what PyTorch's autograd
really keeps for a Llama-style decoder (RMSNorm, rotary, SDPA attention, gated MLP) as
transformers 5 and peft implement it; the comments say why each term has its size. The
estimate is the largest of a few moments of a training step (phases), because the largest
buffers do not coexist: the logits and their gradient exist only at the start of backward, a
recomputed layer (gradient checkpointing) only after them, the full set of parameter gradients
only at the optimizer step (unless gradient accumulation keeps them). `breakdown` is what is
alive at the peak moment; `phases` has every moment.

It imports neither torch nor transformers (a config may be a plain dict), so preflight stays
cheap. benchmarks/preflight_memory.py checks it against the measured peak RSS of real training
on this CPU; the README there has the table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brewslm.prepare.stats import percentile

METHODS = ("full", "lora", "qlora")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZER_STATES = {"adamw": 2, "sgd": 0}  # values kept per trainable parameter
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FP32 = 4
INPUT_BYTES_PER_TOKEN = 4 * 8  # input_ids, attention_mask, labels, shifted labels: int64
GIB = 1 << 30
MIB = 1 << 20

# QLoRA (bitsandbytes NF4, the QLoRA paper's recipe): 4 bits per weight, one 8-bit absmax per
# block of 64 weights (double quantisation), one fp32 second-level constant per 256 blocks.
QLORA_LINEAR_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)

# CPU framework overhead: peak RSS of the same training step on a model of (almost) zero size
# (hidden 8, one layer, vocabulary 16), measured on the development machine (2 cores, torch
# 2.13 CPU, transformers 5.24, peft 0.21.2, allocator tuned as below) by
# `benchmarks/preflight_memory.py --overhead`: the interpreter, the code and data of torch and
# transformers, the OpenMP pool, the autograd engine, the allocator's first arenas.
# Measured 2026-11-28, MiB at 1 / 2 threads: loop 390.2 / 390.4, loop + peft 401.7 / 402.1,
# HF Trainer 484.3 / 484.4, Trainer + peft 487.2 / 487.2.
# A thread costs little (its stack pages and an arena): +0.15 MiB on average from 1 to 2
# threads (-0.04 to +0.39 over the four pairs), so more cores add little. peft imports
# accelerate and its own code; the Trainer has already imported most of it.
CPU_OVERHEAD_ONE_THREAD = {"loop": int(390.2 * MIB), "trainer": int(484.3 * MIB)}
CPU_OVERHEAD_PER_EXTRA_THREAD = int(0.15 * MIB)
CPU_OVERHEAD_PEFT = {"loop": int(11.5 * MIB), "trainer": int(2.9 * MIB)}

# With glibc's default (dynamic) mmap threshold, freed activations stay in the heap and peak
# RSS exceeds the live tensors (see tune_cpu_allocator). That excess is not predictable from
# the model (it depends on the order of allocations), so cpu_allocator="glibc" adds an
# allowance instead, fitted as an upper bound over the benchmark grid run untuned twice:
# relative to the largest activations of any phase plus the logits peak, the excess was
# 0.38-0.77x for a full fine-tune and 0.92-1.67x for LoRA (whose frozen weights get no
# gradients to fill the heap's holes), plus up to ~30 MiB that does not scale (small jobs).
GLIBC_HEAP_SLACK_SHARE = {"full": 0.8, "lora": 1.2, "qlora": 1.2}
GLIBC_HEAP_SLACK_FIXED = 32 * MIB

# CUDA: not measured here (the development machine has no GPU). The CUDA context is already
# outside what torch.cuda.mem_get_info() reports free once preflight has touched the device;
# what remains is cuBLAS/cuDNN workspaces and the caching allocator's rounding and
# fragmentation, taken as a fixed 512 MiB plus 10% of the activation and logits peak. Verify
# with benchmarks/preflight_memory.py on a GPU before trusting a tight margin.
CUDA_OVERHEAD_BYTES = 512 * MIB
CUDA_FRAGMENTATION = 0.10

BREAKDOWN_KEYS = ("weights", "trainable_params", "gradients", "optimizer_states", "activations",
                  "logits", "framework_overhead")


# --- architecture ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """The shape numbers of a Llama-style decoder that memory depends on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    attention_bias: bool = False
    mlp_bias: bool = False

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int, bool]]:
        """(in_features, out_features, has_bias) of each linear layer of one decoder layer."""
        h, i, ab, mb = self.hidden, self.intermediate, self.attention_bias, self.mlp_bias
        return {"q_proj": (h, self.q_dim, ab), "k_proj": (h, self.kv_dim, ab),
                "v_proj": (h, self.kv_dim, ab), "o_proj": (self.q_dim, h, ab),
                "gate_proj": (h, i, mb), "up_proj": (h, i, mb), "down_proj": (i, h, mb)}

    def linear_params_per_layer(self) -> int:
        return sum(n_in * n_out + (n_out if bias else 0)
                   for n_in, n_out, bias in self.linears().values())

    def other_params(self) -> int:
        """Embeddings, lm_head (unless tied), two RMSNorms per layer and the final one."""
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + (2 * self.layers + 1) * self.hidden

    def parameter_count(self) -> int:
        return self.layers * self.linear_params_per_layer() + self.other_params()


_ALIASES = {
    "hidden": ("hidden_size", "n_embd", "d_model"),
    "intermediate": ("intermediate_size", "n_inner", "ffn_dim"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "heads": ("num_attention_heads", "n_head"),
    "kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "vocab": ("vocab_size",),
    "tied": ("tie_word_embeddings",),
    "attention_bias": ("attention_bias",),
    "mlp_bias": ("mlp_bias",),
}


def architecture(config: Any) -> Architecture:
    """Read an Architecture from a transformers PretrainedConfig or a plain dict of its keys."""
    values = config if isinstance(config, Mapping) else config.to_dict()

    def get(name: str) -> Any:
        return next((values[k] for k in _ALIASES[name] if values.get(k) is not None), None)

    hidden, heads = get("hidden"), get("heads")
    if hidden is None or heads is None or get("layers") is None or get("vocab") is None:
        raise ValueError("config needs hidden_size, num_attention_heads, num_hidden_layers "
                         "and vocab_size")
    return Architecture(
        hidden=hidden, intermediate=get("intermediate") or 4 * hidden, layers=get("layers"),
        heads=heads, kv_heads=get("kv_heads") or heads, head_dim=get("head_dim") or hidden // heads,
        vocab=get("vocab"), tied=bool(get("tied") if get("tied") is not None else True),
        attention_bias=bool(get("attention_bias")), mlp_bias=bool(get("mlp_bias")))


# --- the job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One training job as the estimate sees it (the resolved inputs)."""

    arch: Architecture
    method: str
    micro_batch: int
    seq_len: int  # the longest row a batch holds, after truncation (see _batch_length)
    padded: bool
    grad_checkpointing: bool
    dtype: str
    lora_r: int
    lora_targets: tuple[str, ...]
    lora_dropout: float
    optimizer: str
    device: str
    grad_accumulation: int
    attn_implementation: str
    runtime: str
    threads: int
    cpu_allocator: str

    @property
    def act_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len

    @property
    def adapters(self) -> bool:
        return self.method in ("lora", "qlora")

    def saves_input(self, linear: str) -> bool:
        """Autograd keeps a linear layer's input only to compute its weight's gradient: for a
        trainable weight (full) or a LoRA target (lora_A needs it)."""
        return self.method == "full" or linear in self.lora_targets


def _batch_length(seq_lens: Sequence[int], max_length: int | None) -> int:
    """The length the peak batch is padded to: the longest row (p100), after truncation.

    Memory is a peak, not an average: batches are padded to their own longest row, and the
    batch that holds the longest row of the split is padded to it, whatever the sampler. The
    p95 describes a typical batch (it matters for speed), but the step that runs out of memory
    is the one with the p100. A shorter max_length truncates the rows above it, which is what
    caps this length (plan_that_fits proposes p95 and lower percentiles that way).
    """
    if not seq_lens:
        raise ValueError("seq_lens is empty: preflight needs the train split's token lengths")
    longest = max(seq_lens)
    return min(longest, max_length) if max_length else longest


# --- parameters, gradients, optimizer -------------------------------------------------------


def trainable_parameter_count(job: Job) -> int:
    """Full: every parameter. LoRA/QLoRA: r x (in + out) per target linear per layer."""
    if job.method == "full":
        return job.arch.parameter_count()
    linears = job.arch.linears()
    per_layer = sum(job.lora_r * (linears[name][0] + linears[name][1])
                    for name in job.lora_targets)
    return job.arch.layers * per_layer


def _weights_bytes(job: Job) -> int:
    arch = job.arch
    if job.method != "qlora":
        return arch.parameter_count() * job.act_bytes
    # Only the decoder's linear layers are quantised; peft's prepare_model_for_kbit_training
    # casts what is left (embeddings, lm_head, norms) to fp32 for stable training.
    linear = arch.layers * arch.linear_params_per_layer()
    return math.ceil(linear * QLORA_LINEAR_BYTES_PER_PARAM) + arch.other_params() * FP32


def _param_bytes(job: Job) -> int:
    """Bytes per trainable parameter, and so per gradient and per optimizer state value: LoRA
    adapters are fp32 (peft upcasts bf16/fp16 adapters); a full fine-tune trains the weights
    in the dtype they were loaded in, and torch keeps gradients and AdamW states in the
    parameter's dtype. (Mixed precision with fp32 master weights is dtype="float32" here.)"""
    return FP32 if job.adapters else job.act_bytes


def _trainable_params_bytes(job: Job, trainable: int) -> int:
    """Memory for trainable parameters beyond the base weights: the LoRA adapters are extra
    tensors; a full fine-tune trains the weights themselves (already counted)."""
    return trainable * FP32 if job.adapters else 0


def _largest_trainable(job: Job) -> int:
    """Parameters of the largest trainable tensor allocated in the first backward ops: the
    lm_head (tied or not) and input embedding gradients of a full fine-tune."""
    if job.method != "full":
        return 0
    return job.arch.vocab * job.arch.hidden * (1 if job.arch.tied else 2)


# --- activations ----------------------------------------------------------------------------


def _norm_bytes(job: Job, input_requires_grad: bool) -> int:
    """Per token, what one RMSNorm keeps. It upcasts its input to fp32 and pow/mul keep that
    copy (4 bytes x hidden, the residual itself in fp32) and the fp32 rsqrt (one float). The
    scaled result is kept only to give the norm weight a gradient (full fine-tune), in the
    activation dtype. Nothing at all when no gradient flows in (LoRA's first layer)."""
    if not input_requires_grad:
        return 0
    normed = job.arch.hidden * job.act_bytes if job.method == "full" else 0
    return job.arch.hidden * FP32 + FP32 + normed


def _linear_inputs_bytes(job: Job, names: Sequence[str], width: int, shared: bool) -> int:
    """Per token, the inputs kept by a group of linear layers reading the same tensor (q/k/v
    read the first norm's output, gate/up the second's). One shared copy suffices when the
    layers keep the tensor itself; `shared` says it is already kept by someone else. peft's
    LoRA keeps its own copy per target when it must cast the input to the adapters' fp32, or
    when dropout gives each target its own masked copy (plus a one-byte mask)."""
    savers = [n for n in names if job.saves_input(n)]
    if not savers:
        return 0
    total = 0
    if job.adapters and (job.lora_dropout > 0 or job.act_bytes != FP32):
        own_copy = width * FP32 + (width if job.lora_dropout > 0 else 0)
        total += len(savers) * own_copy
    elif not shared:
        total += width * job.act_bytes
    if job.adapters:  # lora_B keeps lora_A's output: r floats per target
        total += len(savers) * job.lora_r * FP32
    return total


def _attention_bytes(job: Job) -> int:
    """Per token, what attention keeps. SDPA (the CPU flash kernel and CUDA's) keeps q, k, v,
    its output and a fp32 log-sum-exp per head: no sequence x sequence matrix. With a padding
    mask transformers repeats k and v to all heads (repeat_kv) before SDPA, so they are kept at
    query width, and torch turns the boolean mask into a float one of seq x seq per row,
    kept per layer. Eager attention keeps its fp32 softmax and, below fp32, the cast copy the
    second matmul reads, per head x seq, and a contiguous copy of its output for o_proj."""
    arch, act, s = job.arch, job.act_bytes, job.seq_len
    repeated = job.padded or job.attn_implementation == "eager"
    kv = arch.q_dim if repeated else arch.kv_dim
    total = (arch.q_dim + 2 * kv + arch.q_dim) * act
    if job.attn_implementation == "eager":
        probs = arch.heads * s * (FP32 + (act if act != FP32 else 0))
        return total + probs + arch.q_dim * act  # no log-sum-exp
    total += arch.heads * FP32
    if job.padded:
        total += s * act  # b x s x s float mask per layer = s values per token
    return total


def _mlp_bytes(job: Job) -> int:
    """Per token: SiLU keeps the gate output, the product keeps SiLU's output and up's output
    (three intermediate-wide tensors whatever trains); down_proj keeps the product if its
    weight trains or it is a LoRA target."""
    i = job.arch.intermediate
    total = 3 * i * job.act_bytes
    return total + _linear_inputs_bytes(job, ["down_proj"], i, shared=False)


def layer_activation_bytes(job: Job, input_requires_grad: bool = True) -> int:
    """Per token, everything one decoder layer keeps for backward (no checkpointing)."""
    h = job.arch.hidden
    total = _norm_bytes(job, input_requires_grad)
    total += _linear_inputs_bytes(job, ["q_proj", "k_proj", "v_proj"], h, shared=False)
    total += _attention_bytes(job)
    # o_proj reads the attention output, which attention already keeps (a view of it).
    total += _linear_inputs_bytes(job, ["o_proj"], job.arch.q_dim, shared=True)
    total += _norm_bytes(job, True)  # the residual stream needs a gradient from here on
    total += _linear_inputs_bytes(job, ["gate_proj", "up_proj"], h, shared=False)
    return total + _mlp_bytes(job)


def _head_bytes(job: Job) -> int:
    """Per token, the final norm and lm_head: the norm as in a layer; lm_head keeps its input
    only if its weight trains (full fine-tune; LoRA leaves lm_head frozen)."""
    keep_input = job.arch.hidden * job.act_bytes if job.method == "full" else 0
    return _norm_bytes(job, True) + keep_input


def _shared_bytes(job: Job) -> int:
    """Per batch (not per token): the boolean padding mask (batch x seq x seq) and the rotary
    cos/sin tables (seq x head_dim each), built once per forward and shared by every layer."""
    s = job.seq_len
    mask = job.micro_batch * s * s if job.padded or job.attn_implementation == "eager" else 0
    if job.attn_implementation == "eager":
        mask *= job.act_bytes  # eager adds a float mask instead of a boolean one
    return mask + 2 * s * job.arch.head_dim * job.act_bytes


def _backward_transient_bytes(job: Job) -> int:
    """Per token, gradients alive inside one layer's backward: the residual gradient (twice,
    in and out) plus the largest group of intermediate gradients (the MLP's product, SiLU and
    up gradients, or attention's q, k, v, output gradients at query width)."""
    arch = job.arch
    inner = max(3 * arch.intermediate, 4 * arch.q_dim)
    return (2 * arch.hidden + inner) * job.act_bytes


def logits_peak_bytes(job: Job) -> int:
    """Per token, 12 bytes x vocab. The loss upcasts logits to fp32 and log_softmax keeps its
    fp32 output; at the start of backward the NLL gradient (fp32, vocab-wide) and
    log_softmax's input gradient (fp32) join it: three fp32 vocab-wide tensors. The logits
    themselves are gone by then if the loop drops the model output before backward (the HF
    Trainer does); a loop that holds `outputs.logits` adds one more."""
    return 3 * FP32 * job.arch.vocab


def _activation_phases(job: Job) -> dict[str, tuple[int, int, int]]:
    """(activations, logits, early gradients) bytes at each moment of backward."""
    arch, t = job.arch, job.tokens
    per_batch = t * INPUT_BYTES_PER_TOKEN + _shared_bytes(job)
    head = t * _head_bytes(job)
    logits = t * logits_peak_bytes(job)
    early_grads = _largest_trainable(job) * _param_bytes(job)  # lm_head/embedding, full FT
    transient = t * _backward_transient_bytes(job)
    if not job.grad_checkpointing:
        # LoRA's first layer gets no gradient on its input (the embedding is frozen).
        first = layer_activation_bytes(job, input_requires_grad=job.method == "full")
        layers = t * (first + (arch.layers - 1) * layer_activation_bytes(job))
        return {"backward_start": (per_batch + layers + head, logits, 0),
                "backward_layers": (per_batch + layers + transient, 0, early_grads)}
    # Checkpointing keeps each layer's input only and recomputes one layer at a time in
    # backward; transformers makes the embedding output require grad so it flows.
    stash = t * arch.layers * arch.hidden * job.act_bytes
    one_layer = t * layer_activation_bytes(job)
    return {"backward_start": (per_batch + stash + head, logits, 0),
            "recompute": (per_batch + stash + one_layer + transient, 0, early_grads)}


# --- framework overhead ---------------------------------------------------------------------


def framework_overhead_bytes(job: Job, activation_peak: int = 0) -> int:
    """What the process costs beyond its tensors: measured constants on CPU (see above), plus
    the glibc heap's slack when the allocator is left untuned; an allowance on CUDA."""
    if job.device.startswith("cuda"):
        return CUDA_OVERHEAD_BYTES + int(CUDA_FRAGMENTATION * activation_peak)
    slack = 0
    if job.cpu_allocator == "glibc":
        share = GLIBC_HEAP_SLACK_SHARE[job.method]
        slack = int(share * activation_peak) + GLIBC_HEAP_SLACK_FIXED
    base = slack + CPU_OVERHEAD_ONE_THREAD[job.runtime]
    base += CPU_OVERHEAD_PER_EXTRA_THREAD * max(0, job.threads - 1)
    return base + (CPU_OVERHEAD_PEFT[job.runtime] if job.adapters else 0)


# --- the CPU allocator ------------------------------------------------------------------------

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
TUNED_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, now kept fixed


def tune_cpu_allocator(mmap_threshold: int = TUNED_MMAP_THRESHOLD) -> bool:
    """Make peak RSS follow the live tensors: call once, early, in the training process.

    glibc serves allocations above a threshold with their own mmap, returned to the system on
    free, and everything smaller from its heap, which keeps freed memory resident. By default
    the threshold rises to the size of each large block freed (up to 32 MiB), so after the
    first step most activations come from the heap; freed activations then stay resident and
    the heap fragments: peak RSS was 1.0-1.58x the tuned figure over the benchmark grid,
    depending on the order of allocations. Setting the threshold fixes it (glibc stops
    adjusting it), so every tensor of 128 KiB or more is mapped and unmapped on its own and RSS
    tracks what the estimate counts (within 4% over the grid).

    It costs time: every large tensor is fresh pages the kernel must fault in and zero. Here
    (1 thread) steps took 1.3-1.5x as long on a 6.4M-parameter model at 4 x 512 tokens and
    ~1.7x on builtin:tiny's shape, for a peak 13-15% lower. Use it where memory is what limits
    the job. Returns False where it cannot be applied (no glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)))
    except (OSError, AttributeError):
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident memory: VmHWM from /proc, else ru_maxrss.

    VmHWM belongs to the process's own address space. ru_maxrss does not: Linux carries it
    over exec from the parent's address space when the child was started with vfork (as
    Python's subprocess does), so a child of a 750 MB pytest reported a 750 MB peak for a
    430 MB job. Measured peaks must come from here."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# --- the estimate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one training step: `breakdown` (bytes alive at the peak, summing to
    `total_bytes`), the phase it happens in, every phase's breakdown, the resolved job."""

    total_bytes: int
    breakdown: dict[str, int]
    peak_phase: str
    phases: dict[str, dict[str, int]]
    job: dict[str, Any]
    trainable_parameters: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"estimated_peak_bytes": self.total_bytes,
                "estimated_peak_gib": round(self.total_bytes / GIB, 3),
                "breakdown": dict(self.breakdown), "peak_phase": self.peak_phase,
                "phases": {k: dict(v) for k, v in self.phases.items()},
                "trainable_parameters": self.trainable_parameters,
                "job": dict(self.job), "notes": list(self.notes)}


def estimate_memory(
    config: Any,
    *,
    method: str,
    micro_batch: int,
    seq_lens: Sequence[int],
    grad_checkpointing: bool,
    dtype: str,
    lora_r: int = 16,
    lora_targets: Sequence[str] | None = None,
    optimizer: str = "adamw",
    device: str = "cpu",
    max_length: int | None = None,
    grad_accumulation: int = 1,
    lora_dropout: float = 0.0,
    attn_implementation: str = "sdpa",
    runtime: str = "trainer",
    threads: int | None = None,
    cpu_allocator: str = "glibc",
) -> MemoryEstimate:
    """Estimate the peak memory of training `config` this way.

    seq_lens: the train split's token lengths (the manifest's); the peak batch is padded to the
    longest (see _batch_length), truncated at max_length if given. lora_targets: linear layer
    names (default: all seven of a Llama layer, as peft's "all-linear"). runtime: "trainer"
    (the HF Trainer) or "loop" (a bare training loop), which differ only in framework
    overhead. threads: torch's intra-op threads (default: the CPUs this process may use).
    grad_accumulation > 1 keeps gradients alive through the next forward.
    cpu_allocator: "tuned" when the training process calls tune_cpu_allocator() first (the
    estimate then tracks measured peak RSS within a few percent); "glibc" (the default, safe
    for a process that does not) adds the measured upper bound of the heap's slack.
    """
    job = _resolve(config, method=method, micro_batch=micro_batch, seq_lens=seq_lens,
                   grad_checkpointing=grad_checkpointing, dtype=dtype, lora_r=lora_r,
                   lora_targets=lora_targets, optimizer=optimizer, device=device,
                   max_length=max_length, grad_accumulation=grad_accumulation,
                   lora_dropout=lora_dropout, attn_implementation=attn_implementation,
                   runtime=runtime, threads=threads, cpu_allocator=cpu_allocator)
    return _estimate(job, seq_lens)


def _resolve(config: Any, *, method: str, micro_batch: int, seq_lens: Sequence[int],
             max_length: int | None, lora_targets: Sequence[str] | None, threads: int | None,
             **rest: Any) -> Job:
    _check(method, micro_batch, rest)
    arch = architecture(config)
    targets = tuple(lora_targets) if lora_targets else LINEAR_NAMES
    unknown = sorted(set(targets) - set(LINEAR_NAMES))
    if unknown:
        raise ValueError(f"unknown LoRA targets {unknown}; known: {list(LINEAR_NAMES)}")
    seq_len = _batch_length(seq_lens, max_length)
    # A batch of one is never padded; nor is a batch of rows that all have the same length
    # (packed data). transformers then builds no mask at all.
    padded = micro_batch > 1 and min(min(seq_lens), seq_len) < seq_len
    return Job(arch=arch, method=method, micro_batch=micro_batch, seq_len=seq_len,
               padded=padded, lora_targets=targets if method != "full" else (),
               threads=threads or len(os.sched_getaffinity(0)), **rest)


def _check(method: str, micro_batch: int, rest: dict[str, Any]) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if micro_batch < 1 or rest["grad_accumulation"] < 1:
        raise ValueError("micro_batch and grad_accumulation must be at least 1")
    if rest["dtype"] not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {tuple(DTYPE_BYTES)}, got {rest['dtype']!r}")
    if rest["optimizer"] not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZER_STATES)}")
    if rest["attn_implementation"] not in ("sdpa", "eager"):
        raise ValueError("attn_implementation must be 'sdpa' or 'eager'")
    if rest["cpu_allocator"] not in ("tuned", "glibc"):
        raise ValueError("cpu_allocator must be 'tuned' or 'glibc'")
    if rest["runtime"] not in CPU_OVERHEAD_ONE_THREAD:
        raise ValueError(f"runtime must be one of {tuple(CPU_OVERHEAD_ONE_THREAD)}")


def _estimate(job: Job, seq_lens: Sequence[int]) -> MemoryEstimate:
    trainable = trainable_parameter_count(job)
    # AdamW keeps exp_avg and exp_avg_sq, like the gradient one value per parameter each.
    grads = trainable * _param_bytes(job)
    fixed = {"weights": _weights_bytes(job),
             "trainable_params": _trainable_params_bytes(job, trainable),
             "optimizer_states": grads * OPTIMIZER_STATES[job.optimizer]}
    # With accumulation the gradients of the previous micro-batches stay through the forward.
    kept_grads = grads if job.grad_accumulation > 1 else 0
    moments = _activation_phases(job)
    # The allocator's slack follows the largest activations of any phase plus the logits.
    dynamic = max(a for a, _, _ in moments.values()) + max(lg for _, lg, _ in moments.values())
    overhead = framework_overhead_bytes(job, dynamic)
    phases = {name: {**fixed, "gradients": max(kept_grads, early), "activations": act,
                     "logits": logits, "framework_overhead": overhead}
              for name, (act, logits, early) in moments.items()}
    phases["optimizer_step"] = {**fixed, "gradients": grads, "activations": 0, "logits": 0,
                                "framework_overhead": overhead}
    phases = {name: {k: int(p[k]) for k in BREAKDOWN_KEYS} for name, p in phases.items()}
    peak = max(phases, key=lambda name: sum(phases[name].values()))
    return MemoryEstimate(total_bytes=sum(phases[peak].values()), breakdown=phases[peak],
                          peak_phase=peak, phases=phases, job=_job_dict(job, seq_lens),
                          trainable_parameters=trainable, notes=_notes(job))


def _job_dict(job: Job, seq_lens: Sequence[int]) -> dict[str, Any]:
    out = {k: v for k, v in asdict(job).items() if k != "arch"}
    out["lora_targets"] = list(job.lora_targets)
    out["architecture"] = asdict(job.arch)
    out["rows_truncated"] = sum(1 for n in seq_lens if n > job.seq_len)
    return out


def _notes(job: Job) -> tuple[str, ...]:
    notes = []
    if job.method == "qlora":
        notes.append("QLoRA needs CUDA and bitsandbytes; its estimate is not verified on CPU")
    if job.device.startswith("cuda"):
        notes.append("CUDA overhead is an allowance, not a measurement from this project")
    if job.attn_implementation == "eager":
        notes.append("eager attention keeps heads x seq x seq per layer: use sdpa if possible")
    return tuple(notes)


# --- the device -----------------------------------------------------------------------------


def free_memory_bytes(device: str = "cpu") -> int:
    """Memory a new training job can use now: on CPU psutil's available memory, capped by the
    cgroup limit left (containers report the host's memory otherwise); on CUDA the free memory
    torch.cuda.mem_get_info reports for that device."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    import psutil

    available = int(psutil.virtual_memory().available)
    left = _cgroup_memory_left()
    return min(available, left) if left is not None else available


def _cgroup_memory_left() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1); None if unlimited."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        root = Path("/sys/fs/cgroup")
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # "no limit" is a huge number in v1
            return None
        return max(0, int(limit) - usage)
    return None


# --- a plan that fits -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The first job that fits (or the last one tried), with every estimate on the way."""

    fits: bool
    settings: dict[str, Any]
    estimate: MemoryEstimate
    free_bytes: int
    budget_bytes: int
    changes: tuple[str, ...]
    tried: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.fits, "settings": dict(self.settings),
                "estimated_peak_bytes": self.estimate.total_bytes,
                "free_bytes": self.free_bytes, "budget_bytes": self.budget_bytes,
                "changes": list(self.changes), "tried": [dict(t) for t in self.tried]}


def fits(estimate: MemoryEstimate, free_bytes: int, safety_margin: float = 0.15) -> bool:
    """True when the estimate leaves `safety_margin` of the free memory unused (the estimate
    is within ±15% of measured peaks; the margin covers that and other processes' growth)."""
    return estimate.total_bytes <= int(free_bytes * (1 - safety_margin))


def plan_that_fits(
    config: Any,
    *,
    method: str,
    micro_batch: int,
    seq_lens: Sequence[int],
    grad_checkpointing: bool,
    dtype: str,
    device: str = "cpu",
    free_bytes: int | None = None,
    safety_margin: float = 0.15,
    grad_accumulation: int = 1,
    max_length: int | None = None,
    **options: Any,
) -> Plan:
    """The least invasive change of the job that fits in free memory.

    Tried in order, each on top of the previous: the job as asked; the micro-batch halved
    (accumulation doubled, so the effective batch stays) down to 1; gradient checkpointing on;
    QLoRA (on CUDA only, where bitsandbytes runs); a shorter max length (the p95, p90, p75 and
    p50 of seq_lens, truncating the longer rows). Once a step frees memory the micro-batch is
    searched again from the one asked for, so the plan keeps the largest micro-batch that fits.
    `tried` lists every estimate; `changes` says in words what differs from the job asked for.
    """
    free = free_memory_bytes(device) if free_bytes is None else int(free_bytes)
    budget = int(free * (1 - safety_margin))
    asked = {"method": method, "micro_batch": micro_batch, "grad_accumulation": grad_accumulation,
             "grad_checkpointing": grad_checkpointing, "max_length": max_length}
    tried: list[dict[str, Any]] = []
    last: tuple[dict[str, Any], MemoryEstimate] | None = None
    for settings in _candidates(asked, seq_lens, device):
        estimate = estimate_memory(config, seq_lens=seq_lens, dtype=dtype, device=device,
                                   **settings, **options)
        ok = estimate.total_bytes <= budget
        tried.append({**settings, "estimated_peak_bytes": estimate.total_bytes, "fits": ok})
        last = (settings, estimate)
        if ok:
            break
    assert last is not None  # the job as asked is always the first candidate
    settings, estimate = last
    return Plan(fits=tried[-1]["fits"], settings=settings, estimate=estimate, free_bytes=free,
                budget_bytes=budget, changes=tuple(_changes(asked, settings, seq_lens)),
                tried=tuple(tried))


def _candidates(asked: dict[str, Any], seq_lens: Sequence[int], device: str):
    """Settings to try, least invasive first (see plan_that_fits)."""
    yield dict(asked)
    levels = [dict(asked)]
    if not asked["grad_checkpointing"]:
        levels.append({**levels[-1], "grad_checkpointing": True})
    if device.startswith("cuda") and asked["method"] != "qlora":
        levels.append({**levels[-1], "method": "qlora"})
    current = _batch_length(seq_lens, asked["max_length"])
    ordered = sorted(seq_lens)
    for p in (95, 90, 75, 50):
        shorter = percentile(ordered, p)
        if shorter < current:
            levels.append({**levels[-1], "max_length": shorter})
            current = shorter
    effective = asked["micro_batch"] * asked["grad_accumulation"]
    for i, level in enumerate(levels):
        start = asked["micro_batch"] if i else asked["micro_batch"] // 2
        for mb in _halvings(start):
            yield {**level, "micro_batch": mb, "grad_accumulation": math.ceil(effective / mb)}


def _halvings(start: int) -> list[int]:
    out = []
    while start >= 1:
        out.append(start)
        start //= 2
    return out


def _changes(asked: dict[str, Any], chosen: dict[str, Any], seq_lens: Sequence[int]) -> list[str]:
    out = []
    if chosen["micro_batch"] != asked["micro_batch"]:
        out.append(f"micro-batch {asked['micro_batch']} -> {chosen['micro_batch']} with "
                   f"gradient accumulation {asked['grad_accumulation']} -> "
                   f"{chosen['grad_accumulation']} (same effective batch)")
    if chosen["grad_checkpointing"] and not asked["grad_checkpointing"]:
        out.append("gradient checkpointing on")
    if chosen["method"] != asked["method"]:
        out.append(f"method {asked['method']} -> {chosen['method']}")
    if chosen["max_length"] != asked["max_length"]:
        cut = sum(1 for n in seq_lens if n > chosen["max_length"])
        out.append(f"max length {chosen['max_length']} tokens ({cut} of {len(seq_lens)} "
                   "train rows truncated)")
    return out
