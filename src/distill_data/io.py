"""Reading raw sources with errors that name the file, the row or column, and the problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


class SourceError(RuntimeError):
    """A raw input file cannot be used as it is; the message says which and why."""


def describe(path: str | Path) -> str:
    """The path as an error names it: a symlink (a SYNTH subset link) with the raw file behind it."""
    if os.path.islink(path):
        return f"{path} (a link to {os.path.realpath(path)})"
    return str(path)


def open_parquet(path: str | Path, columns: Sequence[str], buffer_size: int = 0) -> pq.ParquetFile:
    """Open a parquet file and check the columns a builder needs are there and are text-like."""
    try:
        handle = pq.ParquetFile(path, buffer_size=buffer_size)
    except FileNotFoundError:
        raise SourceError(f"{describe(path)}: file not found") from None
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{describe(path)}: not a readable parquet file ({exc})") from None
    names = handle.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise SourceError(f"{describe(path)}: missing column(s) {', '.join(missing)}; the file has {', '.join(names)}")
    return handle


def parquet_rows(path: str | Path) -> int:
    return open_parquet(path, []).metadata.num_rows


def iter_parquet_columns(path: str | Path, columns: Sequence[str], batch_size: int,
                         string_columns: Sequence[str] = ()) -> Iterator[dict[str, list]]:
    """Yield batches as {column: python list}; `string_columns` are cast to string (a clear
    error names the column if that is impossible)."""
    for batch in iter_parquet_batches(path, columns, batch_size, string_columns):
        yield {name: batch.column(name).to_pylist() for name in columns}


# Read column chunks in pieces of this size rather than whole: a raw shard is one row group of
# hundreds of MB, which would otherwise be held in memory at once.
READ_BUFFER = 1 << 20


def iter_parquet_batches(path: str | Path, columns: Sequence[str], batch_size: int,
                         string_columns: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    """Yield Arrow record batches of `columns`; `string_columns` must be text-like (a clear
    error names the column otherwise)."""
    handle = open_parquet(path, columns, buffer_size=READ_BUFFER)
    check_string_columns(path, handle.schema_arrow, string_columns)
    try:
        yield from handle.iter_batches(batch_size=batch_size, columns=list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{describe(path)}: unreadable data ({exc})") from None


def check_string_columns(path: str | Path, schema: pa.Schema, string_columns: Sequence[str]) -> None:
    """Each of `string_columns` is text-like (a clear error names the column otherwise)."""
    for name in string_columns:
        kind = schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
                or pa.types.is_dictionary(kind)):
            raise SourceError(f"{describe(path)}: column {name} has type {kind}, expected string")


def plain_column(column: pa.Array) -> pa.Array:
    """A dictionary-encoded column decoded (its Python values are the same either way)."""
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


# A value `clean_text` changes: it holds a NUL, or starts or ends with a character Python's
# str.strip() removes (exactly those for which str.isspace() holds), in RE2 syntax.
_SPACE = "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x3001)) if c.isspace())
NEEDS_CLEANING = f"\\x00|^[{_SPACE}]|[{_SPACE}]$"


def clean_strings(column: pa.Array) -> list[str]:
    """`clean_text` of every value of a text column, as a Python list: the values that need it
    are found on the Arrow column, and only those are cleaned in Python (null gives "")."""
    from .text import clean_text

    column = plain_column(column)
    if pa.types.is_null(column.type):
        return [""] * len(column)
    values = column.to_pylist()
    if column.null_count:
        for i in pc.is_null(column).to_numpy(zero_copy_only=False).nonzero()[0].tolist():
            values[i] = ""
    dirty = pc.fill_null(pc.match_substring_regex(column, NEEDS_CLEANING), False)
    for i in dirty.to_numpy(zero_copy_only=False).nonzero()[0].tolist():
        values[i] = clean_text(values[i])
    return values


def category_codes(column: pa.Array) -> tuple[list, list]:
    """A text column of few distinct values (a category): (per row an index into the values,
    the values as `clean_text(v) or None`), each distinct value cleaned once; null rows get
    the last value, None."""
    from .text import clean_text

    if pa.types.is_null(column.type):
        return [0] * len(column), [None]
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    values = [clean_text(v) or None for v in encoded.dictionary.to_pylist()]
    values.append(None)
    return pc.fill_null(encoded.indices, len(values) - 1).to_pylist(), values
