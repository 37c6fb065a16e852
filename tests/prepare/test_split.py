"""assign_splits (deterministic, group-preserving, stratified) and near_duplicate_groups."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from brewslm.prepare import assign_splits, near_duplicate_groups
from brewslm.prepare import split as split_module
from brewslm.prepare.split import shingle_hash, shingles


def singletons(n: int, label=None) -> list[tuple[str, str, object]]:
    return [(f"r{i:04d}", f"g{i:04d}", label) for i in range(n)]


def eval_ids(splits: dict) -> set:
    return {row_id for row_id, side in splits.items() if side == "eval"}


# --- assign_splits -----------------------------------------------------------------------------

def test_same_input_same_split_whatever_the_order():
    items = singletons(500)
    first = assign_splits(items, eval_fraction=0.2, seed=7, stratify=False)
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    assert assign_splits(shuffled, eval_fraction=0.2, seed=7, stratify=False) == first
    assert assign_splits(iter(items), eval_fraction=0.2, seed=7, stratify=False) == first
    assert list(first) == [row_id for row_id, _, _ in items]  # input order kept
    other = assign_splits(items, eval_fraction=0.2, seed=8, stratify=False)
    assert eval_ids(other) != eval_ids(first)


def test_eval_gets_the_rounded_fraction_of_rows():
    for n, fraction, expected in [(1000, 0.1, 100), (10, 0.25, 3), (7, 0.5, 4), (3, 0.1, 1)]:
        splits = assign_splits(singletons(n), eval_fraction=fraction, seed=0, stratify=False)
        assert len(eval_ids(splits)) == expected, (n, fraction)


def test_groups_never_straddle_the_split():
    rng = random.Random(3)
    items = [(f"r{i}", f"g{rng.randrange(120)}", None) for i in range(600)]
    splits = assign_splits(items, eval_fraction=0.3, seed=5, stratify=False)
    sides: dict[str, set] = {}
    for row_id, group, _ in items:
        sides.setdefault(group, set()).add(splits[row_id])
    assert all(len(s) == 1 for s in sides.values())
    assert 150 <= len(eval_ids(splits)) <= 210  # near 180 rows, in whole groups


def test_a_big_group_is_not_pulled_into_a_small_eval_split():
    items = [(f"big{i}", "big", None) for i in range(50)] + singletons(50)
    for seed in range(10):
        splits = assign_splits(items, eval_fraction=0.1, seed=seed, stratify=False)
        assert len(eval_ids(splits)) == 10
        assert splits["big0"] == "train"


def test_stratified_proportions_are_exact_per_label():
    items = [(f"a{i}", f"a{i}", "A") for i in range(700)] + \
            [(f"b{i}", f"b{i}", "B") for i in range(300)] + \
            [(f"n{i}", f"n{i}", None) for i in range(20)]
    splits = assign_splits(items, eval_fraction=0.2, seed=11, stratify=True)
    per_label = Counter(row_id[0] for row_id in eval_ids(splits))
    assert per_label == {"a": 140, "b": 60, "n": 4}


def test_unstratified_split_ignores_labels():
    items = [(f"a{i}", f"a{i}", "A") for i in range(90)] + [("b0", "b0", "B")]
    splits = assign_splits(items, eval_fraction=0.1, seed=0, stratify=False)
    stratified = assign_splits(items, eval_fraction=0.1, seed=0, stratify=True)
    assert len(eval_ids(splits)) == 9
    assert len(eval_ids(stratified)) == 9 and stratified["b0"] == "train"  # 0.1 x 1 rounds to 0


def test_a_group_counts_under_its_most_common_label():
    items = [("x1", "g", "A"), ("x2", "g", "A"), ("x3", "g", "B")] + \
            [(f"b{i}", f"b{i}", "B") for i in range(9)]
    splits = assign_splits(items, eval_fraction=0.5, seed=0, stratify=True)
    # Stratum A is the group alone (3 rows, target 2): the group goes to eval whole.
    assert {splits[r] for r in ("x1", "x2", "x3")} == {"eval"}


def test_zero_fraction_and_a_single_group_keep_everything_in_train():
    assert set(assign_splits(singletons(20), eval_fraction=0.0, seed=0,
                             stratify=False).values()) == {"train"}
    one_group = [(f"r{i}", "same", None) for i in range(20)]
    assert set(assign_splits(one_group, eval_fraction=0.5, seed=0,
                             stratify=False).values()) == {"train"}
    assert assign_splits([], eval_fraction=0.1, seed=0, stratify=False) == {}


def test_a_tiny_fraction_still_gives_one_eval_row():
    items = [(f"big{i}", "big", None) for i in range(30)] + [("small", "small", None)]
    splits = assign_splits(items, eval_fraction=0.001, seed=0, stratify=False)
    assert eval_ids(splits) == {"small"}  # the smallest group, not the big one
    two = assign_splits(singletons(2), eval_fraction=0.01, seed=0, stratify=False)
    assert sorted(two.values()) == ["eval", "train"]


def test_a_large_fraction_still_leaves_train_a_group():
    splits = assign_splits(singletons(2), eval_fraction=0.9, seed=0, stratify=False)
    assert sorted(splits.values()) == ["eval", "train"]
    many = assign_splits(singletons(10), eval_fraction=0.99, seed=0, stratify=False)
    assert len(eval_ids(many)) == 9


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(ValueError):
        assign_splits(singletons(5), eval_fraction=fraction, seed=0, stratify=False)


def test_duplicate_row_ids_are_refused():
    with pytest.raises(ValueError):
        assign_splits([("r", "g1", None), ("r", "g2", None)], eval_fraction=0.5, seed=0,
                      stratify=False)


def test_int_and_str_group_keys_are_different_groups():
    items = [("a", 1, None), ("b", "1", None)]
    assert sorted(assign_splits(items, eval_fraction=0.5, seed=0, stratify=False).values()) == \
        ["eval", "train"]


# --- near_duplicate_groups ---------------------------------------------------------------------

TEXTS = {
    "q1": "How do I reset my password on the mobile app?",
    "q2": "how do I reset my password on the mobile app??",
    "q3": "How do I  reset my password in the mobile app?",
    "w1": "The weather in Paris is sunny with a light breeze today.",
    "w2": "The weather in Paris is sunny with a light breeze today!",
    "x1": "Completely unrelated sentence about quarterly revenue growth.",
    "x2": "Bananas are rich in potassium and taste sweet.",
    "e1": "",
    "e2": "   ",
    "s1": "ok",
}


def test_near_duplicates_share_a_group_keyed_by_their_smallest_id():
    groups = near_duplicate_groups(TEXTS.items(), threshold=0.7, seed=0)
    assert set(groups) == set(TEXTS)
    assert groups["q1"] == groups["q2"] == groups["q3"] == "q1"
    assert groups["w1"] == groups["w2"] == "w1"
    assert groups["e1"] == groups["e2"] == "e1"  # empty after normalization: identical
    for row_id in ("x1", "x2", "s1"):
        assert groups[row_id] == row_id


def test_grouping_is_deterministic_and_order_independent():
    items = list(TEXTS.items())
    first = near_duplicate_groups(items, seed=3)
    assert near_duplicate_groups(list(reversed(items)), seed=3) == first
    assert near_duplicate_groups(iter(items), seed=3) == first


def test_dissimilar_rows_stay_apart():
    rng = random.Random(0)
    items = [(f"r{i:03d}", " ".join(f"{rng.randrange(10**6):x}" for _ in range(10)))
             for i in range(300)]
    groups = near_duplicate_groups(items, seed=0)
    assert all(row_id == key for row_id, key in groups.items())


def test_groups_are_the_components_of_datasketch_lsh_candidates():
    """Same candidates as datasketch's own MinHashLSH (same b, r, MinHash), joined."""
    rng = random.Random(0)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    texts = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(150)]
    texts += [t.replace("golf", "GOLF!", 1) for t in texts[:30]]  # some near-duplicates
    items = [(f"r{i:03d}", t) for i, t in enumerate(texts)]
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    sketches = {}
    for row_id, text in items:
        sketches[row_id] = MinHash(128, seed=4, hashfunc=shingle_hash)
        sketches[row_id].update_batch(shingles(text))
        lsh.insert(row_id, sketches[row_id])
    root = {row_id: row_id for row_id, _ in items}

    def find(x):
        while root[x] != x:
            x = root[x]
        return x

    for row_id, sketch in sketches.items():
        for other in lsh.query(sketch):
            a, b = sorted((find(row_id), find(other)))
            root[b] = a
    expected = {row_id: find(row_id) for row_id in root}
    assert near_duplicate_groups(items, threshold=0.7, seed=4) == expected
    assert sum(1 for r, k in expected.items() if r != k) >= 30


