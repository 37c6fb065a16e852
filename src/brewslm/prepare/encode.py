"""Encode one canonical row into token ids and a loss mask (the pure core of stage 06).

    enc = encode_row(row, tokenizer, max_tokens=512)            # Encoded, or (None, code)
    enc = encode_row(row, tokenizer, chat_template=override, max_tokens=512, policy="truncate")
    template_hash(tokenizer, override), tokenizer_hash(tokenizer)  # for the manifest

What is trained on (labels != -100):
  sft        the tokens of each assistant turn as the chat template renders it: its content,
             its tool calls, and the special token that closes the turn (so the model learns
             to stop). System, user and tool turns and each turn's header (for ChatML
             "<|im_start|>assistant\\n") are masked, as is whitespace the template puts after
             the closing token (ChatML's "\\n" after <|im_end|>, never generated).
  preference messages + chosen in the Encoded, messages + rejected in its `rejected`, each
             masked like sft.
  pretrain   text + the tokenizer's eos token, all trained on.

How an sft conversation is cut. For each assistant turn i the template renders
prefix = messages[:i] with the generation prompt and full = messages[:i + 1]; the text of full
beyond prefix is the turn's trainable span, the text of prefix beyond the previous full is
masked context. Each piece is tokenized on its own (add_special_tokens=False) and the ids are
concatenated, so training sees the prompt/answer boundary that generation sees (the prompt is
tokenized alone at generation time). Where whitespace straddles a boundary a byte-level BPE may
merge differently than when tokenizing the whole text at once; the split ids are the ones that
match generation. A template whose renders are not prefixes of each other (one that rewrites
earlier turns) cannot be cut this way: the row is template_failed. Turns after the last
assistant turn are left out (they carry no loss), and an assistant turn that opens the
conversation has no prompt to answer: it stays masked context.

Reason codes: template_failed, too_many_tokens (policy "drop"), no_trainable_tokens.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and HF models) skip
POLICIES = ("drop", "truncate")


@dataclass(frozen=True)
class Encoded:
    """One encoded row. labels is input_ids with IGNORE_INDEX where the loss is masked."""

    input_ids: list[int]
    labels: list[int]
    n_tokens: int
    n_trainable: int
    truncated_tokens: int = 0
    rejected: Encoded | None = None  # preference rows: messages + rejected, masked the same


class TemplateFailed(Exception):
    """The chat template raised, or its renders cannot be cut into prompt and answer."""


# A piece of rendered text and whether it is an answer (trainable) span.
Segment = tuple[str, bool]


def encode_row(row: dict[str, Any], tokenizer: Any, *, chat_template: str | None = None,
               max_tokens: int, policy: str = "drop") -> Encoded | tuple[None, str]:
    """Encode a canonical row (see mappers/base.py); (None, reason_code) when it cannot be."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    task = row.get("task")
    try:
        if task == "pretrain":
            return _fit(*_pretrain_ids(row, tokenizer), max_tokens, policy)
        if task == "sft":
            segments = chat_segments(row["messages"], row.get("tools"), tokenizer, chat_template)
            return _fit(*_tokenize(segments, tokenizer), max_tokens, policy)
        if task == "preference":
            return _encode_preference(row, tokenizer, chat_template, max_tokens, policy)
    except TemplateFailed:
        return None, "template_failed"
    raise ValueError(f"not a canonical row: task {task!r}")


def _encode_preference(row: dict[str, Any], tokenizer: Any, chat_template: str | None,
                       max_tokens: int, policy: str) -> Encoded | tuple[None, str]:
    sides = []
    for side in ("chosen", "rejected"):
        messages = [*row["messages"], *row[side]]
        segments = chat_segments(messages, row.get("tools"), tokenizer, chat_template)
        encoded = _fit(*_tokenize(segments, tokenizer), max_tokens, policy)
        if isinstance(encoded, tuple):  # a pair is only usable whole
            return encoded
        sides.append(encoded)
    chosen, rejected = sides
    return Encoded(chosen.input_ids, chosen.labels, chosen.n_tokens, chosen.n_trainable,
                   chosen.truncated_tokens, rejected=rejected)


# --- rendering ---------------------------------------------------------------------------------

def chat_segments(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                  tokenizer: Any, chat_template: str | None = None) -> list[Segment]:
    """The conversation as rendered text pieces, each marked trainable or not (see the module
    docstring); raises TemplateFailed."""
    msgs = [template_message(m) for m in messages]
    answers = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and i > 0]
    segments: list[Segment] = []
    done = ""  # the text rendered so far: every later render must start with it
    for i in answers:
        prefix = _render(msgs[:i], tools, tokenizer, chat_template, generation_prompt=True)
        full = _render(msgs[:i + 1], tools, tokenizer, chat_template, generation_prompt=False)
        if not prefix.startswith(done) or not full.startswith(prefix):
            raise TemplateFailed(f"the template's render of turn {i} does not extend the "
                                 "render of the turns before it")
        segments += [(prefix[len(done):], False), (full[len(prefix):], True)]
        done = full
    return [(text, trainable) for text, trainable in segments if text]


