#!/usr/bin/env python3
"""Merge builder datasets into one interleaved mix (`phase1_mix_8k_665m`).

    merge_distill_datasets.py \
        --input synth=/data/distillation_1/synth_distill_phase1_high_550m \
        --input code=/data/distillation_1/code_opencodeinstruct_55m \
        --input math=/data/distillation_1/math_nemotron_v2_low_55m \
        --input chat=/data/distillation_1/helpfulness_oasst2_15m \
        --output-dir /data/distillation_1/phase1_mix_8k_665m --weight-by assistant_tokens --seed 1337

Every input row once (less the near-duplicates --drop-list names), `source` rewritten to {dataset, language, exercise, meta_json}, train
from train and validation from validation, in a seeded row-level order that keeps every prefix
at the composition of the whole (by --weight-by). Writes train/, validation/, manifest.json,
stats.json, samples.md and build_info.json into --output-dir.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import distill_data  # noqa: F401  (first: it picks Arrow's memory pool before pyarrow loads)
import pyarrow as pa
from distill_data.cli import log, run
from distill_data.config import check_args as check_config_bounds
from distill_data.dataset import write_build_info
from distill_data.merge import WEIGHT_BY, MergeParams, build_mix, parse_input_spec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", required=True, metavar="NAME=DIR",
                   help="a builder dataset folder and its short name (repeat; the order is recorded)")
    p.add_argument("--output-dir", type=Path, required=True, help="the mix folder to write")
    p.add_argument("--dataset-name", default=None, help="name in the manifest (default: the folder's name)")
    p.add_argument("--weight-by", choices=WEIGHT_BY, default="assistant_tokens",
                   help="measure whose composition every prefix of the mix keeps")
    p.add_argument("--seed", type=int, default=1337, help="seed of the schedule (and of the samples)")
    p.add_argument("--rows-per-shard", "--rows-per-file", dest="rows_per_file", type=int, default=2000,
                   help="rows per output parquet file")
    p.add_argument("--samples-per-input", type=int, default=3, help="decoded samples per input in samples.md")
    p.add_argument("--drop-list", type=Path, default=None,
                   help="near-duplicates to leave out (find_near_duplicates.py's parquet; copied into the mix)")
    p.add_argument("--batch-size", type=int, default=256, help="rows read per input at a time (memory; not output)")
    p.add_argument("--threads", type=int, default=2, help="parquet decode/encode threads (not output)")
    p.add_argument("--tokenizer-dir", default=None,
                   help="folder with o200k_base.tiktoken, for samples.md (default: $TIKTOKEN_ENCODINGS_BASE)")
    return p.parse_args(argv)


def decoder(args):
    """tiktoken's decode of the Harmony vocabulary (special tokens shown as their names).

    The vocabulary is checked now, so that a missing one fails before the merge, but loaded
    only for the samples, after the rows are written: it is not held during the streaming."""
    if args.samples_per_input == 0:
        return None
    from distill_data.tokenizer import load_tokenizer, resolve_vocab_dir

    folder = str(resolve_vocab_dir(args.tokenizer_dir))
    return lambda tokens: load_tokenizer(folder).tiktoken.decode(tokens, errors="replace")


def main(argv=None) -> None:
    started = time.time()
    args = parse_args(argv)
    check_config_bounds(args, {"rows_per_file": "merge.rows_per_file", "samples_per_input": "merge.samples_per_input",
                               "threads": "threads.merge"})
    specs = [parse_input_spec(spec) for spec in args.input]
    params = MergeParams(inputs=tuple(name for name, _ in specs), seed=args.seed, weight_by=args.weight_by,
                         rows_per_file=args.rows_per_file, samples_per_input=args.samples_per_input)
    pa.set_cpu_count(max(1, args.threads))
    # Few Python objects live long here, but Arrow wrappers are made by the thousand: the
    # default collector thresholds spent ~4% of the merge in collections that find nothing.
    gc.set_threshold(100_000, 50, 50)
    manifest = build_mix(specs, args.output_dir, params, batch_size=args.batch_size, threads=args.threads,
                         decode=decoder(args), dataset=args.dataset_name, drop_list=args.drop_list)
    write_build_info(args.output_dir, started, sys.argv)
    deviation = {split: manifest["composition"][split]["prefix_deviation"] for split in manifest["files"]}
    log.info("%s: %d rows, %d tokens (%d assistant); worst prefix deviation %.3f B (train), %.4f pp at 1%% prefixes",
             args.output_dir, manifest["accounting"]["rows_written_total"], manifest["total_tokens"],
             manifest["assistant_tokens"], deviation["train"]["max_deviation_in_B"],
             deviation["train"]["max_pp_at_1pct_prefixes"])


if __name__ == "__main__":
    run(main)
