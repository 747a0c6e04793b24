"""Capture: one part file of a published dataset through the teacher, in DistillKit's format.

The output part keeps every column of the source part (`id`, `source`, `input_ids`, `labels`,
`attention_mask`, `spans`: the student's loss mask stays ours and rows join back by `id`) and adds
`compressed_logprobs` and `bytepacked_indices` (format.py): one entry per position but the last.

Resumable: rows are captured in chunks of `chunk_rows`, each written atomically to a work folder
with the settings it was made under; a killed job redoes only its unfinished chunk, and the part
file is assembled from the chunks only when all are there, so it is byte-identical to an
uninterrupted run. Batches are cut inside a chunk from the row lengths alone (backends.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..handoff.source import HandoffError, PublishedDataset, flat_list, read_checked
from ..progress import Progress
from ..writer import write_json, write_parquet
from . import format as fmt
from .backends import TeacherError, batches_by_tokens

log = logging.getLogger("distill_data")

SETTINGS_NAME = "settings.json"


def source_entry(source: PublishedDataset, split: str, part: str):
    for entry in source.files[split]:
        if entry.path.name == part:
            return entry
    raise TeacherError(f"{source.manifest_path}: lists no {split} file {part}")


def capture_rows(table: pa.Table, backend, config: fmt.CompressionConfig, batch_tokens: int,
                 progress: Progress | None = None) -> pa.Table:
    """The table with the two entry columns added (rows in the same order)."""
    tokens, lengths = flat_list(table.column("input_ids"))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    ids = table.column("id").to_pylist()
    logprob_rows, index_rows = [], []
    for batch in batches_by_tokens(lengths.tolist(), batch_tokens):
        rows = [tokens[starts[i]:starts[i + 1]] for i in batch]
        for i, row, (indices, values) in zip(batch, rows, backend.top_k(rows)):
            if indices.shape != (max(len(row) - 1, 0), config.k):
                raise TeacherError(f"row {ids[i]}: the teacher gave {indices.shape} top-k entries for {len(row)} ids")
            if indices.size and int(indices.max()) >= config.d:
                raise TeacherError(f"row {ids[i]}: token index {int(indices.max())} >= the format's d={config.d}")
            compressed, packed = fmt.encode(indices, values, config)
            logprob_rows.append(compressed.reshape(-1, config.logprob_bytes))
            index_rows.append(packed.reshape(-1, config.index_bytes))
        if progress is not None:
            progress.update(rows=len(batch), tokens=int(sum(lengths[i] for i in batch)))
    counts = np.maximum(lengths - 1, 0)
    return (table.append_column("compressed_logprobs", fmt.entries_column(_stacked(logprob_rows, config.logprob_bytes), counts))
                 .append_column("bytepacked_indices", fmt.entries_column(_stacked(index_rows, config.index_bytes), counts)))


def _stacked(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, width), dtype=np.uint8)


def _settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _prepare_work(work_dir: Path, settings: dict) -> None:
    """Keep finished chunks only if they were made under the same settings and source bytes."""
    marker = work_dir / SETTINGS_NAME
    if work_dir.exists():
        try:
            same = json.loads(marker.read_text(encoding="utf-8")).get("key") == _settings_key(settings)
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            log.info("%s: chunks from other settings removed", work_dir)
            shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"key": _settings_key(settings), "settings": settings})


def _finished_chunk(path: Path, rows: int) -> pa.Table | None:
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError):
        return None
    return table if table.num_rows == rows else None


def capture_part(source_dir: Path, split: str, part: str, output: Path, work_dir: Path, backend,
                 config: fmt.CompressionConfig, *, settings: dict, batch_tokens: int, chunk_rows: int,
                 max_rows: int | None = None, summary: Path | None = None) -> dict:
    """Write `output` (the part with its logits) and return its summary (also to `summary`)."""
    started = time.perf_counter()
    if chunk_rows < 1 or batch_tokens < 1:
        raise TeacherError("chunk_rows and batch_tokens must be at least 1")
    try:
        source = PublishedDataset(source_dir)
        entry = source_entry(source, split, part)
        table = read_checked(entry)
    except HandoffError as exc:
        raise TeacherError(str(exc)) from None
    if "input_ids" not in table.column_names or "id" not in table.column_names:
        raise TeacherError(f"{entry.path}: no `id` and `input_ids` columns")
    if max_rows is not None:
        table = table.slice(0, max_rows)
    settings = dict(settings, source_sha256=entry.sha256, rows=table.num_rows, chunk_rows=chunk_rows,
                    batch_tokens=batch_tokens, compression=config.to_dict())
    _prepare_work(work_dir, settings)
    _, lengths = flat_list(table.column("input_ids"))
    progress = Progress(f"teacher {source.name} {split}/{part}", total_rows=table.num_rows,
                        total_tokens=int(lengths.sum()))
    chunks, resumed, captured_positions, capture_seconds = [], 0, 0, 0.0
    for number, start in enumerate(range(0, table.num_rows, chunk_rows)):
        rows = table.slice(start, chunk_rows)
        path = work_dir / f"chunk-{number:06d}.parquet"
        done = _finished_chunk(path, rows.num_rows)
        if done is None:
            began = time.perf_counter()
            done = capture_rows(rows, backend, config, batch_tokens, progress)
            capture_seconds += time.perf_counter() - began
            captured_positions += int(np.maximum(lengths[start:start + rows.num_rows] - 1, 0).sum())
            write_parquet(done, path)
            done = pq.read_table(path)   # every chunk as read back, so their schemas agree
        else:
            resumed += 1
            progress.update(rows=rows.num_rows, tokens=int(lengths[start:start + rows.num_rows].sum()))
        chunks.append(done)
    progress.done()
    whole = pa.concat_tables(chunks) if chunks else capture_rows(table, backend, config, batch_tokens)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = write_parquet(whole.combine_chunks(), output)
    result = {
        "split": split, "part": part, "path": f"{split}/{part}", "rows": whole.num_rows,
        "source_rows": entry.rows, "tokens": int(lengths.sum()),
        "positions": int(np.maximum(lengths - 1, 0).sum()), **written,
        "chunks": len(chunks), "resumed_chunks": resumed,
        "capture_seconds": round(capture_seconds, 3), "captured_positions": captured_positions,
        "positions_per_second": round(captured_positions / capture_seconds, 1) if capture_seconds else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if summary is not None:
        write_json(summary, result)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("%s: %s rows, %s positions, %s bytes (%.1f bytes/position); %s chunks resumed; %s positions/s",
             output, result["rows"], f"{result['positions']:,}", f"{result['bytes']:,}",
             result["bytes"] / max(result["positions"], 1), resumed, result["positions_per_second"])
    return result
