"""Validating a handoff form against the dataset it was made from.

Reads only the form's files and the source's published parquet: every file against the form's
manifest (size, sha256); the rows against the source (same examples, same tokens and labels, in
the promised order or layout); the form's own invariants (the segment layout of a packed row,
the EOD and masks of a Megatron document). A report names the first failure of each check.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import SPLITS
from .packing import IGNORE_INDEX, PAD_TOKEN_ID
from .source import DatasetFile, HandoffError, PublishedDataset, checked_bytes, flat_list, listed_files, read_checked


class Checks:
    def __init__(self):
        self.results: dict[str, dict] = {}

    def record(self, name: str, ok: bool, detail: str = "", **numbers) -> None:
        entry = self.results.setdefault(name, {"ok": True, "failures": []})
        entry.update(numbers)
        if not ok:
            entry["ok"] = False
            if len(entry["failures"]) < 5:
                entry["failures"].append(detail)

    @property
    def ok(self) -> bool:
        return all(entry["ok"] for entry in self.results.values())


class StreamDigest:
    """Digests of a split's columns that do not depend on how the rows are cut into files."""

    def __init__(self, columns):
        self.columns = list(columns)
        # lengths and values apart, so that the digest is the same however the rows are chunked
        self.hashes = {(name, part): hashlib.sha256() for name in self.columns for part in ("lengths", "values")}
        self.rows = 0

    def update(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name in self.columns:
            column = table.column(name)
            if pa.types.is_list(column.type):
                array = column.combine_chunks()
                while pa.types.is_list(array.type):   # lists of lists (teacher entries): every level's lengths
                    lengths = np.diff(array.offsets.to_numpy())
                    self.hashes[name, "lengths"].update(lengths.astype(np.int64).tobytes())
                    array = pc.list_flatten(array)
                values = array.to_numpy(zero_copy_only=False)
                self.hashes[name, "values"].update(values.astype(np.int64).tobytes())
            else:
                self.hashes[name, "values"].update("\0".join(map(str, column.to_pylist())).encode() + b"\0")

    def differing(self, other: "StreamDigest") -> list[str]:
        return [name for name in self.columns
                if any(self.hashes[name, part].digest() != other.hashes[name, part].digest() for part in ("lengths", "values"))]


def _arrow_tables(files: list[DatasetFile]):
    for entry in files:
        yield pa.ipc.open_stream(pa.BufferReader(checked_bytes(entry))).read_all()


def load_form(directory: Path) -> tuple[dict, PublishedDataset]:
    directory = Path(directory)
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HandoffError(f"{path}: not found") from None
    source = PublishedDataset(directory / manifest["source"]["path"])
    return manifest, source


def check_form(directory: Path) -> dict:
    directory = Path(directory)
    manifest, source = load_form(directory)
    checks = Checks()
    checks.record("source_unchanged", source.manifest_sha256 == manifest["source"]["manifest_sha256"],
                  f"{source.manifest_path} changed since the handoff was made: rebuild it")
    form = manifest["form"]
    {"disk": _check_disk, "packed_disk": _check_disk, "packed": _check_packed,
     "megatron": _check_megatron}[form](directory, manifest, source, checks)
    return {"ok": checks.ok, "form": form, "dataset": manifest["dataset"], "directory": str(directory),
            "rows": manifest["rows"], "tokens": manifest["tokens"], "bytes_per_token": manifest["bytes_per_token"],
            "packing": manifest.get("packing"), "checks": checks.results}


def _check_disk(directory: Path, manifest: dict, source: PublishedDataset, checks: Checks) -> None:
    dict_file = directory / "dataset_dict.json"
    splits = json.loads(dict_file.read_text())["splits"] if dict_file.exists() else []
    checks.record("dataset_dict", sorted(splits) == sorted(SPLITS), f"{dict_file}: splits {splits}")
    packed = manifest["form"] == "packed_disk"
    for split in SPLITS:
        mine, theirs = None, None
        for table in _arrow_tables(listed_files(directory, manifest, split)):
            if mine is None:
                columns = [c for c in table.column_names if c != "completion_mask"] if not packed else table.column_names
                mine, theirs = StreamDigest(columns), StreamDigest(columns)
            mine.update(table)
            if not packed:
                labels, _ = flat_list(table.column("labels"))
                mask, _ = flat_list(table.column("completion_mask"))
                checks.record("completion_mask", np.array_equal(mask == 1, labels != IGNORE_INDEX),
                              f"{split}: completion_mask differs from labels != -100")
        if mine is None:
            checks.record("rows_equal_source", source.rows(split) == 0, f"{split}: no rows, the source has some")
            continue
        for _, table in source.tables(split, mine.columns):
            theirs.update(table)
        differ = mine.differing(theirs)
        checks.record("rows_equal_source", not differ and mine.rows == theirs.rows,
                      f"{split}: {mine.rows} rows vs the source's {theirs.rows}; columns differing: {differ}")


def example_digest(tokens: np.ndarray, labels: np.ndarray, *entries: np.ndarray) -> bytes:
    return hashlib.blake2b(b"|".join([tokens.astype(np.int32).tobytes(), labels.astype(np.int32).tobytes()]
                                     + [np.ascontiguousarray(e).tobytes() for e in entries]),
                           digest_size=12).digest()


def _check_packed(directory: Path, manifest: dict, source: PublishedDataset, checks: Checks) -> None:
    from ..teacher.format import ENTRY_COLUMNS
    from .packed import teacher_entries
    seq_len = int(manifest["params"]["seq_len"])
    teacher = bool(manifest.get("teacher"))
    for split in SPLITS:
        expected = {}
        columns = ["id", "input_ids", "labels"] + (list(ENTRY_COLUMNS) if teacher else [])
        for source_entry, table in source.tables(split, columns):
            tokens, lengths = flat_list(table.column("input_ids"))
            labels, _ = flat_list(table.column("labels"))
            ends = np.cumsum(lengths)
            if teacher:   # DistillKit's convention: the first L-1 tokens, with the L-1 entries
                entries = [teacher_entries(source_entry, table, name) for name in ENTRY_COLUMNS]
                entry_ends = np.cumsum(np.maximum(lengths - 1, 0))
            for i, example_id in enumerate(table.column("id").to_pylist()):
                start, size = ends[i] - lengths[i], lengths[i] - (1 if teacher else 0)
                if size <= seq_len:
                    extra = [e[entry_ends[i] - size:entry_ends[i]] for e in entries] if teacher else []
                    expected[example_id] = example_digest(tokens[start:start + size], labels[start:start + size],
                                                          *extra)
        seen = defaultdict(int)
        slots = used = 0
        for entry in listed_files(directory, manifest, split):
            table = read_checked(entry)
            _check_packed_table(entry, table, seq_len, expected, seen, checks)
            slots += table.num_rows * seq_len
            used += sum(sum(x) for x in table.column("example_lengths").to_pylist())
        twice = [i for i, n in seen.items() if n > 1]
        missing = [i for i in expected if i not in seen]
        checks.record("every_example_once", not twice and not missing,
                      f"{split}: {len(missing)} examples missing (e.g. {missing[:3]}), {len(twice)} in several rows "
                      f"(e.g. {twice[:3]})", **{f"{split}_examples": len(seen)})
        efficiency = used / slots if slots else None
        stated = manifest["packing"][split]["efficiency"]
        checks.record("efficiency_as_stated", efficiency is None or abs(efficiency - stated) < 1e-6,
                      f"{split}: rows fill {efficiency}, the manifest says {stated}")


def _check_packed_table(entry: DatasetFile, table: pa.Table, seq_len: int, expected: dict, seen: dict,
                        checks: Checks) -> None:
    n = table.num_rows
    arrays = {}
    for name in ("input_ids", "labels", "attention_mask", "position_ids", "completion_mask"):
        values, lengths = flat_list(table.column(name))
        if not np.all(lengths == seq_len):
            checks.record("fixed_length", False, f"{entry.path}: {name} rows not all {seq_len} long")
            return
        arrays[name] = values.reshape(n, seq_len)
    checks.record("fixed_length", True)
    from ..teacher.format import ENTRY_COLUMNS
    from .packed import teacher_entries
    entries = [teacher_entries(entry, table, name) for name in ENTRY_COLUMNS if name in table.column_names]
    if entries and not all(len(e) == n * seq_len for e in entries):
        checks.record("fixed_length", False, f"{entry.path}: teacher entries not {seq_len} per row")
        return
    ids = table.column("example_ids").to_pylist()
    example_lengths = table.column("example_lengths").to_pylist()
    seq_lengths = table.column("seq_lengths").to_pylist()
    for row in range(n):
        sizes = example_lengths[row]
        where = f"{entry.path}: packed row {row}"
        used = sum(sizes)
        segment = np.zeros(seq_len, dtype=np.int64)
        position = np.zeros(seq_len, dtype=np.int64)
        at = 0
        for k, size in enumerate(sizes, 1):
            segment[at:at + size] = k
            position[at:at + size] = np.arange(size)
            at += size
        position[used:] = np.arange(seq_len - used)
        checks.record("segment_layout", used <= seq_len and np.array_equal(arrays["attention_mask"][row], segment),
                      f"{where}: attention_mask is not 1..{len(sizes)} over the examples then 0")
        checks.record("position_ids", np.array_equal(arrays["position_ids"][row], position),
                      f"{where}: position_ids do not restart at each example")
        want = sizes + ([seq_len - used] if used < seq_len else [])
        checks.record("seq_lengths", seq_lengths[row] == want, f"{where}: seq_lengths {seq_lengths[row]} vs {want}")
        labels = arrays["labels"][row]
        checks.record("completion_mask", np.array_equal(arrays["completion_mask"][row] == 1, labels != IGNORE_INDEX),
                      f"{where}: completion_mask differs from labels != -100")
        base = row * seq_len
        checks.record("padding", bool(np.all(labels[used:] == IGNORE_INDEX) and
                                      np.all(arrays["input_ids"][row][used:] == PAD_TOKEN_ID) and
                                      all(not e[base + used:base + seq_len].any() for e in entries)),
                      f"{where}: padding is not <|endoftext|> with label -100 (and zero teacher entries)")
        at = 0
        for example_id, size in zip(ids[row], sizes):
            seen[example_id] += 1
            digest = example_digest(arrays["input_ids"][row][at:at + size], labels[at:at + size],
                                    *[e[base + at:base + at + size] for e in entries])
            checks.record("tokens_equal_source", expected.get(example_id) == digest,
                          f"{where}: example {example_id}: tokens or labels differ from the source")
            at += size


def _check_megatron(directory: Path, manifest: dict, source: PublishedDataset, checks: Checks) -> None:
    from .megatron import example_streams, indexed_dataset_classes, input_name
    IndexedDataset = indexed_dataset_classes()[1]
    for split in SPLITS:
        for entry in listed_files(directory, manifest, split):   # every file as written
            read_checked_bytes(entry, checks)
        readers, cursor = {}, defaultdict(int)
        by_source = "source" in source.schema().names and source.manifest.get("builder") == "merge"
        columns = ["id", "input_ids", "labels", "spans"] + (["source"] if by_source else [])
        for _, table in source.tables(split, columns):
            tokens, lengths = flat_list(table.column("input_ids"))
            labels, _ = flat_list(table.column("labels"))
            ends = np.cumsum(lengths)
            starts = pc.struct_field(table.column("spans"), "assistant_token_start").to_numpy(zero_copy_only=False)
            analysis = pc.struct_field(table.column("spans"), "analysis_token_count").to_numpy(zero_copy_only=False)
            names = (pc.struct_field(table.column("source"), "dataset").to_pylist() if by_source
                     else ["data"] * table.num_rows)
            ids = table.column("id").to_pylist()
            for i in range(table.num_rows):
                name = input_name(names[i])
                if name not in readers:
                    readers[name] = {stream: IndexedDataset(str(directory / split / f"{name}_{stream}"))
                                     for stream in ("tokens", "loss_mask", "span_ids")}
                doc = cursor[name]
                cursor[name] += 1
                want = example_streams(tokens[ends[i] - lengths[i]:ends[i]], labels[ends[i] - lengths[i]:ends[i]],
                                       int(starts[i]), int(analysis[i]))
                for stream, reader in readers[name].items():
                    ok = doc < len(reader) and np.array_equal(np.asarray(reader[doc]), want[stream])
                    checks.record(f"{stream}_equal_source", ok,
                                  f"{split}/{name}_{stream} document {doc} ({ids[i]}) differs from the source row")
        for name, count in cursor.items():
            for stream, reader in readers[name].items():
                checks.record("documents_equal_rows", len(reader) == count,
                              f"{split}/{name}_{stream}: {len(reader)} documents, the source has {count} rows")


def read_checked_bytes(entry: DatasetFile, checks: Checks) -> None:
    try:
        checked_bytes(entry)
        checks.record("files_as_listed", True)
    except HandoffError as exc:
        checks.record("files_as_listed", False, str(exc))
