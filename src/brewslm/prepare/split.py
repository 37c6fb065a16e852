"""Deterministic, leak-free train/eval splits, and near-duplicate groups to keep them leak-free.

    groups = near_duplicate_groups(((row_id, text) for ...), threshold=0.7, seed=0)
    splits = assign_splits(((row_id, groups[row_id], label) for ...),
                           eval_fraction=0.1, seed=0, stratify=True)
    splits[row_id]  # "train" or "eval"

assign_splits keeps every group on one side, so near-duplicates of an eval row never sit in
train. Groups are ordered by sha256(seed, group key), which depends on neither Python's hash
seed nor the input order; the first groups in that order fill eval up to round(eval_fraction x
rows), per label when stratified.

near_duplicate_groups is MinHash LSH with datasketch's permutations (scheme "affine32") and
band/row parameters (MinHashLSH's optimum for the threshold), computed for many rows at once
with numpy: a row costs its band hashes (8 bytes a band) while it is being indexed, never a
MinHash object. Rows that share any band are joined with union-find; joined rows are not
re-checked against the threshold (LSH candidates are the groups), which errs towards bigger
groups, the safe side for a split. See near_duplicate_groups for the shingles.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

SPLIT_TRAIN, SPLIT_EVAL = "train", "eval"

# --- splits ------------------------------------------------------------------------------------


def assign_splits(items: Iterable[tuple[Hashable, Hashable, Any]], *, eval_fraction: float,
                  seed: int, stratify: bool) -> dict[Hashable, str]:
    """Map each row id to "train" or "eval". items: (row_id, group_key, label or None).

    All rows of a group go to the same side. Per stratum (each label when stratify, else
    all rows) groups are taken into eval in seeded-hash order while that brings the eval row
    count closer to round(eval_fraction x stratum rows); a stratified group counts under its
    most common label. With eval_fraction > 0 and at least two groups, eval gets at least one
    group (the first smallest one) and train keeps at least one.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction!r}")
    order, members, labels = _collect(items)
    ranked = sorted(members, key=lambda key: _rank(seed, key))
    strata: dict[Any, list[Hashable]] = {}
    for key in ranked:
        label = _majority(labels[key]) if stratify else None
        strata.setdefault(label, []).append(key)
    eval_groups: set[Hashable] = set()
    for keys in strata.values():
        eval_groups |= _fill(keys, members, eval_fraction)
    if eval_fraction > 0 and len(ranked) >= 2:
        _keep_both_sides(ranked, members, eval_groups)
    return {row_id: SPLIT_EVAL if key in eval_groups else SPLIT_TRAIN for row_id, key in order}


def _collect(items: Iterable[tuple[Hashable, Hashable, Any]]) -> tuple[
        list[tuple[Hashable, Hashable]], dict[Hashable, int], dict[Hashable, Counter]]:
    """(row_id, group) in input order, rows per group, label counts per group."""
    order: list[tuple[Hashable, Hashable]] = []
    members: dict[Hashable, int] = {}
    labels: dict[Hashable, Counter] = {}
    seen: set[Hashable] = set()
    for row_id, key, label in items:
        if row_id in seen:
            raise ValueError(f"row id {row_id!r} appears twice")
        seen.add(row_id)
        order.append((row_id, key))
        members[key] = members.get(key, 0) + 1
        labels.setdefault(key, Counter())[label] += 1
    return order, members, labels


def _rank(seed: int, key: Hashable) -> bytes:
    # repr, not str: the group 1 and the group "1" must not share a rank.
    return hashlib.sha256(f"{seed}\0{key!r}".encode()).digest()


def _majority(counts: Counter) -> Any:
    """The most common label; ties go to the smallest repr, so input order does not matter."""
    return min(counts.items(), key=lambda item: (-item[1], repr(item[0])))[0]


def _fill(keys: list[Hashable], members: dict[Hashable, int], fraction: float) -> set[Hashable]:
    """Groups (in rank order) taken into eval while each brings eval closer to the target."""
    target = math.floor(fraction * sum(members[k] for k in keys) + 0.5)  # round half up
    taken: set[Hashable] = set()
    rows = 0
    for key in keys:
        if rows >= target:
            break
        size = members[key]
        if abs(rows + size - target) < abs(rows - target):  # skip a group that overshoots
            taken.add(key)
            rows += size
    return taken


