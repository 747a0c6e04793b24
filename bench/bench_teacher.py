#!/usr/bin/env python3
"""Teacher stage: capture throughput on CPU with a tiny random teacher, bytes per position and per
token at each k and logprob dtype (as written, zstd parquet), and the estimate for a full mix.

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python bench/bench_teacher.py
        [--mix demo/distillation_1/phase1_mix_8k_665m] [--rows 24] [--full-tokens 665000000]
        [--tokens-per-second 5000]

The tiny teacher (2 layers, hidden 16, gpt-oss's 201,088-token vocabulary) is made here; its
speed is bound by the log-softmax and top-k over the vocabulary, so it measures the capture's own
overhead on CPU, not a real teacher's. Rows are the first `--rows` of the mix's first validation part.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


from distill_data.handoff.source import PublishedDataset
from distill_data.teacher import format as fmt
from distill_data.teacher.backends import TransformersBackend
from distill_data.teacher.capture import capture_part
from distill_data.teacher.estimate import estimate, human_bytes

VOCAB = 201088


def tiny_teacher(path: Path) -> Path:
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8192)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mix", type=Path, default=Path("demo/distillation_1/phase1_mix_8k_665m"))
    p.add_argument("--rows", type=int, default=24)
    p.add_argument("--ks", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--full-tokens", type=int, default=665_000_000)
    p.add_argument("--tokens-per-second", type=float, default=5000.0, help="a real teacher's, per GPU, for the estimate")
    args = p.parse_args()
    source = PublishedDataset(args.mix)
    part = source.files["validation"][0].path.name
    mix = source.manifest
    rows_total = sum(source.rows(s) for s in ("train", "validation"))
    mix_bytes = sum(e.bytes for s in ("train", "validation") for e in source.files[s])
    tokens_per_row = mix["total_tokens"] / rows_total
    print(f"threads: {os.cpu_count()} CPUs; rows: the first {args.rows} of {args.mix}/validation/{part}")
    print()
    print("| k | logprob dtype | bytes/position (format) | bytes/position on disk | bytes/token on disk (with the rows) "
          "| capture tokens/s (CPU, tiny teacher) | full mix on disk | GPU hours at "
          f"{args.tokens_per_second:,.0f} tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_teacher(Path(tmp) / "tiny")
        for k in args.ks:
            backend = TransformersBackend(str(model), k, dtype="float32", device="cpu")
            for dtype in ("float32", "bfloat16"):
                config = fmt.default_config(VOCAB, k, dtype)
                out = Path(tmp) / f"k{k}_{dtype}.parquet"
                started = time.perf_counter()
                result = capture_part(args.mix, "validation", part, out, Path(tmp) / "work", backend, config,
                                      settings={}, batch_tokens=16384, chunk_rows=256, max_rows=args.rows)
                seconds = time.perf_counter() - started
                only_rows = sum(e.bytes for e in source.files["validation"][:1]) * result["rows"] / source.files["validation"][0].rows
                logit_disk = (result["bytes"] - only_rows) / result["positions"]
                full_rows = args.full_tokens / tokens_per_row
                full = estimate(args.full_tokens, int(full_rows), int(mix_bytes / mix["total_tokens"] * args.full_tokens),
                                config, args.tokens_per_second)
                disk_full = full["positions"] * logit_disk + full["dataset_bytes"]
                print(f"| {k} | {dtype} | {config.bytes_per_position} | {logit_disk:.1f} | "
                      f"{result['bytes'] / result['tokens']:.1f} | {result['tokens'] / seconds:,.0f} | "
                      f"{human_bytes(disk_full)} (format bound {human_bytes(full['total_bytes'])}) | "
                      f"{full['gpu_hours']:,} |")
    print()
    print(json.dumps({"mix_rows": rows_total, "mix_tokens": mix["total_tokens"],
                      "tokens_per_row": round(tokens_per_row, 1), "full_tokens": args.full_tokens}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
