"""brewslm.clean.chunking with builtin:tiny's tokenizer: windows cover every token, consecutive
windows share exactly `overlap` tokens, chunks are slices that lose no text, and cuts prefer
paragraph and sentence ends."""

from __future__ import annotations

import functools

import pytest
from transformers import AutoTokenizer

from brewslm.basemodels import build_builtin_tiny
from brewslm.clean.chunking import chunk_text, chunk_windows, token_offsets


@functools.cache
def _load(path: str):
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture
def tokenizer(brewslm_home):
    # Function-scoped so that the root conftest has set BREWSLM_MODELS_DIR (built once there).
    return _load(str(build_builtin_tiny()))


def ticket_text(sentences: int, paragraph_every: int = 0) -> str:
    parts = []
    for i in range(sentences):
        parts.append(f"Customer {i} asked about refunds, late shipping and a naïve café order.")
        parts.append("\n\n" if paragraph_every and i % paragraph_every == paragraph_every - 1
                     else " ")
    return "".join(parts).rstrip()


def assert_windows_are_sound(text, tokenizer, max_tokens, overlap):
    n = len(token_offsets(text, tokenizer))
    windows = chunk_windows(text, tokenizer, max_tokens, overlap)
    assert windows[0].start == 0 and windows[-1].end == n  # every token is in some window
    assert all(w.end - w.start <= max_tokens for w in windows)
    for a, b in zip(windows, windows[1:], strict=False):
        assert b.start == a.end - overlap  # exactly `overlap` shared tokens
        assert b.char_start <= a.char_end  # no character falls between two chunks
    assert windows[0].char_start == 0 and windows[-1].char_end == len(text)
    chunks = chunk_text(text, tokenizer, max_tokens, overlap)
    assert chunks == [text[w.char_start:w.char_end] for w in windows]
    rebuilt = chunks[0] + "".join(c[a.char_end - b.char_start:]
                                  for a, b, c in zip(windows, windows[1:], chunks[1:],
                                                     strict=False))
    assert rebuilt == text
    return windows, chunks


def test_a_text_that_fits_comes_back_whole(tokenizer):
    text = "A short ticket about a late parcel."
    assert chunk_text(text, tokenizer, 512, 64) == [text]
    assert chunk_text("", tokenizer, 8, 2) == [""]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 8), (50, 0), (40, 30), (16, 15)])
def test_windows_cover_every_token_with_exact_overlap(tokenizer, max_tokens, overlap):
    windows, chunks = assert_windows_are_sound(ticket_text(30), tokenizer, max_tokens, overlap)
    assert len(chunks) > 2


def test_cuts_prefer_sentence_ends_in_the_window_tail(tokenizer):
    text = ticket_text(30)
    windows, chunks = assert_windows_are_sound(text, tokenizer, 64, 8)
    starts = [s for s, _ in token_offsets(text, tokenizer)]
    for w, chunk in zip(windows[:-1], chunks[:-1], strict=True):
        tail = w.start + int(64 * 0.8)
        has_end = any(text[:starts[i]].endswith(".") for i in range(tail, w.start + 65))
        if has_end:
            assert chunk.endswith("."), chunk[-40:]


def test_paragraph_ends_are_preferred_over_later_sentence_ends(tokenizer):
    paragraph = ticket_text(2) + "\n\n"
    text = paragraph + "Yes. " + ticket_text(6)
    n_paragraph = len(token_offsets(paragraph, tokenizer))
    # The window reaches past "Yes." and its tail holds both ends: the paragraph end wins.
    max_tokens = n_paragraph + len(token_offsets("Yes. ", tokenizer)) + 2
    assert n_paragraph >= int(max_tokens * 0.8)
    _, chunks = assert_windows_are_sound(text, tokenizer, max_tokens, 4)
    assert chunks[0] == paragraph


def test_text_without_boundaries_is_cut_hard_and_loses_nothing(tokenizer):
    text = "".join(f"{i:x}" for i in range(3000)) + " 日本語🙂 naïve " * 20
    windows, _ = assert_windows_are_sound(text, tokenizer, 32, 4)
    ascii_windows = [w for w in windows[:-1] if text[w.char_start:w.char_end].isascii()]
    assert ascii_windows and all(w.end - w.start == 32 for w in ascii_windows)
    # Elsewhere a hard cut steps back (at most 3 byte tokens) rather than split a character.
    assert all(29 <= w.end - w.start <= 32 for w in windows[:-1])


def test_a_tokenizers_tokenizer_works_too(tokenizer):
    text = ticket_text(20)
    raw = tokenizer.backend_tokenizer  # the underlying tokenizers.Tokenizer
    assert chunk_text(text, raw, 48, 6) == chunk_text(text, tokenizer, 48, 6)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (8, 8), (8, -1)])
def test_bad_window_settings_are_refused(tokenizer, max_tokens, overlap):
    with pytest.raises(ValueError):
        chunk_text("some text", tokenizer, max_tokens, overlap)
