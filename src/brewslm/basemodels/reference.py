"""Base-model references: what a user may name as the model to fine-tune, and where it is.

    resolved = resolve_base_model("builtin:tiny")   # or "./my-model", "owner/name@revision"
    resolved.kind, resolved.path, resolved.describe()
    validate_base_model_ref(ref)                    # cheap: syntax and local folders only

A reference is one of, checked in this order:
  builtin:<name>       a model BrewSLM builds itself, offline (known: builtin:tiny, pretrained
                       on the shipped corpus, and builtin:tiny-random, its random init)
  a local folder       absolute or relative, ./, ../ or ~; an existing folder wins over a hub
                       id of the same spelling. It needs config.json and tokenizer files.
  owner/name[@rev]     a Hugging Face Hub repo: the local HF cache first; the hub only when it
                       is reachable (never with HF_HUB_OFFLINE=1)
Anything else is refused. Every refusal is an InputError with one of the reason codes
base_model_unknown_builtin, base_model_invalid_folder, base_model_not_found,
base_model_unavailable or base_model_invalid_ref.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from brewslm.basemodels import builtin_tiny, pretrain
from brewslm.errors import InputError

BUILTIN_PREFIX = "builtin:"
# name -> (build it and return its folder, where it lives without building).
# builtin:tiny is pretrained on the shipped corpus (LoRA needs something to adapt);
# builtin:tiny-random is its random-init starting point, quick to build for tests.
BUILTINS: dict[str, tuple[Callable[[], Path], Callable[[], Path]]] = {
    "tiny": (pretrain.pretrain_builtin_tiny, pretrain.default_pretrained_dir),
    "tiny-random": (builtin_tiny.build_builtin_tiny, builtin_tiny.default_builtin_dir),
}
KNOWN_BUILTINS = tuple(BUILTIN_PREFIX + name for name in BUILTINS)

# Hub ids as the hub accepts them: owner/name, letters, digits, "-", "_", "." (no "--" or
# ".."), at most 96 characters a part; a revision is a branch, tag, commit or refs/pr/N.
_HUB_ID = re.compile(
    r"(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
    r"(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]{0,199}))?"
)
# A tokenizer is present when one of these is (vocab.json also needs merges.txt).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt",
)
HUB_TIMEOUT_S = 5.0  # reachability probe and download metadata timeout
# What a hub download fetches: weights, configs, tokenizer; not duplicate .bin/.onnx/.gguf.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]

Kind = Literal["builtin", "local", "hub"]


@dataclass(frozen=True)
class ResolvedModel:
    """A base model found on disk: the reference it came from, its kind and its folder."""

    ref: str
    kind: Kind
    path: Path

    def describe(self) -> dict[str, Any]:
        """Facts read cheaply from the folder's files; no weights are loaded."""
        cfg = _read_json(self.path / "config.json") or {}
        architectures = cfg.get("architectures") or []
        return {
            "ref": self.ref,
            "kind": self.kind,
            "path": str(self.path),
            "architecture": architectures[0] if architectures else cfg.get("model_type"),
            "model_type": cfg.get("model_type"),
            "parameters": count_parameters(self.path),
            "tokenizer": not _missing_tokenizer(self.path),
            "chat_template": has_chat_template(self.path),
        }


@dataclass(frozen=True)
class _Parsed:
    kind: Kind
    builtin: str = ""
    path: Path | None = None
    repo_id: str = ""
    revision: str | None = None


def validate_base_model_ref(ref: str) -> None:
    """Check a reference without building or downloading anything; raise InputError if bad."""
    _parse(ref)


def resolve_base_model(ref: str, *, build: bool = True) -> ResolvedModel:
    """Find (building or fetching if needed) the folder a reference names.

    build=False never builds a builtin: its path is where it will be, maybe not there yet.
    Hub references always try the local cache, then the hub if it is reachable.
    """
    parsed = _parse(ref)
    if parsed.kind == "builtin":
        make, where = BUILTINS[parsed.builtin]
        return ResolvedModel(ref, "builtin", make() if build else where())
    if parsed.kind == "local":
        assert parsed.path is not None
        return ResolvedModel(ref, "local", parsed.path)
    path = _hub_snapshot(ref, parsed.repo_id, parsed.revision)
    _check_folder(path, ref)
    return ResolvedModel(ref, "hub", path)


def _parse(ref: str) -> _Parsed:
    _check_text(ref)
    if ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX):]
        if name not in BUILTINS:
            raise InputError(
                "base_model_unknown_builtin",
                f"Unknown builtin base model {ref!r}; known: {', '.join(KNOWN_BUILTINS)}.",
                ref=ref, known=list(KNOWN_BUILTINS),
            )
        return _Parsed("builtin", builtin=name)
    path = Path(ref).expanduser()
    if _exists(path):
        folder = path.resolve()
        _check_folder(folder, ref)
        return _Parsed("local", path=folder)
    match = _HUB_ID.fullmatch(ref)
    if match and "--" not in match["repo"] and ".." not in match["repo"]:
        return _Parsed("hub", repo_id=match["repo"], revision=match["revision"])
    if _looks_like_path(ref):
        raise InputError(
            "base_model_not_found",
            f"Base model folder {ref!r} does not exist (looked at {path.absolute()}).",
            ref=ref, path=str(path.absolute()),
        )
    raise InputError(
        "base_model_invalid_ref",
        f"{ref!r} is not a base model reference. Use {' or '.join(KNOWN_BUILTINS)}, a local "
        "model folder (for example ./my-model), or a Hugging Face id owner/name[@revision].",
        ref=ref,
    )


