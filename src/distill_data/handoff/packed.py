"""The packed form: fixed-length rows of whole examples, as parquet part files.

Examples are read in the dataset's order and packed a window at a time (packing.py); an example
longer than the row is dropped and counted (never cut). Each row records which examples it holds
(`example_ids`, `example_lengths`, `example_sources`), so it can be traced and joined back.

A teacher dataset (teacher/: `compressed_logprobs`, `bytepacked_indices`) packs the same way, in
DistillKit's convention: each example gives its first L-1 tokens and labels, each token with the
teacher's entry for the token after it (so the last token's prediction is kept, as an entry), and
the entries ride along to their tokens' places; padding entries are zero bytes, under label -100.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..progress import Progress
from ..schema import SPLITS
from ..writer import PartWriter, assembled_aside, write_json
from .manifest import handoff_manifest, write_build_info
from .packing import PackedRows, best_fit_decreasing, position_dtype
from ..teacher.format import ENTRY_COLUMNS, FormatError, entries_column, entry_matrix
from .source import HandoffError, PublishedDataset, flat_list

log = logging.getLogger("distill_data")

DEFAULT_WINDOW_TOKENS = 16_000_000
DEFAULT_ROWS_PER_FILE = 128
SHOWN_DROPS = 5


def packed_schema(seq_len: int, teacher: bool = False) -> pa.Schema:
    position = pa.int16() if position_dtype(seq_len) == np.int16 else pa.int32()
    entries = [(name, pa.list_(pa.list_(pa.uint8()))) for name in ENTRY_COLUMNS] if teacher else []
    return pa.schema(entries + [
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("attention_mask", pa.list_(pa.int16())),
        ("position_ids", pa.list_(position)),
        ("completion_mask", pa.list_(pa.int8())),
        ("seq_lengths", pa.list_(pa.int32())),
        ("example_ids", pa.list_(pa.string())),
        ("example_lengths", pa.list_(pa.int32())),
        ("example_sources", pa.list_(pa.string())),
    ])


def _fixed(values: np.ndarray, rows: int, seq_len: int, kind: pa.DataType) -> pa.ListArray:
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * seq_len, type=pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(values, type=kind))


def _ragged(values: list[list], kind: pa.DataType) -> pa.ListArray:
    return pa.array(values, type=pa.list_(kind))


class Window:
    """Examples waiting to be packed: their ids, sources and flat tokens and labels."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.tokens: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.entries: dict[str, list[np.ndarray]] = {name: [] for name in ENTRY_COLUMNS}
        self.size = 0

    def add(self, ids, sources, tokens, labels, lengths, entries=None):
        self.ids += ids
        self.sources += sources
        self.tokens.append(tokens)
        self.labels.append(labels)
        self.lengths.append(lengths)
        for name, values in (entries or {}).items():
            self.entries[name].append(values)
        self.size += int(lengths.sum())


def teacher_entries(entry, table, name) -> np.ndarray:
    try:
        return entry_matrix(table.column(name))[0]
    except FormatError as exc:
        raise HandoffError(f"{entry.path}: {name}: {exc}") from None


def _teacher_examples(entry, ids, tokens, labels, lengths, table):
    """Each example cut to its first L-1 tokens and labels, with its L-1 entries beside them."""
    entries = {name: teacher_entries(entry, table, name) for name in ENTRY_COLUMNS}
    ends = np.cumsum(lengths)
    keep = np.ones(tokens.size, dtype=bool)
    keep[ends[lengths > 0] - 1] = False
    positions = np.maximum(lengths - 1, 0)
    for name, values in entries.items():
        if len(values) != int(positions.sum()):
            raise HandoffError(f"{entry.path}: {len(values)} {name} entries for {int(positions.sum())} positions "
                               "(one per input id but each row's last); check the teacher dataset")
    return tokens[keep], labels[keep], positions, entries


