"""brewslm.clean.dedup: normalization, exact keys, and the Deduper's exact and near-duplicate
answers (naming the kept row), its compact index, and determinism across processes."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from brewslm.clean import dedup
from brewslm.clean.dedup import Deduper, exact_key, normalize

# ~40 words: one changed word keeps the 5-gram Jaccard near 0.9, above the 0.85 default.
TICKET = ("My order arrived with a cracked screen and the box was crushed; please send a "
          "replacement or refund to my card as soon as possible, because I need the phone for "
          "work next week and I have already waited twelve days for this delivery.")
OTHER = ("How do I change the e-mail address on my account? The settings page only lets me "
         "edit my name and phone number, and the help article mentions a button that I cannot "
         "find anywhere in the app.")


def test_normalize_casefolds_collapses_spaces_and_strips_edge_punctuation():
    assert normalize("  Hello,\n\tWORLD!!  ") == "hello, world"
    assert normalize("...«Straße»...") == "strasse"
    assert normalize("!!!") == ""


def test_exact_key_is_equal_for_normalized_equal_rows():
    a = {"task": "pretrain", "text": "Refund   my ORDER please."}
    b = {"task": "pretrain", "text": "refund my order please"}
    assert exact_key(a) == exact_key(b)
    assert len(exact_key(a)) == 32 and int(exact_key(a), 16) >= 0
    assert exact_key(a) != exact_key({"task": "pretrain", "text": "refund my order now"})


def test_exact_duplicate_names_the_first_row():
    d = Deduper()
    assert d.check("r1", TICKET) is None
    assert d.check("r2", "  " + TICKET.upper() + " ") == ("exact_duplicate", "r1")
    assert d.check("r3", TICKET) == ("exact_duplicate", "r1")
    assert len(d) == 1


def test_near_duplicate_with_one_word_changed_names_the_kept_row():
    d = Deduper()
    assert d.check("kept", TICKET) is None
    assert d.check("other", OTHER) is None
    assert d.check("near", TICKET.replace("cracked", "broken")) == ("near_duplicate", "kept")
    assert d.check("near2", TICKET.replace("twelve", "eleven")) == ("near_duplicate", "kept")
    assert len(d) == 2  # duplicates are not recorded


def test_unrelated_and_loosely_related_rows_do_not_match():
    d = Deduper()
    assert d.check("a", TICKET) is None
    assert d.check("b", OTHER) is None
    # Same topic, a third of the words different: similar, but not a near-duplicate.
    rewritten = TICKET.replace("cracked screen", "dead battery").replace(
        "box was crushed", "charger was missing").replace("twelve days", "two weeks")
    assert d.check("c", rewritten) is None
    assert len(d) == 3


def test_row_ids_can_be_any_hashable_and_empty_texts_are_exact_duplicates():
    d = Deduper()
    assert d.check(7, "") is None
    assert d.check(8, " ... ") == ("exact_duplicate", 7)


def distinct_texts(n: int) -> list[str]:
    rng = random.Random(5)
    return [" ".join(f"item{rng.randrange(10**6)}" for _ in range(30)) for _ in range(n)]


def test_the_compact_index_still_finds_rows_after_merging(monkeypatch):
    # Tiny flush and chunk sizes push most rows through the merged numpy arrays.
    monkeypatch.setattr(dedup._IntTable, "FLUSH", 16)
    monkeypatch.setattr(dedup._Signatures, "CHUNK", 3)
    d = Deduper()
    texts = distinct_texts(60)
    assert [d.check(f"r{i}", t) for i, t in enumerate(texts)] == [None] * 60
    for i in (0, 17, 59):
        assert d.check("again", texts[i].upper()) == ("exact_duplicate", f"r{i}")
        words = texts[i].split()
        words[10] = "changed"
        assert d.check("edited", " ".join(words)) == ("near_duplicate", f"r{i}")
    assert len(d) == 60


def test_threshold_is_validated():
    with pytest.raises(ValueError):
        Deduper(threshold=0.0)
    with pytest.raises(ValueError):
        Deduper(threshold=1.5)


def test_answers_are_the_same_in_another_process_with_another_hash_seed():
    script = (
        "import json\n"
        "from brewslm.clean.dedup import Deduper, normalize\n"
        "d = Deduper()\n"
        f"texts = [{TICKET!r}, {OTHER!r}, {TICKET.replace('cracked', 'broken')!r}]\n"
        "out = [d.check(i, t) for i, t in enumerate(texts)]\n"
        "sig = d._signature(normalize(texts[0]))\n"
        "print(json.dumps([out, d._band_keys(sig), sig.tolist()]))\n")
    results = []
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, check=True, timeout=120)
        results.append(json.loads(proc.stdout))
    assert results[0] == results[1]
    assert results[0][0] == [None, None, ["near_duplicate", 0]]
