"""The merged mix: every row of K builder datasets, once, in one canonical schema, interleaved.

Three passes, none of which holds more than a few batches of token data:

1. **open**: each input is a published dataset folder; its `manifest.json` lists the part files
   per split (in order) and is checked against the files (present, row counts, column types).
2. **weigh**: only the `spans` column is read (a few bytes per row): per row the prompt,
   analysis and final token counts. They give the weights of the schedule (`rows`,
   `total_tokens` = prompt + analysis + final = len(input_ids), `assistant_tokens` = analysis +
   final) and all of the statistics, and `interleave.interleave_schedule` turns them into the
   order of the split: one byte per row naming the input whose next row comes next.
3. **stream**: one reader per input walks its part files in order, batch by batch (the next
   batch is decoded on a thread while the current one is used). Each output file takes the
   next `rows_per_file` entries of the schedule, run by run (a run: consecutive rows of one
   input), as zero-copy slices of the inputs' batches, concatenated once when the file is
   written. Rows stay Arrow data throughout: only `source` is rebuilt
   (CANONICAL_SOURCE_TYPE, vectorised), every other column is copied untouched. Files are
   compressed and hashed on a small thread pool, and listed in order.

The schedule (one byte per row) and the per-row token counts (24 bytes per row) are the only
things that grow with the mix; samples for samples.md are picked from the `id` column alone
and captured while streaming.

Train rows come only from the inputs' train splits and validation rows only from theirs.
"""

from __future__ import annotations

import os

import heapq
import json
import logging
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import mix_report as report
from . import neardup
from .dataset import params_sha256
from .hashing import unit_hash
from .interleave import interleave_schedule
from .progress import Progress
from .schema import CANONICAL_SOURCE_TYPE, SPANS_TYPE, SPLITS, example_schema
from .stats import Accounting, DatasetStats
from .tokenizer import sha256_file
from .writer import assembled_aside, write_json, write_parquet, write_text

log = logging.getLogger("distill_data")

MIX_SCHEMA = example_schema(CANONICAL_SOURCE_TYPE)
WEIGHT_BY = ("rows", "total_tokens", "assistant_tokens")
UNKNOWN = "unknown"

# Where the canonical `language` and `exercise` come from in each builder's `source` struct:
# the first of these fields the struct has (SYNTH `language`/`exercise`, oasst2 `lang`,
# OpenCodeInstruct `domain`, Nemotron-Math `data_source` (AoPS / StackExchange-Math: the only
# category that source has)). A builder without such a field, or a null/empty value, gives
# "unknown"; the whole original struct is kept in `meta_json` either way.
LANGUAGE_FIELDS = ("language", "lang")
EXERCISE_FIELDS = ("exercise", "domain", "data_source", "category")

# Columns every input must have, with the exact types the mix writes (`source` is any struct).
COPIED_TYPES = {
    "id": pa.string(),
    "input_ids": pa.list_(pa.int32()),
    "labels": pa.list_(pa.int32()),
    "attention_mask": pa.list_(pa.int8()),
    "spans": SPANS_TYPE,
}
COLUMNS = ("id", "source", "input_ids", "labels", "attention_mask", "spans")
# Read column chunks in pieces of this size instead of whole (a part file is one row group):
# keeps what an input reader holds near its batch size.
READ_BUFFER = 1 << 20


class MergeError(ValueError):
    """An input cannot be merged as it is; the message names the input and the problem."""


@dataclass(frozen=True)
class MergeParams:
    """Everything that decides the mix's bytes (threads and batch size do not)."""

    inputs: tuple[str, ...]
    seed: int = 1337
    weight_by: str = "assistant_tokens"
    rows_per_file: int = 2000
    samples_per_input: int = 3

    def __post_init__(self):
        if self.weight_by not in WEIGHT_BY:
            raise MergeError(f"--weight-by must be one of {', '.join(WEIGHT_BY)}, not {self.weight_by!r}")
        if self.rows_per_file < 1:
            raise MergeError("--rows-per-shard must be at least 1")
        if self.samples_per_input < 0:
            raise MergeError("--samples-per-input must be >= 0")

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "seed": self.seed, "weight_by": self.weight_by,
                "rows_per_file": self.rows_per_file, "samples_per_input": self.samples_per_input}


# --- 1. open ---------------------------------------------------------------------------------

