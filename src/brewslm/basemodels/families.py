"""Model families, largest to smallest: which smaller base model the autopilot may fall back to
when preflight blocks on memory and no safe recipe change fits.

    from brewslm.basemodels.families import smaller_siblings
    smaller_siblings("Qwen/Qwen2.5-1.5B-Instruct")  # ["Qwen/Qwen2.5-0.5B-Instruct"]

A sibling is only a candidate: the autopilot uses one only when it resolves here (a local
folder, or the Hugging Face cache when offline) and then re-runs prepare with its tokenizer.
The members of a family share a tokenizer and chat template, so the mapped data stays valid.
builtin:tiny is alone in its family: it has no smaller sibling.
"""

from __future__ import annotations

FAMILIES: tuple[tuple[str, ...], ...] = (
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
     "Qwen/Qwen2.5-0.5B-Instruct"),
    ("Qwen/Qwen3-8B", "Qwen/Qwen3-4B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-0.6B"),
    ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
     "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"),
    ("google/gemma-3-4b-it", "google/gemma-3-1b-it", "google/gemma-3-270m-it"),
)


def smaller_siblings(ref: str) -> list[str]:
    """The members of `ref`'s family smaller than it, the next smaller first ([] if none)."""
    name = ref.split("@", 1)[0]
    for family in FAMILIES:
        if name in family:
            return list(family[family.index(name) + 1:])
    return []


def available_locally(ref: str) -> bool:
    """True when `ref` resolves with nothing downloaded: a model folder here, a builtin, or a
    complete snapshot in the Hugging Face cache."""
    from pathlib import Path

    if ref.startswith("builtin:") or (Path(ref).expanduser() / "config.json").is_file():
        return True
    if ref.count("/") != 1 or Path(ref).expanduser().exists():
        return False
    from huggingface_hub import snapshot_download

    repo_id, _, revision = ref.partition("@")
    try:
        folder = snapshot_download(repo_id, revision=revision or None, local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss (not cached, incomplete) means "not here"
        return False
    return (Path(folder) / "config.json").is_file()
