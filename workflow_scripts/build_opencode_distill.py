#!/usr/bin/env python3
"""Build `code_opencodeinstruct_55m` from nvidia/OpenCodeInstruct parquet shards.

Rows whose unit tests all passed (`average_test_score` 1.0), prompt = `input`, final =
`output`, taken in shard order (or, with --order spread, slices of rows in a seeded order over
all shards) until the token budget is reached:
    build_opencode_distill.py --input-dir /datasets/nvidia__OpenCodeInstruct/data \
        --output-dir /data/distillation_1/code_opencodeinstruct_55m
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill_data import budget, spread
from distill_data.builders import opencode
from distill_data.cli import check_args, run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-dir", type=Path, default=Path("/datasets/nvidia__OpenCodeInstruct/data"),
                   help="folder of the *.parquet shards")
    p.add_argument("--shuffle-shards", action=argparse.BooleanOptionalAction, default=True,
                   help="read shards in random.Random(seed).shuffle(sorted(paths)) order (else sorted); "
                        "with --order spread the shards are sorted and their slices shuffled")
    p.add_argument("--spread-block-rows", type=int, default=spread.DEFAULT_BLOCK_ROWS,
                   help="with --order spread: rows of a shard per block")
    budget.add_budget_args(p, "code_opencodeinstruct_55m", 55_000_000)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    check_args(args, {"target_total_tokens": "code.target_total_tokens",
                      "spread_block_rows": "code.spread_block_rows"}, "threads.budgeted")
    params = opencode.OpenCodeParams(**budget.common_params(args), shuffle_shards=args.shuffle_shards,
                                     spread_block_rows=args.spread_block_rows)

    def source():
        shards = budget.find_input_files(args.input_dir, "*.parquet", "--input-dir")
        return opencode.OpenCodeSource(shards, params.shuffle_shards, params.seed, params.order,
                                       params.spread_block_rows)

    budget.run_script(args, source, params)


if __name__ == "__main__":
    run(main)
