"""Reading a published dataset (a builder's, the mix, or a packed handoff) for a handoff.

Files are read in the order the manifest lists them, each checked against the manifest's size
and sha256 before use: a handoff made from a damaged or half-copied dataset stops and names the
file instead of passing the damage on to training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..schema import SPLITS


class HandoffError(RuntimeError):
    """A handoff cannot be made from this input; the message names the file and the problem."""


@dataclass(frozen=True)
class DatasetFile:
    path: Path
    rows: int
    bytes: int
    sha256: str


class PublishedDataset:
    """A dataset folder with manifest.json listing `files` per split (CONTRACT.md)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.manifest_path = self.directory / "manifest.json"
        try:
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            raise HandoffError(f"{self.manifest_path}: not found; build the dataset first") from None
        try:
            self.manifest = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HandoffError(f"{self.manifest_path}: not valid JSON ({exc})") from None
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        self.name = self.manifest.get("dataset") or self.directory.name
        files = self.manifest.get("files")
        if not isinstance(files, dict) or any(split not in files for split in SPLITS):
            raise HandoffError(f"{self.manifest_path}: no `files` listing for {' and '.join(SPLITS)}")
        try:
            self.files = {split: listed_files(self.directory, self.manifest, split) for split in SPLITS}
        except (KeyError, TypeError, ValueError):
            raise HandoffError(f"{self.manifest_path}: a files entry lacks path, rows, bytes or sha256") from None

    def rows(self, split: str) -> int:
        return sum(f.rows for f in self.files[split])

    def schema(self) -> pa.Schema:
        for split in SPLITS:
            if self.files[split]:
                return pq.read_schema(self.files[split][0].path)
        raise HandoffError(f"{self.manifest_path}: lists no files")

    def tables(self, split: str, columns: Sequence[str] | None = None) -> Iterator[tuple[DatasetFile, pa.Table]]:
        """Each file of the split as a table, in manifest order, after checking its bytes."""
        for entry in self.files[split]:
            yield entry, read_checked(entry, columns)


def checked_bytes(entry: DatasetFile) -> bytes:
    """The file's bytes, if they are the ones its manifest lists."""
    try:
        data = entry.path.read_bytes()
    except FileNotFoundError:
        raise HandoffError(f"{entry.path}: listed in the manifest but missing; rebuild it") from None
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise HandoffError(f"{entry.path}: {len(data):,} bytes whose sha256 differs from the manifest's "
                           f"({entry.bytes:,} bytes, {entry.sha256[:12]}…): the file was altered; rebuild it")
    return data


def listed_files(directory: Path, manifest: dict, split: str) -> list[DatasetFile]:
    return [DatasetFile(Path(directory) / f["path"], int(f["rows"]), int(f["bytes"]), str(f["sha256"]))
            for f in manifest["files"][split]]


def flat_list(column) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values end to end and each row's length (a slice's offset honoured)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return pc.list_flatten(array).to_numpy(zero_copy_only=False), np.diff(array.offsets.to_numpy()).astype(np.int64)


def read_checked(entry: DatasetFile, columns: Sequence[str] | None = None) -> pa.Table:
    data = checked_bytes(entry)
    try:
        table = pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)
    except (pa.ArrowException, OSError) as exc:
        raise HandoffError(f"{entry.path}: unreadable parquet ({exc})") from None
    if table.num_rows != entry.rows:
        raise HandoffError(f"{entry.path}: {table.num_rows} rows, the manifest says {entry.rows}")
    return table
