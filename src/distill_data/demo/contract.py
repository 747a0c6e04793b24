"""Builder-output datasets written directly in the CONTRACT.md format, with synthetic tokens.

For tests and benchmarks of the merge, which only moves rows and never looks at what the
tokens mean: rows of any size and number are made in milliseconds, without rendering. The
token ids are random (seeded, Zipf-distributed), the spans and labels follow the contract exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from ..dataset import SplitWriters
from ..hashing import split_group_id, split_of
from ..schema import SPANS_TYPE, example_schema, source_type
from ..writer import write_json

VOCAB = 199_998  # ordinary o200k token ids
_RANK_TO_ID = np.random.default_rng(0).permutation(VOCAB).astype(np.int32)


def contract_table(*, id_prefix: str, dataset_hf: str, keys: Sequence[str], source_fields: dict,
                   prompt: np.ndarray, analysis: np.ndarray, final: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Rows in the contract's columns; `source_fields` maps a field name to a value per row."""
    n = len(keys)
    lengths = (prompt + analysis + final).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    # Zipf-distributed ranks mapped to fixed ids: compresses about like real token streams
    ranks = (rng.zipf(1.15, int(offsets[-1])) - 1) % VOCAB
    ids = _RANK_TO_ID[ranks]
    position = np.arange(len(ids), dtype=np.int64) - np.repeat(offsets[:-1].astype(np.int64), lengths)
    labels = np.where(position < np.repeat(prompt, lengths), np.int32(-100), ids)
    offsets_arr = pa.array(offsets, pa.int32())
    stype = source_type(list(source_fields))
    source = pa.StructArray.from_arrays(
        [pa.array([dataset_hf] * n, pa.string())] + [pa.array(list(v), pa.string()) for v in source_fields.values()]
        + [pa.array([split_group_id(k) for k in keys], pa.string())],  # split by the key (split_by: id)
        fields=list(stype))
    spans = pa.StructArray.from_arrays(
        [pa.array(prompt, pa.int32()), pa.array(analysis, pa.int32()), pa.array(final, pa.int32())],
        fields=list(SPANS_TYPE))
    return pa.table({
        "id": pa.array([f"{id_prefix}:{k}" for k in keys], pa.string()),
        "source": source,
        "input_ids": pa.ListArray.from_arrays(offsets_arr, pa.array(ids, pa.int32())),
        "labels": pa.ListArray.from_arrays(offsets_arr, pa.array(labels, pa.int32())),
        "attention_mask": pa.ListArray.from_arrays(offsets_arr, pa.array(np.ones(len(ids), np.int8), pa.int8())),
        "spans": spans,
    }, schema=example_schema(stype))


def write_contract_dataset(folder: Path, *, name: str, rows: int, seed: int = 0, mean_prompt: int = 200,
                           mean_assistant: int = 400, analysis_frac: float = 0.6, rows_per_file: int = 2000,
                           train_frac: float = 0.99, categories: dict | None = None,
                           batch_rows: int = 20_000, max_len: int = 8192) -> dict:
    """A dataset folder `folder` (train/, validation/, manifest.json) of `rows` rows whose
    lengths vary (geometric-like, capped at max_len); returns its manifest.

    `categories` maps a source field to the values it cycles through pseudo-randomly (default
    SYNTH-like `language` and `exercise`)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    categories = categories or {"language": ["en", "en", "en", "de", "fr"], "exercise": ["memorization", "rag", "mcq"]}
    stype = source_type(["key", *categories])
    writers = SplitWriters(folder, example_schema(stype), rows_per_file)
    totals = {"rows": {"train": 0, "validation": 0}, "total_tokens": 0, "assistant_tokens": 0}
    for first in range(0, rows, batch_rows):
        n = min(batch_rows, rows - first)
        keys = [f"{name}-{seed}-{first + i}" for i in range(n)]
        prompt = np.minimum(rng.geometric(1 / mean_prompt, n) + 20, max_len // 4)
        assistant = np.minimum(rng.geometric(1 / mean_assistant, n) + 2, max_len - prompt - 8)
        has_analysis = rng.random(n) < analysis_frac
        analysis = np.where(has_analysis, (assistant * rng.uniform(0.3, 0.8, n)).astype(np.int64), 0)
        final = assistant - analysis
        fields = {"key": keys, **{k: [v[int(j)] for j in rng.integers(0, len(v), n)] for k, v in categories.items()}}
        table = contract_table(id_prefix=name, dataset_hf=f"demo/{name}", keys=keys, source_fields=fields,
                               prompt=prompt, analysis=analysis, final=final, rng=rng)
        splits = np.array([split_of(k, seed, train_frac) == "validation" for k in keys])
        for split, mask in (("train", ~splits), ("validation", splits)):
            part = table.filter(pa.array(mask))
            writers.write(split, part)
            totals["rows"][split] += part.num_rows
        totals["total_tokens"] += int((prompt + assistant).sum())
        totals["assistant_tokens"] += int(assistant.sum())
    manifest = {"dataset": name, "builder": "demo.contract", "params": {"rows": rows, "seed": seed},
                "params_sha256": None, "tokenizer": {"name": "o200k_harmony", "vocab_sha256": "demo"},
                **totals, "files": writers.close()}
    write_json(folder / "manifest.json", manifest)
    return manifest


def load_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
