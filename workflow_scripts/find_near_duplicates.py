#!/usr/bin/env python3
"""Near-duplicate prompts across the mix's inputs (rule `mix_near_duplicates`).

    find_near_duplicates.py --input synth=DIR --input code=DIR --input math=DIR --input chat=DIR \
        --output drops.parquet --summary near_duplicates.json --threshold 0.8 --num-perm 128 \
        --shingle-words 5 --priority math code chat synth --seed 1337

Reads every row of every input (both splits), MinHash + LSH on the prompts, clusters the pairs
whose estimated Jaccard similarity reaches --threshold and keeps one row per cluster (the first
input in --priority, then the smallest u(id, seed, "neardup")). Writes the drop list (parquet,
its summary in the metadata) that merge_distill_datasets.py --drop-list takes, and the summary
as JSON. See distill_data/neardup.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import distill_data  # noqa: F401  (first: it picks Arrow's memory pool before pyarrow loads)
from distill_data.cli import log, run
from distill_data.dataset import write_build_info
from distill_data.merge import open_inputs, parse_input_spec
from distill_data.neardup import NearDupParams, find_near_duplicates, write_drop_list


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", required=True, metavar="NAME=DIR",
                   help="a builder dataset folder and its short name (repeat)")
    p.add_argument("--output", type=Path, required=True, help="the drop list (parquet) to write")
    p.add_argument("--summary", type=Path, required=True, help="the summary (JSON) to write")
    p.add_argument("--threshold", type=float, default=0.8, help="estimated Jaccard similarity that makes a pair")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (signature length)")
    p.add_argument("--shingle-words", type=int, default=5, help="words per shingle (k of the word k-grams)")
    p.add_argument("--priority", nargs="+", default=["math", "code", "chat", "synth"],
                   help="inputs in the order a cluster keeps its row from (unlisted inputs last, by name)")
    p.add_argument("--seed", type=int, default=1337, help="seed of the permutations and of the tie-break")
    p.add_argument("--samples", type=int, default=5, help="sample clusters in the summary")
    p.add_argument("--batch-size", type=int, default=1024, help="rows read at a time (memory; not output)")
    p.add_argument("--tokenizer-dir", default=None,
                   help="folder with o200k_base.tiktoken (default: $TIKTOKEN_ENCODINGS_BASE)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    started = time.time()
    args = parse_args(argv)
    from distill_data.tokenizer import load_tokenizer

    params = NearDupParams(threshold=args.threshold, num_perm=args.num_perm, shingle_words=args.shingle_words,
                           seed=args.seed, priority=tuple(args.priority), samples=args.samples)
    inputs = open_inputs([parse_input_spec(spec) for spec in args.input])
    table, summary = find_near_duplicates(inputs, params, load_tokenizer(args.tokenizer_dir).tiktoken, args.batch_size)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_drop_list(table, summary, args.output, args.summary)
    write_build_info(args.output.parent, started, sys.argv)
    log.info("%s: %d clusters (%d across inputs, %d straddling the split), %d rows dropped: %s",
             args.output, summary["clusters"], sum(summary["clusters_across_inputs"].values()),
             summary["clusters_straddling_the_split_before_the_policy"], summary["dropped_total"],
             ", ".join(f"{name} {sum(d.values())}" for name, d in summary["dropped"].items()))


if __name__ == "__main__":
    run(main)