def pack_split(source: PublishedDataset, split: str, writer: PartWriter, seq_len: int, window_tokens: int,
               progress: Progress) -> dict:
    schema = writer.schema
    teacher = ENTRY_COLUMNS[0] in schema.names
    stats = {"examples": 0, "rows": 0, "tokens": 0, "dropped_too_long": 0, "dropped_ids": [],
             "examples_per_row": {"min": None, "max": 0}}
    window = Window()

    def flush():
        if not window.ids:
            return
        tokens = np.concatenate(window.tokens)
        labels = np.concatenate(window.labels)
        lengths = np.concatenate(window.lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = best_fit_decreasing(lengths, seq_len)
        packed = PackedRows(tokens, labels, offsets, rows, seq_len)
        n = len(rows)
        members = packed.members.tolist()
        example_ids, example_lengths, example_sources, at = [], [], [], 0
        for count in packed.counts.tolist():
            chosen = members[at:at + count]
            at += count
            example_ids.append([window.ids[i] for i in chosen])
            example_sources.append([window.sources[i] for i in chosen])
            example_lengths.append([int(lengths[i]) for i in chosen])
        entry_arrays = [entries_column(packed.gather(np.concatenate(window.entries[name])), np.full(n, seq_len))
                        for name in ENTRY_COLUMNS] if teacher else []
        table = pa.Table.from_arrays(entry_arrays + [
            _fixed(packed.input_ids, n, seq_len, pa.int32()),
            _fixed(packed.labels, n, seq_len, pa.int32()),
            _fixed(packed.attention_mask, n, seq_len, pa.int16()),
            _fixed(packed.position_ids, n, seq_len, schema.field("position_ids").type.value_type),
            _fixed(packed.completion_mask, n, seq_len, pa.int8()),
            _ragged(packed.seq_lengths(), pa.int32()),
            _ragged(example_ids, pa.string()),
            _ragged(example_lengths, pa.int32()),
            _ragged(example_sources, pa.string()),
        ], schema=schema)
        writer.write(table)
        stats["rows"] += n
        stats["examples"] += len(window.ids)
        stats["tokens"] += int(lengths.sum())
        counts = packed.counts
        stats["examples_per_row"]["max"] = max(stats["examples_per_row"]["max"], int(counts.max()))
        low = int(counts.min())
        stats["examples_per_row"]["min"] = low if stats["examples_per_row"]["min"] is None else min(
            low, stats["examples_per_row"]["min"])
        window.clear()

    columns = ["id", "input_ids", "labels"] + (list(ENTRY_COLUMNS) if teacher else [])
    has_source = "source" in source.schema().names
    for entry, table in source.tables(split, columns + (["source"] if has_source else [])):
        ids = table.column("id").to_pylist()
        sources = (pc.struct_field(table.column("source"), "dataset").to_pylist() if has_source
                   else [source.name] * table.num_rows)
        tokens, lengths = flat_list(table.column("input_ids"))
        labels, label_lengths = flat_list(table.column("labels"))
        if not np.array_equal(lengths, label_lengths):
            bad = int(np.flatnonzero(lengths != label_lengths)[0])
            raise HandoffError(f"{entry.path}: row {bad} ({ids[bad]}): labels and input_ids differ in length")
        entries = None
        if teacher:
            tokens, labels, lengths, entries = _teacher_examples(entry, ids, tokens, labels, lengths, table)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        too_long = np.flatnonzero(lengths > seq_len)
        keep = np.ones(len(ids), dtype=bool)
        keep[too_long] = False
        for i in too_long.tolist():
            stats["dropped_too_long"] += 1
            if len(stats["dropped_ids"]) < SHOWN_DROPS:
                stats["dropped_ids"].append(ids[i])
        # cut the rows into windows at the exact example where a window's tokens reach the bound,
        # so that the packing does not depend on how the dataset is split into files
        at = 0
        while at < len(ids):
            room = window_tokens - window.size
            cumulative = np.cumsum(np.where(keep[at:], lengths[at:], 0))
            stop = at + int(np.searchsorted(cumulative, room)) + 1 if cumulative.size and cumulative[-1] >= room \
                else len(ids)
            part = np.arange(at, stop)[keep[at:stop]]
            if part.size == stop - at:   # nothing dropped here: one contiguous slice
                span = slice(starts[at], starts[stop])
                window.add(ids[at:stop], sources[at:stop], tokens[span], labels[span], lengths[at:stop],
                           entries and {name: values[span] for name, values in entries.items()})
            elif part.size:
                pieces = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in part])
                window.add([ids[i] for i in part], [sources[i] for i in part], tokens[pieces], labels[pieces],
                           lengths[part], entries and {name: values[pieces] for name, values in entries.items()})
            if window.size >= window_tokens:
                flush()
            at = stop
        progress.update(rows=table.num_rows, tokens=int(lengths.sum()))
    flush()
    slots = stats["rows"] * seq_len
    stats["slots"] = slots
    stats["efficiency"] = round(stats["tokens"] / slots, 6) if slots else None
    return stats


