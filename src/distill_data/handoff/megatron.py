"""The Megatron form: megatron-core IndexedDataset files, per split and per input of a mix.

For each example (one document of one sequence) three aligned files, written with
megatron-core's own `IndexedDatasetBuilder`:
- `<split>/<input>_tokens` (int32): `input_ids` and the EOD token `<|endoftext|>` (199999);
- `<split>/<input>_loss_mask` (uint8): 1 where the token is trained on (`labels` != -100),
  0 on the prompt and on the EOD;
- `<split>/<input>_span_ids` (uint8): 0 prompt, 1 analysis, 2 final (`spans`; the Harmony wrapper
  tokens are in the span they open); the EOD is in span 0.
`data_path_<split>.txt` holds Megatron's `--data-path` list (`weight prefix …`, weights = the
inputs' shares of the split's tokens, prefixes relative to this folder), and
`per_split_data_args.json` the same for `--per-split-data-args-path`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ..progress import Progress
from ..schema import SPLITS
from ..writer import assembled_aside, write_json, write_text
from .manifest import handoff_manifest, write_build_info
from .packing import IGNORE_INDEX, PAD_TOKEN_ID
from .source import HandoffError, PublishedDataset, flat_list

log = logging.getLogger("distill_data")

EOD_TOKEN_ID = PAD_TOKEN_ID   # <|endoftext|>
STREAMS = {"tokens": np.int32, "loss_mask": np.uint8, "span_ids": np.uint8}
SPAN_PROMPT, SPAN_ANALYSIS, SPAN_FINAL = 0, 1, 2
# Megatron's split names for --per-split-data-args-path.
MEGATRON_SPLITS = {"train": "train", "validation": "valid"}


def indexed_dataset_classes():
    """megatron-core's (IndexedDatasetBuilder, IndexedDataset), imported quietly."""
    try:
        with warnings.catch_warnings():   # its optional-backend notices (Apex, TE) say nothing here
            warnings.simplefilter("ignore")
            from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder
        logging.getLogger("megatron").setLevel(logging.WARNING)   # one INFO line per file read
    except ImportError as exc:
        raise HandoffError(f"the megatron form needs megatron-core ({exc}): pip install torch first, then "
                           "pip install -e '.[megatron]'") from None
    return IndexedDatasetBuilder, IndexedDataset


def example_streams(input_ids: np.ndarray, labels: np.ndarray, start: int, analysis: int) -> dict[str, np.ndarray]:
    """One example's three aligned arrays (EOD appended)."""
    n = len(input_ids)
    tokens = np.empty(n + 1, dtype=np.int32)
    tokens[:n] = input_ids
    tokens[n] = EOD_TOKEN_ID
    loss = np.zeros(n + 1, dtype=np.uint8)
    loss[:n] = labels != IGNORE_INDEX
    spans = np.full(n + 1, SPAN_FINAL, dtype=np.uint8)
    spans[:start] = SPAN_PROMPT
    spans[start:start + analysis] = SPAN_ANALYSIS
    spans[n] = SPAN_PROMPT
    return {"tokens": tokens, "loss_mask": loss, "span_ids": spans}


