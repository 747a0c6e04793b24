"""The packing of whole examples into fixed-length rows (handoff/packing.py), on lengths shaped
like the mix's, without Snakemake."""

from __future__ import annotations

import numpy as np
import pytest

from distill_data.handoff.packing import IGNORE_INDEX, PAD_TOKEN_ID, PackedRows, best_fit_decreasing


def mix_like_lengths(n: int, seed: int) -> np.ndarray:
    """Lengths like the real mix's: many short chat/code rows, a long tail of math reasoning."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mean=7.0, sigma=0.9, size=n).astype(np.int64), 90, 8192)


def test_every_example_in_exactly_one_row_and_no_row_overfull():
    lengths = mix_like_lengths(20_000, seed=1)
    rows = best_fit_decreasing(lengths, 8192)
    members = sorted(i for row in rows for i in row)
    assert members == list(range(lengths.size))
    assert max(int(lengths[row].sum()) for row in rows) <= 8192
    assert all(row == sorted(row) for row in rows)                       # source order inside a row
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)    # rows by their first example
    filled = lengths.sum() / (len(rows) * 8192)
    assert filled >= 0.97, filled


def test_best_fit_is_deterministic():
    lengths = mix_like_lengths(5_000, seed=2)
    assert best_fit_decreasing(lengths, 8192) == best_fit_decreasing(lengths.copy(), 8192)


def test_an_example_longer_than_the_row_is_refused():
    with pytest.raises(ValueError, match="8193 tokens does not fit a row of 8192"):
        best_fit_decreasing(np.array([10, 8193]), 8192)


def test_packed_arrays_keep_each_example_whole_with_its_labels_and_segments():
    rng = np.random.default_rng(3)
    lengths = np.array([7, 3, 9, 4, 2])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.integers(0, 1000, offsets[-1]).astype(np.int32)
    labels = np.where(rng.random(offsets[-1]) < 0.5, IGNORE_INDEX, tokens).astype(np.int32)
    rows = best_fit_decreasing(lengths, 12)
    packed = PackedRows(tokens, labels, offsets, rows, 12)
    ids = packed.input_ids.reshape(len(rows), 12)
    segs = packed.attention_mask.reshape(len(rows), 12)
    pos = packed.position_ids.reshape(len(rows), 12)
    labs = packed.labels.reshape(len(rows), 12)
    for r, members in enumerate(rows):
        at = 0
        for k, m in enumerate(members, 1):
            n = lengths[m]
            assert ids[r, at:at + n].tolist() == tokens[offsets[m]:offsets[m + 1]].tolist()
            assert labs[r, at:at + n].tolist() == labels[offsets[m]:offsets[m + 1]].tolist()
            assert segs[r, at:at + n].tolist() == [k] * n
            assert pos[r, at:at + n].tolist() == list(range(n))
            at += n
        assert ids[r, at:].tolist() == [PAD_TOKEN_ID] * (12 - at)
        assert labs[r, at:].tolist() == [IGNORE_INDEX] * (12 - at)
        assert segs[r, at:].tolist() == [0] * (12 - at)
        assert pos[r, at:].tolist() == list(range(12 - at))
        assert sum(packed.seq_lengths()[r]) == 12
    assert (packed.completion_mask == (packed.labels != IGNORE_INDEX)).all()