def test_clusters_join_transitively():
    base = "one two three four five six seven eight nine ten eleven twelve"
    words = base.split()
    chain = [(f"c{i}", " ".join(words[:11 - i] + ["X"] * i + words[11:])) for i in range(6)]
    groups = near_duplicate_groups(chain, threshold=0.7, seed=0)
    assert groups["c0"] == groups["c1"] == "c0"
    assert len(set(groups.values())) < len(chain)


def test_signatures_equal_datasketch_minhash(monkeypatch):
    """The vectorized signatures are datasketch's (affine32, hashfunc=shingle_hash), also when
    rows and chunks span several permutation slices."""
    monkeypatch.setattr(split_module, "CHUNK_SHINGLES", 7)
    rng = random.Random(2)
    texts = ["abc", "", "Hello, World!", "Ünïcødé row with accents",
             "".join(rng.choice("abcdefgh ") for _ in range(300))]
    encoded = [split_module.normalize(t) for t in texts]
    hv, first = split_module._chunk_shingle_hashes(encoded, 5)
    a, b = (np.asarray(p, dtype=np.uint32) for p in MinHash(64, seed=9).permutations)
    signatures = split_module._signatures(hv, first, a, b)
    for text, signature in zip(texts, signatures, strict=True):
        reference = MinHash(64, seed=9, hashfunc=shingle_hash)
        reference.update_batch(shingles(text))
        assert (reference.hashvalues == signature).all()


def test_small_chunks_give_the_same_groups(monkeypatch):
    expected = near_duplicate_groups(TEXTS.items(), seed=0)
    monkeypatch.setattr(split_module, "CHUNK_SHINGLES", 5)
    assert near_duplicate_groups(TEXTS.items(), seed=0) == expected


def test_no_rows():
    assert near_duplicate_groups([], seed=0) == {}


def test_groups_feed_assign_splits_without_leaks():
    groups = near_duplicate_groups(TEXTS.items(), seed=0)
    splits = assign_splits(((r, groups[r], None) for r in TEXTS), eval_fraction=0.3, seed=1,
                           stratify=False)
    for row_id, key in groups.items():
        assert splits[row_id] == splits[key]
