"""MinHash signatures and LSH banding, vectorised with numpy: near-duplicate candidates and
their clusters (used by `neardup.py`; no I/O here).

- **shingles**: the word k-grams of a normalized text (`text.normalize_text`, then split on
  whitespace), the text padded with k - 1 boundary words on each side (so every word is in k
  shingles, and a text of one word has k of them). Each word is
  hashed once (blake2b, 8 bytes; cached), a shingle's hash combines its words' hashes in order.
- **signature**: for permutation i, the high 32 bits of `min over shingles of (a_i * shingle +
  b_i) mod 2^64` (multiply-add-shift hashing, a_i odd; the shingle hashes are already mixed; a_i
  and b_i come from the configured seed). Two texts agree at one position with probability = their Jaccard
  similarity, so the share of equal positions estimates it. uint32: `num_perm * 4` bytes a row.
- **LSH**: the signature cut in `bands` bands of `rows_per_band` positions; two rows whose
  values agree on a whole band are candidates. (bands, rows_per_band) minimise the false
  positive and false negative areas of the S-curve `1 - (1 - s^r)^b` around the threshold,
  weighted 1 : 19 (FALSE_NEGATIVE_WEIGHT). Candidates are verified in two steps: an estimated Jaccard
  of at least threshold - ESTIMATE_MARGIN, then the exact Jaccard of their shingle sets (the
  caller reads those rows again) at least the threshold: the estimate alone (standard error
  0.035 at 128 permutations) lets pairs just under the threshold through and chains them.
- **clusters**: union-find over the verified pairs.

Everything is deterministic: the same texts and seed give the same signatures whatever the
batch size, and the pairs found do not depend on the order of the rows (members of a band
bucket are visited by a caller-given rank, not by position).
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Iterable, Sequence

import numpy as np

from .text import normalize_text

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Bucket members up to this many are paired all with all; a larger bucket (a template shared
# by many rows) is paired as a star around its lowest-ranked member, so that the pairs grow
# linearly (a member similar only to other members and not to the centre can be missed there).
ALL_PAIRS_UP_TO = 32
# Shingles whose 64-bit hashes go through the permutations at once (memory: x 8 x perm chunk).
SHINGLE_CHUNK = 1 << 16
PERM_CHUNK = 32
# Candidates estimated at least threshold - ESTIMATE_MARGIN get the exact comparison: about 3
# standard errors of the estimate at 128 permutations near 0.8 (sqrt(0.8 * 0.2 / 128) = 0.035).
ESTIMATE_MARGIN = 0.1
# Missed pairs weigh 19 times the false candidates in the choice of bands: candidates are
# verified exactly, so a false one costs a comparison, a missed one a duplicate in the mix.
# At 0.8 and 128 permutations: 16 bands of 8, a pair at 0.8 is a candidate with probability
# 0.95, at 0.85 0.994 (equal weights: 9 bands of 13, 0.40 and 0.69).
FALSE_NEGATIVE_WEIGHT = 0.95
_BOUNDARY = 0x5BD1E9955BD1E995   # the padding word's hash


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class WordHasher:
    """text -> uint64 hashes of its word k-grams (see the module doc)."""

    def __init__(self, k: int, cache_size: int = 1 << 21):
        if k < 1:
            raise ValueError("shingle size must be at least 1")
        self.k = k
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def _word(self, word: str) -> int:
        value = self._cache.get(word)
        if value is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()   # memory bound; the values do not depend on the cache
            value = int.from_bytes(blake2b(word.encode(), digest_size=8).digest(), "little")
            self._cache[word] = value
        return value

    def shingles(self, text: str) -> np.ndarray:
        words = normalize_text(text).split()
        if not words:
            return np.zeros(0, np.uint64)
        # k - 1 boundary words on each side: every word is in exactly k shingles, so a word
        # changed at the end of a text weighs as much as one in the middle
        k = self.k
        pad = [_BOUNDARY] * (k - 1)
        hashes = np.fromiter((self._word(w) for w in words), np.uint64, len(words))
        hashes = np.concatenate([np.array(pad, np.uint64), hashes, np.array(pad, np.uint64)])
        combined = hashes[: len(hashes) - k + 1].copy()
        with np.errstate(over="ignore"):
            for j in range(1, k):
                combined = mix64(combined * _GOLDEN ^ hashes[j: len(hashes) - k + 1 + j])
        return combined


def permutation_seeds(num_perm: int, seed: int) -> np.ndarray:
    """(2, num_perm) uint64: the multipliers a (odd) and the offsets b of the permutations."""
    values = np.random.default_rng(seed).integers(0, 2**64, size=(2, num_perm), dtype=np.uint64, endpoint=False)
    values[0] |= np.uint64(1)
    return values


def signatures(shingle_sets: Sequence[np.ndarray], seeds: np.ndarray) -> np.ndarray:
    """(len(shingle_sets), num_perm) uint32 MinHash signatures; every set must be non-empty."""
    multipliers, offsets_b = seeds
    out = np.empty((len(shingle_sets), len(multipliers)), np.uint32)
    start = 0
    while start < len(shingle_sets):
        # a chunk of documents holding about SHINGLE_CHUNK shingles (at least one document)
        stop, count = start, 0
        while stop < len(shingle_sets) and (stop == start or count + len(shingle_sets[stop]) <= SHINGLE_CHUNK):
            count += len(shingle_sets[stop])
            stop += 1
        chunk = shingle_sets[start:stop]
        if any(not len(s) for s in chunk):
            raise ValueError("a document without shingles has no signature")
        flat = np.concatenate(chunk)
        offsets = np.cumsum([0] + [len(s) for s in chunk[:-1]])
        with np.errstate(over="ignore"):
            for p in range(0, len(multipliers), PERM_CHUNK):
                hashed = flat[:, None] * multipliers[None, p:p + PERM_CHUNK] + offsets_b[None, p:p + PERM_CHUNK]
                out[start:stop, p:p + PERM_CHUNK] = np.minimum.reduceat(hashed, offsets, axis=0) >> np.uint64(32)
        start = stop
    return out


def estimated_jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """Share of equal signature positions of rows a[i] and b[i] (a chunk of pairs at a time:
    two gathered signatures per pair would be 1 KB each at 128 permutations)."""
    out = np.zeros(len(a))
    for k in range(0, len(a), chunk):
        out[k:k + chunk] = (sig[a[k:k + chunk]] == sig[b[k:k + chunk]]).mean(axis=1)
    return out


def _s_curve_areas(threshold: float, bands: int, rows: int) -> tuple[float, float]:
    s = np.linspace(0.0, 1.0, 2001)
    p = 1.0 - (1.0 - s ** rows) ** bands
    below = s <= threshold
    false_positive = np.trapezoid(np.where(below, p, 0.0), s)
    false_negative = np.trapezoid(np.where(~below, 1.0 - p, 0.0), s)
    return float(false_positive), float(false_negative)


def lsh_params(threshold: float, num_perm: int, false_negative_weight: float = FALSE_NEGATIVE_WEIGHT) -> tuple[int, int]:
    """(bands, rows_per_band), bands * rows_per_band <= num_perm, minimising the weighted false
    positive and false negative areas around the threshold (the first of equals, bands
    ascending)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), not {threshold}")
    best, best_error = (1, num_perm), None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive, false_negative = _s_curve_areas(threshold, bands, rows)
            error = (1 - false_negative_weight) * false_positive + false_negative_weight * false_negative
            if best_error is None or error < best_error - 1e-12:
                best, best_error = (bands, rows), error
    return best


