"""A tiny random teacher and a small published dataset, for the teacher stage's tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from distill_data.schema import SPLITS
from distill_data.writer import PartWriter, write_json

VOCAB = 201088   # gpt-oss's logits width: the Harmony ids (up to 200018) all fit


def tiny_teacher(path: Path, seed: int = 0, vocab: int = VOCAB) -> Path:
    """A 2-layer Llama with random weights, saved as a Hugging Face model folder."""
    import torch
    import transformers
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


def rows_table(rng: np.random.Generator, n: int, prefix: str) -> pa.Table:
    lengths = rng.integers(12, 90, size=n)
    ids, labels, masks, spans = [], [], [], []
    for length in lengths.tolist():
        row = rng.integers(0, 200000, size=length).tolist()
        start = length // 2
        ids.append(row)
        labels.append([-100] * start + row[start:])
        masks.append([1] * length)
        spans.append({"assistant_token_start": start, "analysis_token_count": (length - start) // 2,
                      "final_token_count": length - start - (length - start) // 2})
    return pa.table({
        "id": [f"{prefix}-{i}" for i in range(n)],
        "source": [{"dataset": "synthetic", "language": "en", "exercise": "x", "meta_json": "{}"}] * n,
        "input_ids": pa.array(ids, type=pa.list_(pa.int32())),
        "labels": pa.array(labels, type=pa.list_(pa.int32())),
        "attention_mask": pa.array(masks, type=pa.list_(pa.int8())),
        "spans": pa.array(spans, type=pa.struct([("assistant_token_start", pa.int32()),
                                                 ("analysis_token_count", pa.int32()),
                                                 ("final_token_count", pa.int32())])),
    })


def small_dataset(path: Path, rows: dict[str, int], rows_per_file: int, seed: int = 0) -> Path:
    """A published dataset folder (manifest.json listing part files per split, CONTRACT.md)."""
    rng = np.random.default_rng(seed)
    files, total = {}, 0
    for split in SPLITS:
        table = rows_table(rng, rows[split], split)
        writer = PartWriter(path / split, table.schema, rows_per_file)
        writer.write(table)
        files[split] = [dict(f, path=f"{split}/{f['path']}") for f in writer.close()]
        total += sum(len(x) for x in table.column("input_ids").to_pylist())
    write_json(path / "manifest.json", {"dataset": path.name, "builder": "test", "files": files,
                                        "total_tokens": total})
    return path


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())