@dataclass
class MixInput:
    """One builder dataset, as its manifest describes it."""

    name: str                          # short name: synth, code, math, chat
    directory: Path
    manifest: dict
    manifest_sha256: str
    files: dict[str, list[Path]]       # split -> part files, in order
    rows: dict[str, int]               # split -> rows
    # split -> ids left out as near-duplicates (neardup.py); the rows below are those written
    dropped: dict[str, frozenset] = field(default_factory=dict)

    def kept(self, ids: pa.Array) -> pa.Array | None:
        """Boolean mask of the rows written among `ids` of one split, or None when all are."""
        return None if not any(self.dropped.values()) else pc.invert(pc.is_in(ids, value_set=self._dropped_ids))

    @cached_property
    def _dropped_ids(self) -> pa.Array:
        return pa.array(sorted(set().union(*self.dropped.values())), pa.string())

    def describe(self, mix_dir: Path) -> dict:
        """The input as the mix's manifest records it: its folder relative to the mix's (so
        that moving output_root changes no byte), and its manifest by sha256."""
        return {
            "name": self.name,
            "dataset": self.manifest.get("dataset"),
            "path": os.path.relpath(os.path.abspath(self.directory), os.path.abspath(mix_dir)),
            "manifest_sha256": self.manifest_sha256,
            "params_sha256": self.manifest.get("params_sha256"),
            "rows": dict(self.rows),
            **({"near_duplicate_drops": {split: len(self.dropped.get(split, ())) for split in SPLITS}}
               if self.dropped else {}),
            # what the mix's validation needs without the input at hand (the split rule its
            # rows were split by; the seed and train_frac of that split)
            "split": {key: self.manifest.get("params", {}).get(key) for key in ("split_by", "seed", "train_frac")},
        }


def parse_input_spec(spec: str) -> tuple[str, Path]:
    """`NAME=DIR` -> (name, dir)."""
    name, sep, directory = spec.partition("=")
    if not sep or not name or not directory:
        raise MergeError(f"--input {spec!r}: expected NAME=DIR, e.g. synth=/data/distillation_1/synth_distill_phase1_high_550m")
    return name.strip(), Path(directory)


def open_input(name: str, directory: Path) -> MixInput:
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise MergeError(f"input {name}: {manifest_path} does not exist; is {directory} a finished "
                         "builder dataset (train/, validation/, manifest.json)?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"input {name}: {manifest_path} is not readable JSON ({exc})") from None
    listed = manifest.get("files")
    if not isinstance(listed, dict) or any(split not in listed for split in SPLITS):
        raise MergeError(f"input {name}: {manifest_path} has no `files` listing for both splits "
                         f"({', '.join(SPLITS)})")
    files, rows = {}, {}
    for split in SPLITS:
        files[split] = []
        rows[split] = 0
        for entry in listed[split]:
            path = directory / entry["path"]
            files[split].append(path)
            rows[split] += _check_part_file(name, path, entry.get("rows"))
        _check_no_unlisted_files(name, directory / split, files[split])
    if not rows["train"]:  # an empty input, or one the trainer would never see
        raise MergeError(f"input {name}: {directory} has no train rows (train 0, validation {rows['validation']}); "
                         f"rebuild it (its manifest's accounting says where the rows went) or leave {name} "
                         "out of merge.inputs")
    return MixInput(name, directory, manifest, sha256_file(manifest_path), files, rows)


def _check_part_file(name: str, path: Path, listed_rows) -> int:
    """The part file exists, has the manifest's row count and the contract's column types."""
    try:
        handle = pq.ParquetFile(path)
    except FileNotFoundError:
        raise MergeError(f"input {name}: {path} is listed in the manifest but does not exist") from None
    except (pa.ArrowException, OSError) as exc:
        raise MergeError(f"input {name}: {path} is not a readable parquet file ({exc})") from None
    schema = handle.schema_arrow
    for column, expected in COPIED_TYPES.items():
        if column not in schema.names:
            raise MergeError(f"input {name}: {path} has no column {column!r} (it has {', '.join(schema.names)})")
        if schema.field(column).type != expected:
            raise MergeError(f"input {name}: {path} column {column!r} has type {schema.field(column).type}, "
                             f"the contract says {expected}")
    if "source" not in schema.names or not pa.types.is_struct(schema.field("source").type):
        raise MergeError(f"input {name}: {path} has no struct column 'source'")
    actual = handle.metadata.num_rows
    if listed_rows is not None and actual != listed_rows:
        raise MergeError(f"input {name}: {path} has {actual} rows, its manifest says {listed_rows}; "
                         "the dataset changed after it was built")
    return actual


def _check_no_unlisted_files(name: str, folder: Path, listed: list[Path]) -> None:
    """A part file the manifest does not list means a stale or mixed-up folder."""
    present = {p.name for p in folder.glob("part-*.parquet")}
    extra = sorted(present - {p.name for p in listed})
    if extra:
        raise MergeError(f"input {name}: {folder} holds part files its manifest does not list: {', '.join(extra[:5])}")


def open_inputs(specs: Sequence[tuple[str, Path]]) -> list[MixInput]:
    names = [name for name, _ in specs]
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise MergeError(f"input name(s) given twice: {', '.join(duplicates)}")
    if not specs:
        raise MergeError("no inputs: give --input NAME=DIR at least once")
    if len(specs) > 255:
        raise MergeError("at most 255 inputs")
    return [open_input(name, directory) for name, directory in specs]


# --- 2. weigh --------------------------------------------------------------------------------

@dataclass
class SplitSpans:
    """Per-row token counts of one input split, in row order (int64 numpy arrays)."""

    prompt: np.ndarray
    analysis: np.ndarray
    final: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.prompt)

    @property
    def assistant(self) -> np.ndarray:
        return self.analysis + self.final

    @property
    def total(self) -> np.ndarray:
        return self.prompt + self.analysis + self.final

    def weights(self, weight_by: str) -> np.ndarray:
        if weight_by == "rows":
            return np.ones(self.rows, dtype=np.int64)
        return self.total if weight_by == "total_tokens" else self.assistant