def _check_text(ref: object) -> None:
    """Refuse what cannot be any reference: non-strings, blanks, padding, control characters."""
    problem = None
    if not isinstance(ref, str) or not ref.strip():
        problem = "it is empty"
    elif ref != ref.strip():
        problem = "it has leading or trailing spaces"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in ref):
        problem = "it contains control characters"
    if problem:
        raise InputError(
            "base_model_invalid_ref",
            f"Base model reference {ref!r} is not valid: {problem}.",
            ref=ref if isinstance(ref, str) else repr(ref),  # details stay JSON-safe
        )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the filesystem is simply not there
        return False


def _looks_like_path(ref: str) -> bool:
    # Asked only of what is not a hub id: these forms can only have meant a folder.
    return (
        ref in (".", "..")
        or ref.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in ref
        or ref.endswith("/")
        or ref.count("/") >= 2
    )


def _check_folder(path: Path, ref: str) -> None:
    """A model folder needs config.json and a tokenizer; say exactly what is missing."""
    if not path.is_dir():
        raise InputError(
            "base_model_invalid_folder",
            f"Base model {ref!r} is a file, not a model folder: {path}.",
            ref=ref, folder=str(path), missing=[],
        )
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    missing += _missing_tokenizer(path)
    if missing:
        raise InputError(
            "base_model_invalid_folder",
            f"Base model folder {path} is missing {' and '.join(missing)}.",
            ref=ref, folder=str(path), missing=missing,
        )


def _missing_tokenizer(path: Path) -> list[str]:
    """[] when the folder has tokenizer files, else the name(s) of what is missing."""
    if any((path / name).is_file() for name in TOKENIZER_FILES):
        return []
    if (path / "vocab.json").is_file():
        return [] if (path / "merges.txt").is_file() else ["merges.txt"]
    return ["tokenizer.json (or tokenizer.model, or vocab.json with merges.txt, or vocab.txt)"]


def has_chat_template(path: Path) -> bool:
    """True when the tokenizer in path carries a chat template, inline or in its own file."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    templates = path / "additional_chat_templates"
    if templates.is_dir() and any(templates.iterdir()):
        return True
    tokenizer_config = _read_json(path / "tokenizer_config.json") or {}
    return bool(tokenizer_config.get("chat_template"))


def count_parameters(path: Path) -> int | None:
    """Parameters stored in the folder's safetensors files, from their headers only."""
    single = path / "model.safetensors"
    if single.is_file():
        return _safetensors_numel(single)
    index = _read_json(path / "model.safetensors.index.json")
    if not index or not isinstance(index.get("weight_map"), dict):
        return None
    counts = [_safetensors_numel(path / shard) for shard in set(index["weight_map"].values())]
    return None if None in counts else sum(c for c in counts if c is not None)


def _safetensors_numel(file: Path) -> int | None:
    # Format: 8-byte little-endian header length, then a JSON header of name -> shape.
    try:
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:  # not a sane header: refuse to read it into memory
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for name, entry in header.items():
        if name != "__metadata__":
            size = 1
            for dim in entry.get("shape", []):
                size *= dim
            total += size
    return total


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hub_snapshot(ref: str, repo_id: str, revision: str | None) -> Path:
    """The local snapshot folder of a hub repo: from the HF cache, else from the hub."""
    from huggingface_hub import snapshot_download

    cache_dir = hf_cache_dir()
    try:
        return Path(snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
        ))
    except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError: not cached
        pass
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            return Path(snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir,
                etag_timeout=HUB_TIMEOUT_S, allow_patterns=HUB_PATTERNS,
            ))
        except Exception as exc:  # network, auth, missing repo: all mean "not available"
            reason = f"the download failed: {type(exc).__name__}: {exc}"
    raise InputError(
        "base_model_unavailable",
        f"Base model {ref!r} is not in the local Hugging Face cache at {cache_dir} and the "
        f"hub is unreachable ({reason}). Pass a local model folder (for example ./my-model) "
        f"or {KNOWN_BUILTINS[0]}, or run once with network access so it is downloaded.",
        ref=ref, cache_dir=str(cache_dir), reason=reason,
    )


def hf_cache_dir() -> Path:
    """The HF hub cache, read from the environment now (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_unreachable_reason() -> str | None:
    """None when the hub answers a TCP connect quickly; otherwise why it is unreachable."""
    from huggingface_hub import constants

    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc}"
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}