def _keep_both_sides(ranked: list[Hashable], members: dict[Hashable, int],
                     eval_groups: set[Hashable]) -> None:
    """Move the smallest group (first in rank order) so that neither side is empty."""
    smallest = min(members[k] for k in ranked)
    if not eval_groups:
        eval_groups.add(next(k for k in ranked if members[k] == smallest))
    elif len(eval_groups) == len(ranked):
        eval_groups.discard(next(k for k in reversed(ranked) if members[k] == smallest))


# --- near-duplicates ---------------------------------------------------------------------------

CHUNK_SHINGLES = 1 << 16  # shingles hashed at once: bounds the (shingles x num_perm) temporary
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def near_duplicate_groups(items: Iterable[tuple[Hashable, str]], threshold: float = 0.7,
                          seed: int = 0, *, num_perm: int = 128,
                          shingle_bytes: int = 5) -> dict[Hashable, Hashable]:
    """Map each row id to a group key: the smallest row id of its near-duplicate cluster
    (a row with no near-duplicate is its own group). Row ids must be comparable.

    A row's shingles are the overlapping `shingle_bytes`-byte windows of its text, lower-cased
    with whitespace runs collapsed, in UTF-8 (a shorter text is one shingle); rows whose
    shingle sets have Jaccard similarity >= threshold are likely joined (LSH is
    probabilistic), and rows sharing a cluster member are joined transitively.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # only for its (b, r) optimum
    bands, rows_per_band = lsh.b, lsh.r
    a, b = (np.asarray(p, dtype=np.uint32) for p in MinHash(num_perm, seed=seed).permutations)
    row_ids: list[Hashable] = []
    band_hashes: list[np.ndarray] = []  # one (rows, bands) uint64 array per chunk
    for chunk in _chunks(items, row_ids):
        hv = _chunk_shingle_hashes(chunk, shingle_bytes)
        band_hashes.append(_band_hashes(hv, a, b, bands, rows_per_band))
    parent = _union_find(_candidate_pairs(band_hashes, bands, len(row_ids)), len(row_ids))
    return _group_keys(row_ids, parent)


def normalize(text: str) -> bytes:
    return " ".join(text.lower().split()).encode("utf-8")


def shingles(text: str, shingle_bytes: int = 5) -> list[bytes]:
    """A row's shingles as near_duplicate_groups sees them (for tests and explanations)."""
    data = normalize(text)
    if len(data) < shingle_bytes:
        return [data]
    return [data[i:i + shingle_bytes] for i in range(len(data) - shingle_bytes + 1)]


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle (a datasketch hashfunc): the bytes packed little-endian
    with their length above bit 40, mixed by splitmix64, top 32 bits."""
    value = int.from_bytes(shingle, "little") | (len(shingle) << 40)
    return int(_splitmix64(np.array([value], dtype=np.uint64))[0] >> np.uint64(32))


def _chunks(items: Iterable[tuple[Hashable, str]], row_ids: list[Hashable]):
    """Normalized texts in chunks of about CHUNK_SHINGLES bytes; appends to row_ids."""
    chunk: list[bytes] = []
    size = 0
    for row_id, text in items:
        row_ids.append(row_id)
        data = normalize(text if isinstance(text, str) else "")
        chunk.append(data)
        size += max(len(data), 1)
        if size >= CHUNK_SHINGLES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _chunk_shingle_hashes(chunk: list[bytes], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(32-bit shingle hashes of every row of the chunk, each row's first index in them);
    equal to [shingle_hash(s) for s in shingles(text, k)] row after row, but vectorized."""
    lengths = np.fromiter((len(d) for d in chunk), dtype=np.int64, count=len(chunk))
    starts = np.cumsum(lengths) - lengths
    counts = np.where(lengths >= k, lengths - k + 1, 1)
    first = np.cumsum(counts) - counts
    row_of = np.repeat(np.arange(len(chunk)), counts)
    pos = starts[row_of] + (np.arange(int(counts.sum())) - first[row_of])
    data = np.frombuffer(b"".join(chunk) + bytes(k), dtype=np.uint8)
    packed = np.full(len(pos), np.uint64(k) << np.uint64(40), dtype=np.uint64)
    for j in range(k):
        packed |= data[pos + j].astype(np.uint64) << np.uint64(8 * j)
    for i in np.flatnonzero(lengths < k):  # a short row: one shingle, the text itself
        packed[first[i]] = int.from_bytes(chunk[i], "little") | (len(chunk[i]) << 40)
    return (_splitmix64(packed) >> np.uint64(32)).astype(np.uint32), first


