"""The folder layout of `DatasetDict.save_to_disk`, written from streamed Arrow tables.

`datasets.load_from_disk` (and so DistillKit's `disk_path`) opens it: `dataset_dict.json`
naming the splits and, per split, Arrow IPC stream files `data-0000i-of-0000n.arrow` with
`state.json` listing them and `dataset_info.json`. The features are left to be read from the
Arrow schema (an empty `dataset_info.json`), which every `datasets` version does the same way.
Written without `datasets` itself, a table at a time, so memory stays bounded and the bytes
depend only on the rows: the fingerprint is a hash of the shards' contents, not a random one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa

# `save_to_disk`'s default shard size (500 MB of Arrow data).
MAX_SHARD_BYTES = 500 << 20


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class SplitWriter:
    """One split's shards: tables in, `data-*.arrow` files of at most ~`max_shard_bytes` out."""

    def __init__(self, directory: Path, split: str, schema: pa.Schema, max_shard_bytes: int = MAX_SHARD_BYTES):
        self.directory = Path(directory) / split
        self.directory.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.schema = schema
        self.max_shard_bytes = max_shard_bytes
        self.shards: list[dict] = []
        self._sink = None
        self._writer = None
        self._shard_bytes = 0
        self._shard_rows = 0

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)
        for batch in table.to_batches():
            if self._writer is None:
                self._open()
            self._writer.write_batch(batch)
            self._shard_bytes += batch.nbytes
            self._shard_rows += batch.num_rows
            if self._shard_bytes >= self.max_shard_bytes:
                self._close_shard()

    def _open(self) -> None:
        path = self.directory / f".shard-{len(self.shards):05d}.arrow"
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._shard_bytes = self._shard_rows = 0

    def _close_shard(self) -> None:
        self._writer.close()
        self._sink.close()
        self.shards.append({"temp": self.directory / f".shard-{len(self.shards):05d}.arrow", "rows": self._shard_rows})
        self._writer = self._sink = None

    def close(self) -> list[dict]:
        """Name the shards `data-i-of-n`, write state.json; the files as a manifest lists them."""
        if self._writer is not None:
            self._close_shard()
        if not self.shards:   # an empty split still needs one (empty) file for load_from_disk
            self._open()
            self._close_shard()
        count = len(self.shards)
        files, digest = [], hashlib.sha256()
        for i, shard in enumerate(self.shards):
            name = f"data-{i:05d}-of-{count:05d}.arrow"
            final = self.directory / name
            os.replace(shard["temp"], final)
            sha = _sha256_file(final)
            digest.update(sha.encode())
            files.append({"path": f"{self.split}/{name}", "rows": shard["rows"], "bytes": final.stat().st_size,
                          "sha256": sha})
        _write_json(self.directory / "state.json", {
            "_data_files": [{"filename": Path(f["path"]).name} for f in files],
            "_fingerprint": digest.hexdigest()[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": self.split,
        })
        _write_json(self.directory / "dataset_info.json", {})
        return files


def write_dataset_dict(directory: Path, splits) -> None:
    _write_json(Path(directory) / "dataset_dict.json", {"splits": list(splits)})


def _sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
