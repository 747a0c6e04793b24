"""Normalised word n-grams as 64-bit hashes, computed a batch of texts at a time.

Normalisation (``normalise``): Unicode NFKC, lower-case, then every run of characters that are
not letters, digits or combining marks (``[^\\p{L}\\p{N}\\p{M}]``: whitespace, punctuation,
symbols, underscores) becomes one word separator. "Don't  STOP_now!" is the words
``don t stop now``. A text with fewer than `n` words has no n-gram.

Hashing (``ngram_hashes``): the distinct words of a batch are hashed once each in Python
(blake2b, 8 bytes, little-endian → uint64); an n-gram's hash is a polynomial of its word hashes
with uint64 wraparound, computed with numpy over the flattened words of the whole batch. N-grams
that would cross from one text into the next are never formed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_NGRAM = 8
SEPARATORS = r"[^\p{L}\p{N}\p{M}]+"
# An odd 64-bit multiplier (2^64 / golden ratio): the polynomial h = h * P + w (mod 2^64).
_P = np.uint64(0x9E3779B97F4A7C15)


def normalise(texts: pa.Array | Sequence[str | None]) -> pa.Array:
    """NFKC, lower-case, every separator run → one space (nulls become empty texts)."""
    texts = pa.array(texts, pa.large_string()) if not isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    return pc.replace_substring_regex(pc.utf8_lower(pc.utf8_normalize(texts, "NFKC")), SEPARATORS, " ")


@dataclass
class Words:
    """The words of a batch of texts, flattened: text i's words are `codes[offsets[i]:offsets[i+1]]`,
    `codes` indexing `dictionary` (the batch's distinct words) and `word_hash`."""

    codes: np.ndarray        # int64, per word
    offsets: np.ndarray      # int64, len(texts) + 1
    dictionary: pa.Array     # distinct words
    word_hash: np.ndarray    # uint64, per distinct word

    def text(self, start: int, n: int) -> str:
        """The n words starting at flattened position `start`, joined by spaces."""
        return " ".join(self.dictionary[int(c)].as_py() for c in self.codes[start:start + n])


def words(texts: pa.Array | Sequence[str | None]) -> Words:
    """Split normalised texts into words and hash each distinct word once."""
    norm = normalise(texts)
    lists = pc.split_pattern(norm, " ")
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = pc.not_equal(flat, "")                          # leading / trailing separators
    flat = flat.filter(keep)
    parents = parents[keep.to_numpy(zero_copy_only=False)]
    offsets = np.zeros(len(norm) + 1, np.int64)
    np.cumsum(np.bincount(parents, minlength=len(norm)), out=offsets[1:])
    encoded = pc.dictionary_encode(flat)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    word_hash = np.fromiter((word_digest(w) for w in dictionary.to_pylist()), np.uint64, len(dictionary))
    return Words(codes, offsets, dictionary, word_hash)


def word_digest(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def ngram_hashes(batch: Words, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every n-gram of every text: (hash uint64, text index int64, start position int64 in the
    flattened words). Texts with fewer than n words give none; no n-gram crosses two texts."""
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    lengths = np.diff(batch.offsets)
    counts = np.maximum(lengths - (n - 1), 0)
    text = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    # start = the text's first word + the n-gram's rank within the text
    first = np.cumsum(counts) - counts
    start = batch.offsets[:-1][text] + (np.arange(len(text), dtype=np.int64) - first[text])
    values = batch.word_hash[batch.codes]
    h = np.zeros(len(start), np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _P + values[start + j]
    return h, text, start


def text_ngram_hashes(texts: pa.Array | Sequence[str | None], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Words]:
    """``words`` then ``ngram_hashes``: also returns the words, to show a matching n-gram."""
    batch = words(texts)
    return (*ngram_hashes(batch, n), batch)