def read_spans(inp: MixInput, split: str) -> SplitSpans:
    """Only the small `spans` column: the token data is not touched."""
    parts = {"assistant_token_start": [], "analysis_token_count": [], "final_token_count": []}
    for path in inp.files[split]:
        table = pq.read_table(path, columns=["id", "spans"])
        kept = inp.kept(table.column("id"))
        spans = (table.filter(kept) if kept is not None else table).column("spans")
        for key in parts:
            values = pc.struct_field(spans, key)
            if values.null_count:
                raise MergeError(f"input {inp.name}: {path} has null spans.{key}")
            parts[key].append(values.to_numpy().astype(np.int64))
    arrays = [np.concatenate(v) if v else np.zeros(0, np.int64) for v in parts.values()]
    if any((a < 0).any() for a in arrays):
        raise MergeError(f"input {inp.name}: {split} has negative token counts in `spans`")
    return SplitSpans(*arrays)


def read_ids(inp: MixInput, split: str) -> Iterator[str]:
    """The ids of the rows the mix takes from the split (near-duplicate drops left out)."""
    for path in inp.files[split]:
        ids = pq.read_table(path, columns=["id"]).column("id")
        kept = inp.kept(ids)
        yield from (ids.filter(kept) if kept is not None else ids).to_pylist()


def choose_samples(inp: MixInput, k: int, seed: int) -> dict[str, list[int]]:
    """The k rows of the input (both splits) with the smallest u(id, seed, "sample"):
    split -> row indices within that split, in row order."""
    if k <= 0:
        return {split: [] for split in SPLITS}
    scored = ((unit_hash(row_id, seed, "sample"), row_id, split, row)
              for split in SPLITS for row, row_id in enumerate(read_ids(inp, split)))
    chosen = heapq.nsmallest(k, scored)      # holds k candidates, not every id
    return {split: sorted(row for _, _, s, row in chosen if s == split) for split in SPLITS}


def split_schedule(spans: Sequence[SplitSpans], weight_by: str, seed: int) -> np.ndarray:
    """Input index of every row of the merged split (uint8), see interleave.py."""
    weights = [s.weights(weight_by).tolist() for s in spans]
    schedule = interleave_schedule(weights, seed)
    if schedule.typecode != "B":
        raise MergeError("at most 255 inputs")
    return np.frombuffer(schedule, dtype=np.uint8)


# --- canonical source ------------------------------------------------------------------------