@dataclass
class Pairs:
    """Candidate pairs (i < j, row indices) and the verified ones with their estimates."""

    candidates: int
    left: np.ndarray
    right: np.ndarray
    jaccard: np.ndarray


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one hash per band of each signature."""
    keys = np.empty((len(sig), bands), np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            h = np.full(len(sig), np.uint64(b + 1) * _GOLDEN, np.uint64)
            for r in range(rows):
                h = mix64(h ^ sig[:, b * rows + r].astype(np.uint64))
            keys[:, b] = h
    return keys


def candidate_pairs(sig: np.ndarray, bands: int, rows: int, rank: np.ndarray,
                    problem: np.ndarray | None = None) -> np.ndarray:
    """Unique (i, j) pairs, i < j, sharing at least one band: (m, 2) int64, sorted. Rows with the
    same `problem` value are never a pair. Pairs are deduplicated band by band, so memory
    follows the distinct pairs, not bands x pairs."""
    found = np.zeros((0, 2), np.int64)
    keys = band_keys(sig, bands, rows)
    for b in range(bands):
        # members of a bucket in rank order: the star centre is the lowest rank
        order = np.lexsort((rank, keys[:, b]))
        sorted_keys = keys[order, b]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(order)]]))
        band = []
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            members = order[start:start + size]
            if size <= ALL_PAIRS_UP_TO:
                i, j = np.triu_indices(size, 1)
                band.append(np.stack([members[i], members[j]], axis=1))
            else:
                band.append(np.stack([np.full(size - 1, members[0]), members[1:]], axis=1))
        if band:
            pairs = np.sort(np.concatenate(band).astype(np.int64), axis=1)
            if problem is not None:
                pairs = pairs[problem[pairs[:, 0]] != problem[pairs[:, 1]]]
            found = np.unique(np.concatenate([found, pairs]), axis=0)
    return found


def likely_pairs(sig: np.ndarray, threshold: float, bands: int, rows: int, rank: np.ndarray,
                 problem: np.ndarray | None = None, margin: float = ESTIMATE_MARGIN) -> Pairs:
    """The LSH candidates whose estimated Jaccard is at least threshold - margin: those worth
    the exact comparison (a pair at the threshold is estimated below it half of the time)."""
    pairs = candidate_pairs(sig, bands, rows, rank, problem)
    estimate = estimated_jaccard(sig, pairs[:, 0], pairs[:, 1])
    keep = estimate >= threshold - margin
    return Pairs(len(pairs), pairs[keep, 0], pairs[keep, 1], estimate[keep])


def exact_jaccard(sets: dict[int, np.ndarray], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """|A & B| / |A | B| of the rows' shingle sets (sorted unique uint64 arrays)."""
    out = np.empty(len(left))
    for k, (a, b) in enumerate(zip(left.tolist(), right.tolist())):
        shared = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        out[k] = shared / (len(sets[a]) + len(sets[b]) - shared)
    return out


def clusters(left: Iterable[int], right: Iterable[int]) -> list[list[int]]:
    """Connected components of the pairs' graph (union-find), each sorted, listed by their
    smallest member."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:          # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(left, right):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted(sorted(members) for members in groups.values())
