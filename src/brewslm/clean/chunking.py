"""Token-aware chunking of long texts for stage 05 (clean), with overlap and no text lost.

    from brewslm.clean.chunking import chunk_text
    chunks = chunk_text(long_text, tokenizer, max_tokens=512, overlap=64)

The text is tokenized once (a fast tokenizer: `transformers` or `tokenizers`, with offsets).
Windows of at most `max_tokens` tokens step through it; consecutive windows share exactly
`overlap` tokens. A window ends at a paragraph or sentence end when one lies in its last ~20%
(a paragraph end preferred), else at the hard limit. Chunks are slices of the original text,
never re-decoded: whitespace between tokens goes with the window it precedes, the first chunk
starts at 0 and the last ends at len(text), so the chunks, overlaps removed, are the text.
A character split over several byte tokens goes wholly to the chunk where it starts; cuts avoid
splitting one when they can. A text that fits returns [text].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TAIL_SHARE = 0.2  # a natural boundary is looked for in this last share of a window
PARAGRAPH_END_RE = re.compile(r"\n[ \t]*\n\s*$")
LINE_END_RE = re.compile(r"\n[ \t]*$")
SENTENCE_END_RE = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s*$")


@dataclass(frozen=True)
class TokenWindow:
    """Tokens [start, end) of the text, and the characters [char_start, char_end) they cover."""

    start: int
    end: int
    char_start: int
    char_end: int


def token_offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """(start, end) character offsets of the text's tokens, without special tokens."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        return list(tokenizer.encode(text, add_special_tokens=False).offsets)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                         verbose=False)  # long texts are the point: no max-length warning
    return [tuple(o) for o in encoding["offset_mapping"]]


def _boundary(text: str, cut: int) -> int:
    """2 after a paragraph end, 1 after a sentence or line end, 0 elsewhere."""
    before = text[max(0, cut - 16):cut]
    if PARAGRAPH_END_RE.search(before):
        return 2
    if LINE_END_RE.search(before):
        return 1
    # "3.14" and "e.g.x" are not sentence ends: a space must follow the full stop.
    spaced = before[-1:].isspace() or text[cut:cut + 1].isspace()
    return 1 if spaced and SENTENCE_END_RE.search(before) else 0


def _cut(text: str, starts: list[int], start: int, end: int, max_tokens: int,
         overlap: int) -> int:
    """Where the window [start, end) should really end: a natural boundary in its tail, else
    the hard limit (moved back off a split character if possible). Always > start + overlap,
    so that the next window starts after this one."""
    earliest = start + max(overlap + 1, int(max_tokens * (1 - TAIL_SHARE)))
    best, best_kind = end, 0
    for cut in range(end, earliest - 1, -1):
        kind = _boundary(text, starts[cut])
        if kind > best_kind:
            best, best_kind = cut, kind
            if kind == 2:
                break
    if best_kind:
        return best
    while end > earliest and starts[end] == starts[end - 1]:
        end -= 1
    return end


def chunk_windows(text: str, tokenizer: Any, max_tokens: int,
                  overlap: int) -> list[TokenWindow]:
    """The token windows chunk_text cuts the text into."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got "
                         f"max_tokens={max_tokens}, overlap={overlap}")
    starts = [s for s, _ in token_offsets(text, tokenizer)]
    n = len(starts)
    spans, start = [], 0
    while start + max_tokens < n:
        end = _cut(text, starts, start, start + max_tokens, max_tokens, overlap)
        spans.append((start, end))
        start = end - overlap
    spans.append((start, n))
    return [TokenWindow(s, e, 0 if s == 0 else starts[s], len(text) if e == n else starts[e])
            for s, e in spans]


def chunk_text(text: str, tokenizer: Any, max_tokens: int, overlap: int) -> list[str]:
    """The text cut into chunks of at most max_tokens tokens, consecutive chunks sharing
    `overlap` tokens; [text] when it fits."""
    return [text[w.char_start:w.char_end]
            for w in chunk_windows(text, tokenizer, max_tokens, overlap)]