def _band_hashes(hashes: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray,
                 bands: int, rows_per_band: int) -> np.ndarray:
    """Each row's MinHash signature folded into one 64-bit hash per LSH band."""
    signature = _signatures(*hashes, a, b)
    out = np.empty((len(signature), bands), dtype=np.uint64)
    for band in range(bands):
        folded = np.zeros(len(signature), dtype=np.uint64)
        for col in range(band * rows_per_band, (band + 1) * rows_per_band):
            folded = _splitmix64(folded ^ signature[:, col].astype(np.uint64))
        out[:, band] = folded
    return out


def _signatures(hv: np.ndarray, first: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rows' MinHash signatures, equal to datasketch's
    MinHash(num_perm, seed, hashfunc=shingle_hash).update_batch(shingles).hashvalues.

    Shingles are permuted CHUNK_SHINGLES at a time, so a very long row never needs a
    (its shingles x num_perm) array; a row spanning slices keeps the running minimum."""
    mixed = _fmix32(hv)
    signature = np.full((len(a), len(first)), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    buffer = np.empty((len(a), min(CHUNK_SHINGLES, len(mixed))), dtype=np.uint32)
    for start in range(0, len(mixed), CHUNK_SHINGLES):
        end = min(start + CHUNK_SHINGLES, len(mixed))
        lo = int(np.searchsorted(first, start, side="right")) - 1
        hi = int(np.searchsorted(first, end - 1, side="right"))
        local = np.maximum(first[lo:hi], start) - start  # each row's first shingle here
        # (permutation, shingle) layout: reduceat then runs along contiguous memory, ~4x
        # faster than along axis 0. uint32 arithmetic wraps, as datasketch's affine32 does.
        permuted = buffer[:, :end - start]
        np.multiply(a[:, None], mixed[None, start:end], out=permuted)
        np.add(permuted, b[:, None], out=permuted)
        part = np.minimum.reduceat(permuted, local, axis=1)
        np.minimum(signature[:, lo:hi], part, out=signature[:, lo:hi])
    return signature.T


def _candidate_pairs(band_hashes: list[np.ndarray], bands: int, n: int) -> np.ndarray:
    """Unique (i, j) index pairs, i < j, of rows sharing a band hash, as i * n + j."""
    pairs = []
    for band in range(bands):
        column = np.concatenate([chunk[:, band] for chunk in band_hashes]) if band_hashes \
            else np.zeros(0, dtype=np.uint64)
        order = np.argsort(column, kind="stable")
        same = column[order[1:]] == column[order[:-1]]
        # Neighbours in sorted order chain each bucket's members: enough for union-find.
        left, right = order[:-1][same], order[1:][same]
        pairs.append(np.minimum(left, right) * n + np.maximum(left, right))
    return np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)


def _union_find(pairs: np.ndarray, n: int) -> array:
    """Parent array after joining every pair (path halving; the smaller index wins)."""
    parent = array("q", range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs.tolist():
        root_i, root_j = find(pair // n), find(pair % n)
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    for x in range(n):  # flatten, so parent[x] is x's root
        parent[x] = parent[parent[x]]
    return parent


def _group_keys(row_ids: list[Hashable], parent: array) -> dict[Hashable, Hashable]:
    smallest: dict[int, Hashable] = {}
    for x, root in enumerate(parent):
        if root != x:  # only clusters need a search for their smallest id
            current = smallest.get(root, row_ids[root])
            smallest[root] = min(current, row_ids[x])
    return {row_id: smallest.get(parent[x], row_id) for x, row_id in enumerate(row_ids)}


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast, well-mixing bijection of 64-bit integers."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before the permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))