def template_message(message: dict[str, Any]) -> dict[str, Any]:
    """A canonical message in the shape HF chat templates expect: tool calls as
    {"type": "function", "function": {"name", "arguments": dict}} (templates `tojson` the
    arguments, so JSON text would be rendered as a quoted string)."""
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    if message.get("tool_calls"):
        out["tool_calls"] = [_template_call(call) for call in message["tool_calls"]]
    return out


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    try:
        arguments = json.loads(call["arguments"])
    except (TypeError, ValueError):  # mappers give JSON text, but keep odd rows renderable
        arguments = call.get("arguments")
    out: dict[str, Any] = {"type": "function",
                           "function": {"name": call["name"], "arguments": arguments}}
    if call.get("id"):
        out["id"] = call["id"]
    return out


def _render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tokenizer: Any,
            chat_template: str | None, *, generation_prompt: bool) -> str:
    try:
        text = tokenizer.apply_chat_template(
            messages, tools=tools or None, chat_template=chat_template, tokenize=False,
            add_generation_prompt=generation_prompt)
    except Exception as exc:  # a template is user code: whatever it raises fails the row
        raise TemplateFailed(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(text, str):
        raise TemplateFailed(f"the template rendered {type(text).__name__}, not text")
    return text


# --- tokens ------------------------------------------------------------------------------------

def _tokenize(segments: list[Segment], tokenizer: Any) -> tuple[list[int], list[int]]:
    """Tokenize each segment alone and concatenate; answer segments are labelled."""
    if not segments:
        return [], []
    encoded = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
    closing = _special_ids(tokenizer)
    ids: list[int] = []
    labels: list[int] = []
    for (_, trainable), piece in zip(segments, encoded, strict=True):
        ids += piece
        if not trainable:
            labels += [IGNORE_INDEX] * len(piece)
            continue
        keep = _answer_length(piece, closing, tokenizer)
        labels += piece[:keep] + [IGNORE_INDEX] * (len(piece) - keep)
    return ids, labels


def _answer_length(piece: list[int], closing: set[int], tokenizer: Any) -> int:
    """How many tokens of an answer span to train on: all of them, except whitespace the
    template renders after the special token that closes the turn (never generated, since
    generation stops at that token)."""
    last = max((k for k, token in enumerate(piece) if token in closing), default=None)
    if last is None:
        return len(piece)
    tail = piece[last + 1:]
    if tail and not tokenizer.decode(tail, skip_special_tokens=False).strip():
        return last + 1
    return len(piece)


def _special_ids(tokenizer: Any) -> set[int]:
    """Ids of the special tokens (eos, ChatML's <|im_end|>, Llama 3's <|eot_id|>, ...)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(token, "special", False):
            ids.add(token_id)
    return ids


def _pretrain_ids(row: dict[str, Any], tokenizer: Any) -> tuple[list[int], list[int]]:
    ids = list(tokenizer(row.get("text") or "", add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)  # documents end, so generation learns to stop
    return ids, list(ids)


def _fit(ids: list[int], labels: list[int], max_tokens: int,
         policy: str) -> Encoded | tuple[None, str]:
    """Apply the length policy and the no-trainable-token check."""
    if not any(label != IGNORE_INDEX for label in labels):
        return None, "no_trainable_tokens"  # the template masked everything: never train on it
    cut = max(0, len(ids) - max_tokens)
    if cut and policy == "drop":
        return None, "too_many_tokens"
    if cut:  # truncate from the end: the prompt stays whole, the answer's tail goes
        ids, labels = ids[:max_tokens], labels[:max_tokens]
    trainable = sum(label != IGNORE_INDEX for label in labels)
    if not trainable:
        return None, "no_trainable_tokens"
    return Encoded(ids, labels, len(ids), trainable, truncated_tokens=cut)


# --- hashes ------------------------------------------------------------------------------------

def template_hash(tokenizer: Any, chat_template: str | None = None) -> str | None:
    """sha256 of the chat template text actually used (the override, else the tokenizer's);
    None when there is none. A tokenizer with several named templates hashes them all."""
    template = chat_template if chat_template is not None else tokenizer.chat_template
    if template is None:
        return None
    if not isinstance(template, str):  # {name: template}: canonical JSON of the whole set
        template = json.dumps(template, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the tokenizer's tokenizer.json. For a fast tokenizer this is the backend's
    pretty serialization, byte-identical to the tokenizer.json that save_pretrained writes
    (and to the builtin model's recorded hash); a slow tokenizer hashes its saved vocab files."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str(pretty=True).encode("utf-8")).hexdigest()
    return _saved_files_hash(tokenizer)


def _saved_files_hash(tokenizer: Any) -> str:
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as folder:
        for path in sorted(Path(name) for name in tokenizer.save_vocabulary(folder)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