def _first_field(struct_type: pa.StructType, candidates: Sequence[str]) -> str | None:
    names = [struct_type.field(i).name for i in range(struct_type.num_fields)]
    return next((c for c in candidates if c in names), None)


def _category(source: pa.StructArray, name: str | None) -> pa.Array:
    """A string field of `source`, "unknown" where absent, null or empty."""
    if name is None:
        return pa.array([UNKNOWN] * len(source), pa.string())
    values = pc.cast(pc.struct_field(source, name), pa.string())
    values = pc.if_else(pc.equal(values, ""), None, values)
    return pc.fill_null(values, UNKNOWN)


_NEEDS_ESCAPE_BEYOND_QUOTES = r"[\x00-\x1f]"


def _json_string(values: pa.Array) -> pa.Array:
    """`json.dumps(v, ensure_ascii=False)` of each string (null -> `null`), vectorised.

    Only backslash and quote are escaped here: callers fall back to Python for values with
    control characters, the only other characters json.dumps escapes when ensure_ascii=False.
    """
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.fill_null(quoted, "null")


def meta_json(source: pa.StructArray) -> pa.Array:
    """The original `source` struct of each row as compact JSON with sorted keys, exactly
    `json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

    Every builder's struct is all strings, which is done with Arrow string kernels; other
    types, and the rare string with a control character, go through `json.dumps`.
    """
    struct_type = source.type
    names = sorted(struct_type.field(i).name for i in range(struct_type.num_fields))
    fields = {name: pc.struct_field(source, name) for name in names}
    if not names or source.null_count or not all(pa.types.is_string(f.type) for f in fields.values()):
        return _meta_json_python(source)
    parts: list = []
    for i, name in enumerate(names):   # '{"a":' value ',"b":' value '}'
        parts.append(("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":")
        parts.append(_json_string(fields[name]))
    joined = pc.binary_join_element_wise(*parts, "}", "")
    special = None
    for values in fields.values():
        found = pc.fill_null(pc.match_substring_regex(values, _NEEDS_ESCAPE_BEYOND_QUOTES), False)
        special = found if special is None else pc.or_(special, found)
    if pc.any(special).as_py():
        joined = pc.if_else(special, _meta_json_python(source), joined)
    return joined


def _meta_json_python(source: pa.StructArray) -> pa.Array:
    return pa.array([None if row is None else json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                     for row in source.to_pylist()], pa.string())


def canonical_source(source: pa.StructArray, dataset: str) -> pa.StructArray:
    """CANONICAL_SOURCE_TYPE for each row: {dataset, language, exercise, meta_json}."""
    if isinstance(source, pa.ChunkedArray):
        source = source.combine_chunks()
    return pa.StructArray.from_arrays(
        [pa.array([dataset] * len(source), pa.string()),
         _category(source, _first_field(source.type, LANGUAGE_FIELDS)),
         _category(source, _first_field(source.type, EXERCISE_FIELDS)),
         meta_json(source)],
        fields=list(CANONICAL_SOURCE_TYPE),
    )


# --- 3. stream -------------------------------------------------------------------------------

@dataclass
class InputTally:
    """What one input contributed to one split of the mix, counted from the rows written."""

    rows: int = 0
    tokens: int = 0              # sum of len(input_ids)
    assistant: int = 0           # sum of analysis + final tokens
    language: Counter = field(default_factory=Counter)
    exercise: Counter = field(default_factory=Counter)
    # The input rows' `source.split_group` values (as integers), or None when its rows have
    # none (a dataset built before the field existed).
    groups: set | None = None


class InputStream:
    """One input split's rows in order, as canonical record batches, handed out n at a time.

    The next batch is read (decoded, canonicalised) on `pool` while the current one is used:
    decoding releases the GIL, so reading overlaps with the other inputs and with the writes.
    Per input, two batches are held, plus those the files waiting to be written still slice.
    """

    def __init__(self, inp: MixInput, split: str, batch_size: int, sample_rows: Sequence[int] = (),
                 pool: ThreadPoolExecutor | None = None):
        self.inp = inp
        self.split = split
        self.batch_size = batch_size
        self.tally = InputTally()
        self.samples: dict[int, dict] = {}
        self._sample_rows = sorted(sample_rows)
        self._batches = self._read()
        self._pool = pool
        self._ahead: Future | None = pool.submit(next, self._batches, None) if pool else None
        self._current: pa.RecordBatch | None = None
        self._offset = 0

    def _next_batch(self) -> pa.RecordBatch | None:
        # one read in flight per input, so the generator never runs on two threads at once
        if self._ahead is None:
            return next(self._batches, None)
        batch = self._ahead.result()
        self._ahead = self._pool.submit(next, self._batches, None) if batch is not None else None
        return batch

    def take(self, n: int) -> list[pa.RecordBatch]:
        """The next n rows, as zero-copy slices of the buffered batches."""
        pieces = []
        while n:
            if self._current is None or self._offset == self._current.num_rows:
                self._current = self._next_batch()
                self._offset = 0
                if self._current is None:
                    raise MergeError(f"input {self.inp.name}: {self.split} ran out of rows before the "
                                     "schedule did; the files changed during the merge")
                continue
            k = min(n, self._current.num_rows - self._offset)
            pieces.append(self._current.slice(self._offset, k))
            self._offset += k
            n -= k
        return pieces

    def exhausted(self) -> bool:
        return (self._current is None or self._offset == self._current.num_rows) and self._next_batch() is None

    def _read(self) -> Iterator[pa.RecordBatch]:
        base = 0
        for path in self.inp.files[self.split]:
            handle = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            for batch in handle.iter_batches(batch_size=self.batch_size, columns=list(COLUMNS)):
                kept = self.inp.kept(batch.column("id"))
                if kept is not None:
                    batch = batch.filter(kept)
                batch = self._canonical(batch, path)
                self._capture_samples(batch, base)
                base += batch.num_rows
                yield batch

    def _canonical(self, batch: pa.RecordBatch, path: Path) -> pa.RecordBatch:
        lengths = pc.list_value_length(batch.column("input_ids"))
        _check_lengths(self.inp.name, path, batch, lengths)
        source = canonical_source(batch.column("source"), self.inp.name)
        tally = self.tally
        tally.rows += batch.num_rows
        tally.tokens += pc.sum(lengths).as_py() or 0
        spans = batch.column("spans")
        tally.assistant += (pc.sum(pc.struct_field(spans, "analysis_token_count")).as_py() or 0) + \
            (pc.sum(pc.struct_field(spans, "final_token_count")).as_py() or 0)
        original = batch.column("source")
        if original.type.get_field_index("split_group") >= 0:
            if tally.groups is None:
                tally.groups = set()
            tally.groups.update(int(g, 16) for g in pc.struct_field(original, "split_group").to_pylist() if g)
        tally.language.update(_value_counts(source.field("language")))
        tally.exercise.update(_value_counts(source.field("exercise")))
        columns = [source if name == "source" else batch.column(name) for name in COLUMNS]
        return pa.RecordBatch.from_arrays(columns, schema=MIX_SCHEMA)

    def _capture_samples(self, batch: pa.RecordBatch, base: int) -> None:
        while self._sample_rows and self._sample_rows[0] < base + batch.num_rows:
            row = self._sample_rows.pop(0)
            self.samples[row] = batch.slice(row - base, 1).to_pylist()[0]


def _value_counts(values: pa.Array) -> dict:
    counts = pc.value_counts(values)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def _check_lengths(name: str, path: Path, batch: pa.RecordBatch, lengths: pa.Array) -> None:
    """input_ids, labels and attention_mask of a row have one length, and spans add up to it:
    the weights (read from spans alone) must describe the rows actually moved."""
    spans = batch.column("spans")
    spans_total = pc.add(pc.add(pc.struct_field(spans, "assistant_token_start"),
                                pc.struct_field(spans, "analysis_token_count")),
                         pc.struct_field(spans, "final_token_count"))
    checks = {
        "labels has another length than input_ids": pc.list_value_length(batch.column("labels")),
        "attention_mask has another length than input_ids": pc.list_value_length(batch.column("attention_mask")),
        "spans do not add up to len(input_ids)": pc.cast(spans_total, pa.int32()),
    }
    for problem, values in checks.items():
        bad = pc.invert(pc.fill_null(pc.equal(values, lengths), False))
        if pc.any(bad).as_py():
            first = pc.index(bad, True).as_py()
            raise MergeError(f"input {name}: {path}: row {batch.column('id')[first].as_py()!r}: {problem}")


class OrderedFileWriter:
    """Writes numbered part files on a few threads (compression and hashing release the GIL)
    and returns their descriptions in order; at most `threads` files wait in memory."""

    def __init__(self, directory: Path, threads: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads)
        self._pending: deque[Future] = deque()
        self.files: list[dict] = []
        self._count = 0

    def write(self, table: pa.Table) -> None:
        path = self.directory / f"part-{self._count:05d}.parquet"
        self._count += 1
        self._pending.append(self._pool.submit(_write_part, table, path))
        while len(self._pending) > self.threads:
            self.files.append(self._pending.popleft().result())

    def close(self) -> list[dict]:
        try:
            while self._pending:
                self.files.append(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.files


def _write_part(table: pa.Table, path: Path) -> dict:
    written = write_parquet(table.combine_chunks().cast(MIX_SCHEMA), path)
    return {"path": path.name, "rows": table.num_rows, **written}


def runs(segment: np.ndarray) -> Iterator[tuple[int, int]]:
    """(input, length) of each maximal run of one input in a piece of the schedule."""
    if not len(segment):
        return
    starts = np.concatenate([[0], np.flatnonzero(np.diff(segment)) + 1])
    lengths = np.diff(np.concatenate([starts, [len(segment)]]))
    yield from zip(segment[starts].tolist(), lengths.tolist())


def stream_split(inputs: Sequence[MixInput], split: str, schedule: np.ndarray, out_dir: Path,
                 rows_per_file: int, batch_size: int, threads: int,
                 sample_rows: dict[str, dict[str, list[int]]]) -> tuple[list[dict], list[InputStream]]:
    """Write the split's part files in schedule order; returns (files, streams with tallies)."""
    readers = ThreadPoolExecutor(max_workers=max(1, min(threads, len(inputs))))
    streams = [InputStream(inp, split, batch_size, sample_rows[inp.name][split], readers) for inp in inputs]
    writer = OrderedFileWriter(Path(out_dir) / split, threads)
    progress = Progress(f"merge {split}", total_rows=len(schedule))
    try:
        for start in range(0, len(schedule), rows_per_file):
            # Zero-copy slices in schedule order; the one copy (combine_chunks) happens on
            # the writer's thread. Measured faster than one `take` over input-ordered rows.
            pieces = []
            for i, length in runs(schedule[start:start + rows_per_file]):
                pieces += streams[i].take(length)
            writer.write(pa.Table.from_batches(pieces, schema=MIX_SCHEMA))
            progress.update(sum(p.num_rows for p in pieces),
                            sum(pc.sum(pc.list_value_length(p.column("input_ids"))).as_py() or 0 for p in pieces))
        for stream in streams:
            if not stream.exhausted():
                raise MergeError(f"input {stream.inp.name}: {split} has more rows than its spans said; "
                                 "the files changed during the merge")
        progress.done()
    finally:
        files = writer.close()
        readers.shutdown(wait=True, cancel_futures=True)
    return [dict(f, path=f"{split}/{f['path']}") for f in files], streams


# --- the whole merge -------------------------------------------------------------------------

MANIFEST_VERSION = 1
NEAR_DUPLICATES_FILE = "near_duplicates.parquet"   # the drop list, next to manifest.json


def common_tokenizer(inputs: Sequence[MixInput]) -> dict | None:
    """The inputs' tokenizer, which must be one: token ids of different vocabularies do not mix."""
    described = {inp.name: inp.manifest.get("tokenizer") for inp in inputs}
    vocabularies = {json.dumps((t or {}).get("vocab_sha256")) for t in described.values()}
    if len(vocabularies) > 1:
        detail = ", ".join(f"{name}: {(t or {}).get('vocab_sha256')}" for name, t in described.items())
        raise MergeError(f"the inputs were tokenized with different vocabularies ({detail})")
    return next(iter(described.values()), None)


def build_mix(specs: Sequence[tuple[str, Path]], output_dir: Path, params: MergeParams, *,
              batch_size: int = 256, threads: int = 2, decode=None, dataset: str | None = None,
              drop_list: Path | None = None) -> dict:
    """Merge the inputs into `output_dir` (assembled aside, moved into place when complete):
    train/ and validation/ part files, manifest.json, stats.json and samples.md.
    `decode(token_ids) -> str` renders the samples (needed unless samples_per_input is 0).
    `drop_list`: near-duplicates to leave out (neardup.py), copied next to the mix."""
    output_dir = Path(output_dir)
    dataset = dataset or output_dir.name
    if tuple(name for name, _ in specs) != params.inputs:
        raise MergeError("MergeParams.inputs must name the inputs in the order given")
    if params.samples_per_input and decode is None:
        raise MergeError("samples need the tokenizer: give --tokenizer-dir or set --samples-per-input 0")
    inputs = open_inputs(specs)
    tokenizer = common_tokenizer(inputs)
    names = [inp.name for inp in inputs]
    log.info("inputs: %s", ", ".join(f"{i.name} ({i.rows['train']} + {i.rows['validation']} rows)" for i in inputs))
    drops = neardup.attach_drop_list(drop_list, inputs) if drop_list is not None else None
    spans = {split: [read_spans(inp, split) for inp in inputs] for split in SPLITS}
    neardup.check_drops_found(inputs, {split: [s.rows for s in spans[split]] for split in SPLITS})
    sample_rows = {inp.name: choose_samples(inp, params.samples_per_input, params.seed) for inp in inputs}

    files, composition, split_stats, samples, all_streams = {}, {}, {}, [], {}
    stats = DatasetStats(accounting=Accounting(rows_read=sum(sum(i.rows.values()) for i in inputs)))
    stats.accounting.drop(neardup.DROP_REASON, drops.rows if drops else 0)
    with assembled_aside(output_dir) as scratch:
        for split in SPLITS:
            schedule = split_schedule(spans[split], params.weight_by, params.seed)
            log.info("%s: %d rows, schedule ready; streaming", split, len(schedule))
            files[split], streams = stream_split(inputs, split, schedule, scratch, params.rows_per_file,
                                                 batch_size, threads, sample_rows)
            all_streams[split] = streams
            composition[split], split_stats[split] = _describe_split(names, spans[split], streams, schedule,
                                                                     params.weight_by)
            _count_tokens(stats, split, spans[split], streams)
            samples += _locate_samples(streams, schedule, split, params.rows_per_file)
        _check_files(dataset, stats, files)
        groups = split_group_report(names, all_streams)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "dataset": dataset,
            "builder": "merge",
            "params": params.to_dict(),
            "params_sha256": params_sha256(params.to_dict()),
            "tokenizer": tokenizer,
            "inputs": [inp.describe(output_dir) for inp in inputs],
            **stats.to_dict(),
            "composition": composition,
            "split_groups": groups,
            **({"near_duplicates": neardup.mix_section(drops, scratch / NEAR_DUPLICATES_FILE)} if drops else {}),
            "warnings": groups_warnings(groups, inputs) + (neardup.drop_warnings(drops, inputs) if drops else []),
            "files": files,
        }
        for warning in manifest["warnings"]:
            log.warning("%s: %s", dataset, warning)
        write_json(scratch / "manifest.json", manifest)
        write_json(scratch / "stats.json", {"dataset": dataset, "weight_by": params.weight_by, "splits": split_stats})
        samples.sort(key=lambda s: (names.index(s["input"]), SPLITS.index(s["split"]), s["position"]))
        write_text(scratch / "samples.md", report.render_samples(dataset, params.to_dict(), samples, decode))
    return manifest


def split_group_report(names: Sequence[str], streams: dict) -> dict:
    """Per input, its split groups in each split of the mix and how many sit in both
    (CONTRACT.md: one problem on one side); None for an input whose rows have no split_group."""
    report_ = {}
    for i, name in enumerate(names):
        train, validation = streams["train"][i].tally.groups, streams["validation"][i].tally.groups
        if train is None and validation is None:
            report_[name] = None
            continue
        train, validation = train or set(), validation or set()
        report_[name] = {"groups": {"train": len(train), "validation": len(validation)},
                         "in_both_splits": len(train & validation)}
    return {"inputs": report_,
            "in_both_splits": sum(r["in_both_splits"] for r in report_.values() if r)}


def groups_warnings(groups: dict, inputs: Sequence[MixInput]) -> list[str]:
    """A problem on both sides of the split is loud: the validation loss would flatter it."""
    warnings = []
    for inp in inputs:
        found = groups["inputs"][inp.name]
        if found is None:
            warnings.append(f"input {inp.name} has no split_group: its rows cannot be checked for "
                            "problems on both sides of the split (rebuild it)")
        elif found["in_both_splits"]:
            split_by = (inp.manifest.get("params") or {}).get("split_by", "id")
            warnings.append(f"input {inp.name}: {found['in_both_splits']} split groups have rows in both train "
                            f"and validation (built with split_by: {split_by}; common.split_by: group keeps "
                            "one problem on one side)")
    return warnings


def _check_files(dataset: str, stats: DatasetStats, files: dict) -> None:
    """Every row read is in exactly one written file: the accounting and the files agree."""
    stats.accounting.check(dataset)
    for split in SPLITS:
        in_files = sum(f["rows"] for f in files[split])
        if in_files != stats.accounting.written[split]:
            raise MergeError(f"{dataset}: {split} files hold {in_files} rows, the inputs {stats.accounting.written[split]}")


def _describe_split(names, spans: Sequence[SplitSpans], streams: Sequence[InputStream],
                    schedule: np.ndarray, weight_by: str) -> tuple[dict, dict]:
    """(composition for the manifest, statistics for stats.json) of one split."""
    weights = [s.weights(weight_by) for s in spans]
    targets = [int(w.sum()) for w in weights]
    realised = [_realised(stream.tally, weight_by) for stream in streams]
    target_total, realised_total = sum(targets), sum(realised)
    for name, span, stream in zip(names, spans, streams):
        if stream.tally.rows != span.rows or stream.tally.tokens != int(span.total.sum()):
            raise MergeError(f"input {name}: the rows written do not match its spans")
    composition = {
        "weight_by": weight_by,
        "inputs": {name: {"rows": s.rows, "total_tokens": int(s.total.sum()), "assistant_tokens": int(s.assistant.sum()),
                          "target_share": report.share(t, target_total), "realised_share": report.share(r, realised_total)}
                   for name, s, t, r in zip(names, spans, targets, realised)},
        "prefix_deviation": report.prefix_deviation(schedule, weights, names),
    }
    per_input = {name: report.input_split_stats(s, t, target_total, r, realised_total)
                 for name, s, t, r in zip(names, spans, targets, realised)}
    for name, stream in zip(names, streams):
        per_input[name]["language"] = dict(sorted(stream.tally.language.items()))
        per_input[name]["exercise"] = dict(sorted(stream.tally.exercise.items()))
    whole = SplitSpans(*(np.concatenate([getattr(s, k) for s in spans]) if spans else np.zeros(0, np.int64)
                         for k in ("prompt", "analysis", "final")))
    overall = report.input_split_stats(whole, target_total, target_total, realised_total, realised_total)
    return composition, {"all": overall, "inputs": per_input, "prefix_deviation": composition["prefix_deviation"]}


def _realised(tally: InputTally, weight_by: str) -> int:
    """The input's weight in the split, counted from the rows actually written."""
    return {"rows": tally.rows, "total_tokens": tally.tokens, "assistant_tokens": tally.assistant}[weight_by]


def _count_tokens(stats, split: str, spans: Sequence[SplitSpans], streams: Sequence[InputStream]) -> None:
    stats.accounting.written[split] = sum(s.rows for s in spans)
    if not spans:
        return
    prompt, analysis, final = (np.concatenate([getattr(s, k) for s in spans]) for k in ("prompt", "analysis", "final"))
    stats.tokens[split] = {"prompt": report.token_stats(prompt), "analysis": report.token_stats(analysis),
                           "final": report.token_stats(final), "total": report.token_stats(prompt + analysis + final)}
    for stream in streams:
        for column in ("language", "exercise"):
            stats.distributions.setdefault(column, Counter()).update(getattr(stream.tally, column))
        if stream.tally.rows:
            stats.distributions.setdefault("dataset", Counter())[stream.inp.name] += stream.tally.rows


def _locate_samples(streams: Sequence[InputStream], schedule: np.ndarray, split: str, rows_per_file: int) -> list[dict]:
    """Each captured sample with its position in the mix split."""
    located = []
    for i, stream in enumerate(streams):
        if not stream.samples:
            continue
        positions = np.flatnonzero(schedule == i)
        for row, data in stream.samples.items():
            position = int(positions[row])
            located.append({"input": stream.inp.name, "split": split, "position": position,
                            "file": f"{split}/part-{position // rows_per_file:05d}.parquet",
                            "file_row": position % rows_per_file, "row": data})
    return located
