"""Bin-packing whole examples into fixed-length rows, and the arrays of a packed row.

The packing is best-fit decreasing over a window of consecutive examples: within the window the
examples are taken longest first (ties: earlier first) and each goes into the open row whose free
space fits it most tightly, else into a new row. A window is bounded in tokens, so memory stays
bounded on a 665M-token mix; only its last rows are left part-filled. The result depends only on
the example lengths, their order and the two sizes: the same inputs give the same rows.

Rows come out ordered by their earliest example and keep their examples in source order, so a
prefix of the packed rows keeps about the composition of the mix's prefix.
"""

from __future__ import annotations

from bisect import bisect_left, insort
import numpy as np

PAD_TOKEN_ID = 199999      # <|endoftext|>, gpt-oss's padding token
IGNORE_INDEX = -100


def best_fit_decreasing(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Indices into `lengths`, grouped into rows of at most `capacity` tokens each."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and int(lengths.max()) > capacity:
        raise ValueError(f"an example of {int(lengths.max())} tokens does not fit a row of {capacity}")
    order = np.lexsort((np.arange(lengths.size), -lengths))   # longest first, then by position
    free: list[tuple[int, int]] = []       # (free tokens, row number), sorted: tightest fit first
    rows: list[list[int]] = []
    for index in order.tolist():
        size = int(lengths[index])
        at = bisect_left(free, (size, -1))
        if at < len(free):
            room, row = free.pop(at)
            rows[row].append(index)
        else:
            room, row = capacity, len(rows)
            rows.append([index])
        room -= size
        if room > 0:
            insort(free, (room, row))
    for members in rows:
        members.sort()
    rows.sort(key=lambda members: members[0])
    return rows


def position_dtype(seq_len: int):
    return np.int16 if seq_len <= np.iinfo(np.int16).max else np.int32


class PackedRows:
    """The columns of packed rows, built from the examples' flat token arrays.

    `tokens`/`labels` are the examples' `input_ids`/`labels` end to end, `offsets` where each
    example starts (len = examples + 1), `rows` the packing (lists of example indices).
    Per row: `input_ids` (padded with <|endoftext|>), `labels` (-100 on padding, so also across
    every boundary since each example opens with its unlabelled prompt), `attention_mask` (the
    segment layout of DistillKit's packing patch: 1, 2, … per example, 0 on padding),
    `position_ids` (restarting at 0 for each example and for the padding run), `completion_mask`
    (1 where labels != -100, as TRL's completion-only loss reads it) and `seq_lengths` (the
    segments' lengths, padding run last, summing to the row length, as TRL's padding-free
    collator reads it)."""

    def __init__(self, tokens: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
                 rows: list[list[int]], seq_len: int):
        members = np.fromiter((i for row in rows for i in row), dtype=np.int64)
        counts = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        lengths = (offsets[1:] - offsets[:-1])[members]
        row_of = np.repeat(np.arange(len(rows)), counts)
        # where each member starts inside its row: a cumulative sum restarted at each row
        ends = np.cumsum(lengths)
        row_start_member = np.concatenate([[0], np.cumsum(counts)[:-1]])
        before_row = np.concatenate([[0], ends])[row_start_member]
        in_row = ends - lengths - np.repeat(before_row, counts)
        dest_start = row_of * seq_len + in_row
        total = int(lengths.sum())
        # flat gather: for token j of member m, source offsets[m] + j, destination dest_start[m] + j
        step = np.arange(total) - np.repeat(ends - lengths, lengths)
        source = np.repeat(offsets[:-1][members], lengths) + step
        dest = np.repeat(dest_start, lengths) + step
        n = len(rows) * seq_len
        self.seq_len = seq_len
        self.source_index, self.dest_index = source, dest   # per token: where it came from, where it went
        self.rows = rows
        self.members = members
        self.member_lengths = lengths
        self.counts = counts
        self.input_ids = np.full(n, PAD_TOKEN_ID, dtype=np.int32)
        self.input_ids[dest] = tokens[source]
        self.labels = np.full(n, IGNORE_INDEX, dtype=np.int32)
        self.labels[dest] = labels[source]
        segment = np.repeat(np.concatenate([np.arange(1, c + 1) for c in counts.tolist()]) if len(rows) else
                            np.zeros(0, dtype=np.int64), lengths)
        self.attention_mask = np.zeros(n, dtype=np.int16)
        self.attention_mask[dest] = segment
        used = np.bincount(row_of, weights=lengths, minlength=len(rows)).astype(np.int64)
        self.used = used
        self.position_ids = np.zeros(n, dtype=position_dtype(seq_len))
        self.position_ids[dest] = step.astype(self.position_ids.dtype)
        pad_start = np.arange(len(rows)) * seq_len + used
        pad_rows = used < seq_len
        for row in np.flatnonzero(pad_rows).tolist():   # the padding run counts from 0 too
            start = int(pad_start[row])
            self.position_ids[start:(row + 1) * seq_len] = np.arange(seq_len - int(used[row]))
        self.completion_mask = (self.labels != IGNORE_INDEX).astype(np.int8)

    def gather(self, per_token: np.ndarray) -> np.ndarray:
        """A per-token array of the examples (e.g. teacher entries, (tokens, width)) laid out as the
        packed rows, zeros on padding."""
        out = np.zeros((len(self.rows) * self.seq_len, *per_token.shape[1:]), dtype=per_token.dtype)
        out[self.dest_index] = per_token[self.source_index]
        return out

    def seq_lengths(self) -> list[list[int]]:
        out, at = [], 0
        for row, count in enumerate(self.counts.tolist()):
            segments = self.member_lengths[at:at + count].tolist()
            at += count
            if int(self.used[row]) < self.seq_len:
                segments.append(self.seq_len - int(self.used[row]))
            out.append(segments)
        return out
