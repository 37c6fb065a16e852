"""The builtin tiny base model (`builtin:tiny`), built locally, deterministically, offline.

    from brewslm.basemodels.builtin_tiny import build_builtin_tiny
    path = build_builtin_tiny()          # cached under $BREWSLM_HOME/models/builtin-tiny-<key>
    AutoModelForCausalLM.from_pretrained(path); AutoTokenizer.from_pretrained(path)

The folder holds a ~1M-parameter Llama causal LM with randomly initialised weights (fixed
seed; a later stage pretrains it) and a 2k byte-level BPE tokenizer trained on the shipped
corpus.txt, with ChatML special tokens and chat template. The same corpus, BUILDER_VERSION and
TINY_CONFIG give byte-identical tokenizer.json and model.safetensors; their hashes form the
cache key. A folder is complete once its `brewslm-model.json` sidecar exists: it is written
last, inside a temporary sibling folder that is then renamed into place, and a file lock
keeps two processes from building the same folder at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from brewslm import config

# Bump when the build changes in a way the corpus and TINY_CONFIG do not capture.
BUILDER_VERSION = "1"
BUILTIN_REF = "builtin:tiny"
SIDECAR = "brewslm-model.json"
HASHED_FILES = ("tokenizer.json", "model.safetensors")  # byte-identical across builds

BOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"  # generation stops at the end of an assistant turn
PAD_TOKEN = "<|pad|>"  # distinct from EOS so masking padding never masks the stop token
SPECIAL_TOKENS = (BOS_TOKEN, IM_START, EOS_TOKEN, PAD_TOKEN)

# ChatML. corpus.txt renders conversations the same way (make_corpus.chatml), so pretraining
# sees exactly the text this template produces.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] -%}"
    "{{- raise_exception('Unknown role: ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

TINY_CONFIG: dict[str, Any] = {
    "vocab_target": 2048,
    "min_frequency": 2,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 344,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "tie_word_embeddings": True,
    "seed": 0,
}


def corpus_bytes() -> bytes:
    """The shipped pretraining corpus (package data)."""
    return resources.files("brewslm.basemodels").joinpath("corpus.txt").read_bytes()


def cache_key() -> str:
    """First 12 hex of sha256(corpus + BUILDER_VERSION + TINY_CONFIG)."""
    digest = hashlib.sha256(corpus_bytes())
    digest.update(BUILDER_VERSION.encode())
    digest.update(json.dumps(TINY_CONFIG, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def default_builtin_dir() -> Path:
    """Where `builtin:tiny` lives for the current BREWSLM_HOME (it may not be built yet)."""
    return config.models_dir() / f"builtin-tiny-{cache_key()}"


def is_complete(folder: Path) -> bool:
    """True when folder holds a finished build of the current key."""
    try:
        sidecar = json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return sidecar.get("key") == cache_key()


def build_builtin_tiny(target_dir: Path | None = None) -> Path:
    """Build `builtin:tiny` into target_dir (default: default_builtin_dir()) and return it.

    A complete folder for the current key is reused as is. Otherwise the model is built in a
    temporary sibling folder and renamed into place, under a lock file next to it.
    """
    target = Path(target_dir).expanduser().resolve() if target_dir else default_builtin_dir()
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if is_complete(target):  # another process finished it while we waited
            return target
        _clear_stale(target)
        # A plain mkdir (not mkdtemp) so the folder gets the umask's usual mode, not 0700;
        # the pid is enough to make the name unique because we hold the lock.
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            _build_into(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # The lock file is never deleted: removing it would let a waiter lock a stale inode.
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clear_stale(target: Path) -> None:
    """Remove leftovers of an interrupted or outdated build; we hold the lock."""
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if not target.exists():
        return
    ours = (target / SIDECAR).exists() or target.parent == config.models_dir()
    if not ours and any(target.iterdir()):
        # Never delete a folder the caller filled with something else.
        raise FileExistsError(f"{target} exists, is not empty and is not a builtin model build")
    shutil.rmtree(target)


def _build_into(folder: Path) -> dict[str, Any]:
    """Write tokenizer, model and, last, the sidecar into folder; return the sidecar."""
    tokenizer = _train_tokenizer(corpus_bytes().decode("utf-8"))
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    _save_tokenizer(tokenizer, folder)
    parameters = _save_model(folder, tokenizer.get_vocab_size(), ids)
    sidecar = _sidecar(folder, tokenizer.get_vocab_size(), parameters)
    (folder / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return sidecar


def _train_tokenizer(text: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_CONFIG["vocab_target"],
        min_frequency=TINY_CONFIG["min_frequency"],
        special_tokens=list(SPECIAL_TOKENS),  # ids 0..3, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any byte stays encodable
        show_progress=False,
    )
    # The trainer does not split out special tokens, so strip them here: otherwise merges
    # would be spent on pieces of "<|im_start|>" that encoding never produces.
    split = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))
    pieces = [piece for piece in split.split(text) if piece]
    tokenizer.train_from_iterator(pieces, trainer=trainer)
    return tokenizer


def _save_tokenizer(tokenizer: Any, folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=TINY_CONFIG["max_position_embeddings"],
        chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(folder)


def _save_model(folder: Path, vocab_size: int, ids: dict[str, int]) -> int:
    """Initialise the Llama with a fixed seed, save it as safetensors; return its size."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in TINY_CONFIG.items() if k not in ("vocab_target", "min_frequency")}
    seed = cfg.pop("seed")
    llama = LlamaConfig(
        vocab_size=vocab_size,
        bos_token_id=ids[BOS_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
        **cfg,
    )
    # fork_rng: seed a private copy of the RNG so callers' random state is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS_TOKEN], eos_token_id=ids[EOS_TOKEN], pad_token_id=ids[PAD_TOKEN]
    )
    with _quiet_progress():
        model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' "Writing model shards" bar, restoring the caller's setting."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _sidecar(folder: Path, vocab_size: int, parameters: int) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    return {
        "ref": BUILTIN_REF,
        "key": cache_key(),
        "builder_version": BUILDER_VERSION,
        "config": TINY_CONFIG,
        "corpus_sha256": hashlib.sha256(corpus_bytes()).hexdigest(),
        "vocab_size": vocab_size,
        "parameters": parameters,
        "sha256": {name: _sha256(folder / name) for name in HASHED_FILES},
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