def build_packed(source_dir: Path, output_dir: Path, *, seq_len: int, window_tokens: int = DEFAULT_WINDOW_TOKENS,
                 rows_per_file: int = DEFAULT_ROWS_PER_FILE, threads: int = 1, argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    if seq_len < 1 or window_tokens < seq_len:
        raise HandoffError(f"seq_len {seq_len} and window_tokens {window_tokens}: need 1 <= seq_len <= window_tokens")
    source = PublishedDataset(source_dir)
    teacher = source.manifest.get("form") == "teacher"
    schema = packed_schema(seq_len, teacher)
    files, tokens, packing, warnings = {}, {}, {}, []
    with assembled_aside(output_dir) as scratch:
        for split in SPLITS:
            writer = PartWriter(scratch / split, schema, rows_per_file, threads)
            progress = Progress(f"{source.name} {split} -> packed", total_rows=source.rows(split))
            stats = pack_split(source, split, writer, seq_len, window_tokens, progress)
            files[split] = [dict(f, path=f"{split}/{f['path']}") for f in writer.close()]
            progress.done()
            tokens[split] = stats["tokens"]
            packing[split] = stats
            if stats["dropped_too_long"]:
                warnings.append(f"{split}: {stats['dropped_too_long']} examples longer than seq_len {seq_len} "
                                f"left out (e.g. {', '.join(stats['dropped_ids'])})")
            if stats["rows"] == 1:
                warnings.append(f"{split}: 1 packed row; DistillKit's prepacked loader needs at least 2 per split")
            if stats["efficiency"] is not None and stats["efficiency"] < 0.97 and stats["rows"] > 10:
                warnings.append(f"{split}: packing fills {stats['efficiency']:.1%} of the slots (goal 97%)")
        params = {"seq_len": seq_len, "window_tokens": window_tokens, "rows_per_file": rows_per_file,
                  "algorithm": "best-fit decreasing per window"}
        extra = {"packing": packing}
        if teacher:   # the trainer needs the compression config beside the rows
            from ..teacher.format import read_config, write_config
            write_config(scratch, read_config(source.directory))
            extra["teacher"] = {key: source.manifest[key] for key in ("teacher", "top_k", "compression",
                                                                     "position_convention")}
            params["examples"] = "first L-1 tokens of each example, each with the teacher's entry for the next token"
        manifest = handoff_manifest("packed", source, scratch, params, files, tokens, extra, warnings)
        write_json(scratch / "manifest.json", manifest)
        info = write_build_info(scratch, started, sum(tokens.values()), argv or [])
    log.info("%s: packed into %s rows of %d (filled %s), %.2f bytes/token, %s tokens/s", source.name,
             {s: packing[s]["rows"] for s in SPLITS}, seq_len, {s: packing[s]["efficiency"] for s in SPLITS},
             manifest["bytes_per_token"] or 0, f"{info['tokens_per_second'] or 0:,}")
    return manifest
