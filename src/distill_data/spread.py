"""The budgeted builders' read order: `head` or `spread`, and where the kept rows came from.

A budget takes rows in a fixed order until its token total is reached. With `head` that order
is the source's own (files in order, rows in file order), so the kept part is the head of the
source. With `spread` the source is cut into *blocks* of consecutive rows (a slice of parquet
rows, ~1 MiB of JSON lines, a message tree) and the blocks are visited in a seeded order,
rows within a block in file order: the first blocks of that order are spread over the whole
source, so the budget's share is too. The order is

    blocks sorted by (u(key, seed, "spread"), key)

where key names the block (`file:block`, or the tree id): the same for any batch size, thread
count or machine. `PositionHistogram` records, for the manifest, where in the source the rows
read and written sit (equal bins over the source's extent, files in order).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .hashing import unit_hash
from .io import SourceError, check_string_columns, describe, open_parquet, READ_BUFFER

ORDERS = ("head", "spread")
SALT = "spread"
HISTOGRAM_BINS = 20
# The line index reads the file in pieces of this size (its memory, with 8 bytes per line of
# one piece): no JSON is parsed.
INDEX_CHUNK_BYTES = 64 << 20
DEFAULT_BLOCK_BYTES = 1 << 20
DEFAULT_BLOCK_ROWS = 1000


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def seeded_order(keys: Sequence[str], seed: int) -> list[int]:
    """The indexes of `keys` sorted by (u(key, seed, "spread"), key): a seeded permutation."""
    return sorted(range(len(keys)), key=lambda i: (unit_hash(keys[i], seed, SALT), keys[i]))


# --- JSON lines: blocks of ~block_bytes -------------------------------------------------------

class LineBlock(NamedTuple):
    """Consecutive lines of a file: those starting in one `block_bytes` window."""

    start: int        # byte offset of its first line
    end: int          # byte offset just after its last line
    first_line: int   # number of its first line (1-based)
    lines: int


def line_blocks(path: str | os.PathLike, block_bytes: int,
                chunk_bytes: int = INDEX_CHUNK_BYTES) -> tuple[list[LineBlock], int]:
    """One pass over the file's bytes (numpy finds the b"\\n"): the non-empty blocks, each the
    lines whose first byte lies in [k * block_bytes, (k + 1) * block_bytes), and the number of
    lines (a last line without a newline counts, as when the file is iterated). Memory: one
    chunk, its line starts, and one tuple per block."""
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be at least 1, got {block_bytes}")
    size = os.path.getsize(path)
    firsts: list[tuple[int, int]] = []   # (start byte, lines before it) of each block
    lines, previous, base = 0, -1, 0
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    with handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            starts = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64) + (base + 1)
            starts = starts[starts < size]
            if base == 0:
                starts = np.concatenate((np.zeros(1, dtype=np.int64), starts))
            if len(starts):
                blocks = starts // block_bytes
                new = np.flatnonzero(np.diff(blocks, prepend=previous) != 0)
                firsts += [(int(starts[j]), lines + int(j)) for j in new]
                previous = int(blocks[-1])
                lines += len(starts)
            base += len(chunk)
    blocks = []
    for k, (start, before) in enumerate(firsts):
        end, after = firsts[k + 1] if k + 1 < len(firsts) else (size, lines)
        blocks.append(LineBlock(start, end, before + 1, after - before))
    return blocks, lines


def block_lines(handle, block: LineBlock) -> Iterator[tuple[int, bytes, int]]:
    """(line number, raw line, byte offset just after it) of each line of the block."""
    handle.seek(block.start)
    data = handle.read(block.end - block.start)
    offset = block.start
    for j, raw in enumerate(io.BytesIO(data)):   # splits at b"\n" only, as file iteration does
        offset += len(raw)
        yield block.first_line + j, raw, offset


# --- parquet: slices of block_rows rows -------------------------------------------------------

class ParquetSlices:
    """Rows [start, stop) of one parquet file, read through the row groups that hold them (a
    slice costs the decoding of its row groups' columns); the last row groups read are kept, so
    consecutive slices of one group decode it once."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], string_columns: Sequence[str] = ()):
        self.path, self.columns = Path(path), list(columns)
        handle = open_parquet(path, columns, buffer_size=READ_BUFFER)
        check_string_columns(path, handle.schema_arrow, string_columns)
        sizes = [handle.metadata.row_group(i).num_rows for i in range(handle.metadata.num_row_groups)]
        self.group_starts = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))).tolist()
        self.rows = self.group_starts[-1]
        self._cached: tuple[tuple[int, ...], pa.Table] | None = None

    def forget(self) -> None:
        """Drop the row groups kept (another file is being read)."""
        self._cached = None

    def read(self, start: int, stop: int) -> pa.Table:
        groups = tuple(i for i in range(len(self.group_starts) - 1)
                       if self.group_starts[i] < stop and self.group_starts[i + 1] > start)
        if not groups:
            return pa.table({})
        if self._cached is None or self._cached[0] != groups:
            try:
                handle = pq.ParquetFile(self.path, buffer_size=READ_BUFFER)
                table = handle.read_row_groups(list(groups), columns=self.columns)
            except (pa.ArrowException, OSError) as exc:
                raise SourceError(f"{describe(self.path)}: unreadable data ({exc})") from None
            self._cached = (groups, table)
        first = self.group_starts[groups[0]]
        return self._cached[1].slice(start - first, stop - start)


def row_slices(rows: int, block_rows: int) -> list[tuple[int, int]]:
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    return [(a, min(a + block_rows, rows)) for a in range(0, rows, block_rows)]


def record_batches(table: pa.Table, batch_size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, batch) pieces of at most batch_size rows, each a single Arrow record batch."""
    for a in range(0, table.num_rows, batch_size):
        piece = table.slice(a, batch_size).combine_chunks()
        batches = piece.to_batches()
        if batches:
            yield a, batches[0]


# --- the manifest's histogram -----------------------------------------------------------------

class PositionHistogram:
    """Rows read and written per equal bin of the source's extent (files in order, each
    position offset by the extents of the files before it)."""

    def __init__(self, unit: str, extents: Sequence[int], read_order: dict, bins: int = HISTOGRAM_BINS):
        self.unit, self.extents, self.read_order, self.bins = unit, list(extents), read_order, bins
        self.offsets = np.concatenate(([0], np.cumsum(self.extents, dtype=np.int64))).tolist()
        self.total = self.offsets[-1]
        self.read = [0] * bins
        self.written = [0] * bins
        self.first: int | None = None
        self.last: int | None = None

    def bin_of(self, file: int, position: int) -> int:
        where = self.offsets[file] + position
        return min(self.bins - 1, max(0, where * self.bins // self.total)) if self.total else 0

    def add(self, file: int, position: int, written: bool) -> None:
        b = self.bin_of(file, position)
        self.read[b] += 1
        if written:
            self.written[b] += 1
            where = self.offsets[file] + position
            self.first = where if self.first is None else min(self.first, where)
            self.last = where if self.last is None else max(self.last, where)

    def report(self) -> dict:
        return {
            **self.read_order,
            "unit": self.unit,
            "extent": self.total,
            "bins": self.bins,
            "rows_read": self.read,
            "rows_written": self.written,
            "first_written": self.first,
            "last_written": self.last,
            "meaning": f"the source's {self.unit}, files in input order, cut into {self.bins} equal bins; "
                       "per bin the rows read and written (a row's position: its row in the file, or for "
                       "JSON lines the offset of its last byte)",
        }
