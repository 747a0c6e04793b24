"""A cheap content fingerprint of a raw input file, for Snakemake params.

Raw shards are hundreds of MB each (hundreds of GB in all), so hashing them whole on every
`snakemake` invocation is out of the question, and their modification time says nothing about
their content after a copy, an `rsync` without `-t` or a `touch`. The fingerprint reads at most
a few MiB per file: the size, the first MiB, the last MiB, 16 evenly spaced 64 KiB samples in
between and, for parquet, the whole footer (row-group offsets, sizes and column statistics, which
change whenever the data does). Passed as a rule param, it makes Snakemake's `params` rerun
trigger catch a replaced file even when its modification time is ignored (see
profiles/slurm/README.md, "Rebuilds").

What it does not see: an edit in place that keeps the size and touches none of the sampled
bytes (for parquet, that would also have to leave the footer unchanged). Force the rebuild of
such a file's jobs with `--forcerun RULE`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

EDGE = 1 << 20          # bytes read at each end
SAMPLE = 64 << 10       # bytes per sample in between
SAMPLES = 16
PARQUET_MAGIC = b"PAR1"


def _parquet_footer(handle, size: int) -> bytes:
    """The footer (metadata + its length + magic) of a parquet file, or b"" if it is not one."""
    if size < 12:
        return b""
    handle.seek(size - 8)
    tail = handle.read(8)
    if tail[4:] != PARQUET_MAGIC:
        return b""
    length = int.from_bytes(tail[:4], "little")
    if length + 8 > size - 4:
        return b""
    handle.seek(size - 8 - length)
    return handle.read(length + 8)


def raw_fingerprint(path: str | os.PathLike) -> str:
    """'<size>:<sha256 prefix>' of the sampled content of `path` (symlinks are followed).
    The same bytes give the same fingerprint wherever the file lives and whatever its mtime."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"raw-fingerprint-v1:{size}:".encode())
    with open(path, "rb") as handle:
        if size <= 2 * EDGE + SAMPLES * SAMPLE:
            digest.update(handle.read())
        else:
            digest.update(handle.read(EDGE))
            span = size - 2 * EDGE - SAMPLE
            for i in range(SAMPLES):
                handle.seek(EDGE + span * (i + 1) // (SAMPLES + 1))
                digest.update(handle.read(SAMPLE))
            handle.seek(size - EDGE)
            digest.update(handle.read(EDGE))
            digest.update(_parquet_footer(handle, size))
    return f"{size}:{digest.hexdigest()[:24]}"


def raw_fingerprints(paths) -> list[str]:
    """raw_fingerprint of each path, in order (for a rule whose raw input is a list)."""
    return [raw_fingerprint(p) for p in paths]
