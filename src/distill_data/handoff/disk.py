"""The `disk_path` forms: a published dataset (unpacked) or a packed handoff as a DatasetDict
folder that `datasets.load_from_disk` and DistillKit's `disk_path` open.

Unpacked rows keep every column of the dataset (the trainer's `input_ids`, `labels`,
`attention_mask` and the provenance `id`, `source`, `spans`) and gain `completion_mask`
(1 where `labels` != -100): TRL's packing keeps only `input_ids` and that mask, so without it a
packed run would take the loss on prompts too. Packed rows keep only their fixed-length numeric
columns, because DistillKit's `prepacked` collator turns every column into one tensor.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..progress import Progress
from ..schema import SPLITS
from ..writer import assembled_aside, write_json
from ..teacher.format import ENTRY_COLUMNS
from .hf_disk import MAX_SHARD_BYTES, SplitWriter, write_dataset_dict
from .manifest import handoff_manifest, write_build_info
from .packing import IGNORE_INDEX
from .source import HandoffError, PublishedDataset, flat_list

log = logging.getLogger("distill_data")

# The columns of a packed row that DistillKit's prepacked mode stacks into tensors.
PACKED_TENSOR_COLUMNS = ("input_ids", "labels", "attention_mask", "position_ids", "completion_mask")


def completion_mask(labels) -> pa.ListArray:
    """1 where a label is trained on, 0 elsewhere; one list per row of `labels`."""
    values, lengths = flat_list(labels)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array((values != IGNORE_INDEX).astype(np.int8)))


def rows_for_disk(table: pa.Table, packed: bool) -> pa.Table:
    if packed:
        # a teacher's packed rows add its entries, (seq_len, bytes) per row, which DistillKit's offline signal reads
        return table.select([c for c in ENTRY_COLUMNS if c in table.column_names]
                            + list(PACKED_TENSOR_COLUMNS))
    if "completion_mask" in table.column_names:
        return table
    return table.append_column("completion_mask", completion_mask(table.column("labels")))


def build_disk(source_dir: Path, output_dir: Path, *, max_shard_bytes: int = MAX_SHARD_BYTES,
               argv: list[str] | None = None) -> dict:
    """Write `output_dir` (swapped into place when complete); returns its manifest."""
    started = time.perf_counter()
    source = PublishedDataset(source_dir)
    packed = source.manifest.get("form") == "packed"
    schema = source.schema()
    if not packed and "labels" not in schema.names:
        raise HandoffError(f"{source.manifest_path}: the rows have no `labels` column")
    files, tokens = {}, {}
    with assembled_aside(output_dir) as scratch:
        for split in SPLITS:
            progress = Progress(f"{source.name} {split} -> disk", total_rows=source.rows(split))
            writer, count = None, 0
            for _, table in source.tables(split):
                table = rows_for_disk(table, packed)
                if writer is None:
                    writer = SplitWriter(scratch, split, table.schema, max_shard_bytes)
                writer.write(table)
                n = _real_tokens(table, packed)
                count += n
                progress.update(rows=table.num_rows, tokens=n)
            if writer is None:   # an empty split: the columns of the other
                writer = SplitWriter(scratch, split, rows_for_disk(schema.empty_table(), packed).schema,
                                     max_shard_bytes)
            files[split] = writer.close()
            tokens[split] = count
            progress.done()
        write_dataset_dict(scratch, SPLITS)
        form = "packed_disk" if packed else "disk"
        teacher = source.manifest.get("teacher") if packed else None
        if teacher:
            from ..teacher.format import read_config, write_config
            write_config(scratch, read_config(source.directory))
        params = {"max_shard_bytes": max_shard_bytes}
        extra = {"columns": list(rows_for_disk(schema.empty_table(), packed).schema.names)}
        if packed:
            extra["seq_len"] = source.manifest.get("params", {}).get("seq_len")
        if teacher:
            extra["teacher"] = teacher
        manifest = handoff_manifest(form, source, scratch, params, files, tokens, extra)
        write_json(scratch / "manifest.json", manifest)
        info = write_build_info(scratch, started, sum(tokens.values()), argv or [])
    log.info("%s: %s form written to %s: %s rows, %.2f bytes/token, %s tokens/s", source.name, form, output_dir,
             manifest["rows"], manifest["bytes_per_token"] or 0, f"{info['tokens_per_second'] or 0:,}")
    return manifest


def _real_tokens(table: pa.Table, packed: bool) -> int:
    """Tokens of the examples (padding excluded)."""
    if packed:
        mask = table.column("attention_mask").combine_chunks().values.to_numpy(zero_copy_only=False)
        return int(np.count_nonzero(mask))
    ids = table.column("input_ids").combine_chunks()
    return int(ids.offsets[-1].as_py() - ids.offsets[0].as_py())