def input_name(value: str) -> str:
    """A mix input's short name as a file name part."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in value)
    return safe or "data"


class Prefixes:
    """The open builders of one split: three per input, made when the input's first row comes."""

    def __init__(self, directory: Path, split: str):
        self.directory = Path(directory) / split
        self.directory.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.builders: dict[str, dict] = {}
        self.tokens: dict[str, int] = {}
        self.documents: dict[str, int] = {}
        self._builder = indexed_dataset_classes()[0]

    def add(self, name: str, streams: dict[str, np.ndarray]) -> None:
        if name not in self.builders:
            self.builders[name] = {stream: self._builder(str(self.directory / f"{name}_{stream}.bin"), dtype=dtype)
                                   for stream, dtype in STREAMS.items()}
            self.tokens[name] = self.documents[name] = 0
        for stream, builder in self.builders[name].items():
            array = streams[stream]
            builder.add_document(array, [len(array)])
        self.tokens[name] += len(streams["tokens"])
        self.documents[name] += 1

    def close(self) -> list[dict]:
        files = []
        for name in sorted(self.builders):
            for stream, builder in self.builders[name].items():
                builder.finalize(str(self.directory / f"{name}_{stream}.idx"))
                for ext in ("bin", "idx"):
                    path = self.directory / f"{name}_{stream}.{ext}"
                    data = path.read_bytes()
                    files.append({"path": f"{self.split}/{path.name}", "rows": self.documents[name],
                                  "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        return files

    def weights(self) -> list[tuple[float, str]]:
        total = sum(self.tokens.values())
        return [(self.tokens[name] / total, f"{self.split}/{name}_tokens") for name in sorted(self.tokens)] if total else []


def build_megatron(source_dir: Path, output_dir: Path, *, argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    source = PublishedDataset(source_dir)
    names = source.schema().names
    missing = [c for c in ("id", "input_ids", "labels", "spans") if c not in names]
    if missing:
        raise HandoffError(f"{source.manifest_path}: the rows lack {', '.join(missing)} (the megatron form needs spans)")
    by_source = "source" in names and source.manifest.get("builder") == "merge"
    files, tokens, documents, data_paths = {}, {}, {}, {}
    with assembled_aside(output_dir) as scratch:
        for split in SPLITS:
            prefixes = Prefixes(scratch, split)
            progress = Progress(f"{source.name} {split} -> megatron", total_rows=source.rows(split))
            columns = ["id", "input_ids", "labels", "spans"] + (["source"] if by_source else [])
            for entry, table in source.tables(split, columns):
                flat_ids, lengths = flat_list(table.column("input_ids"))
                flat_labels, _ = flat_list(table.column("labels"))
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                starts = pc.struct_field(table.column("spans"), "assistant_token_start").to_numpy(zero_copy_only=False)
                analysis = pc.struct_field(table.column("spans"), "analysis_token_count").to_numpy(zero_copy_only=False)
                inputs = (pc.struct_field(table.column("source"), "dataset").to_pylist() if by_source
                          else ["data"] * table.num_rows)
                for row in range(table.num_rows):
                    lo, hi = offsets[row], offsets[row + 1]
                    if not 0 <= int(starts[row]) + int(analysis[row]) <= hi - lo:
                        raise HandoffError(f"{entry.path}: row {row}: spans beyond the row's {hi - lo} tokens")
                    prefixes.add(input_name(inputs[row]),
                                 example_streams(flat_ids[lo:hi], flat_labels[lo:hi], int(starts[row]),
                                                 int(analysis[row])))
                progress.update(rows=table.num_rows, tokens=int(offsets[-1]))
            files[split] = prefixes.close()
            tokens[split] = sum(prefixes.tokens.values())
            documents[split] = dict(sorted(prefixes.documents.items()))
            weights = prefixes.weights()
            data_paths[split] = weights
            write_text(scratch / f"data_path_{split}.txt",
                       " ".join(f"{weight:.6f} {prefix}" for weight, prefix in weights) + "\n")
            progress.done()
        write_text(scratch / "per_split_data_args.json", json.dumps(
            {MEGATRON_SPLITS[split]: [item for weight, prefix in data_paths[split] for item in (f"{weight:.6f}", prefix)]
             for split in SPLITS}, indent=2, sort_keys=True) + "\n")
        params = {"eod_token_id": EOD_TOKEN_ID, "streams": {k: np.dtype(v).name for k, v in STREAMS.items()},
                  "spans": {"prompt": SPAN_PROMPT, "analysis": SPAN_ANALYSIS, "final": SPAN_FINAL}}
        extra = {"documents": documents,
                 "data_path": {split: [[round(w, 6), p] for w, p in data_paths[split]] for split in SPLITS}}
        manifest = handoff_manifest("megatron", source, scratch, params, files, tokens, extra)
        # a "row" of this form is a document, counted once (not once per stream file)
        manifest["rows"] = {split: sum(documents[split].values()) for split in SPLITS}
        write_json(scratch / "manifest.json", manifest)
        info = write_build_info(scratch, started, sum(tokens.values()), argv or [])
    log.info("%s: megatron form written to %s: %s documents, %.2f bytes/token, %s tokens/s", source.name, output_dir,
             manifest["rows"], manifest["bytes_per_token"] or 0, f"{info['tokens_per_second'] or 0:,}")
    return manifest
