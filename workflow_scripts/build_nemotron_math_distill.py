#!/usr/bin/env python3
"""Build `math_nemotron_v2_low_55m` from nvidia/Nemotron-Math-v2 JSON lines.

Streams the files line by line in the order given (or, with --order spread, blocks of lines
in a seeded order over all of them); prompt = first user message, analysis =
the last assistant message's `reasoning_content`, final = its `content`; rows taken until the
token budget is reached:
    build_nemotron_math_distill.py --input-file /data/raw_0/nvidia__Nemotron-Math-v2/data/low.jsonl \
        --output-dir /data/distillation_1/math_nemotron_v2_low_55m
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill_data import budget, spread
from distill_data.builders import nemotron
from distill_data.cli import check_args, run

DEFAULT_INPUT = Path("/data/raw_0/nvidia__Nemotron-Math-v2/data/low.jsonl")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-file", type=Path, nargs="+", action="extend", default=None,
                   help=f"JSON-lines file(s), read in the order given; repeatable (default: {DEFAULT_INPUT})")
    p.add_argument("--drop-tool-rows", action=argparse.BooleanOptionalAction, default=True,
                   help="drop tool rows: `tools` non-empty, or a message with non-empty `tool_calls` or role `tool`")
    p.add_argument("--max-bad-line-frac", type=float, default=0.01,
                   help="stop with an error when more than this share of a file's lines is not a JSON object")
    p.add_argument("--spread-block-bytes", type=int, default=spread.DEFAULT_BLOCK_BYTES,
                   help="with --order spread: the lines starting in one window of this many bytes form a block")
    budget.add_budget_args(p, "math_nemotron_v2_low_55m", 55_000_000)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    check_args(args, {"target_total_tokens": "math.target_total_tokens",
                      "max_bad_line_frac": "math.max_bad_line_frac",
                      "spread_block_bytes": "math.spread_block_bytes"}, "threads.budgeted")
    params = nemotron.NemotronParams(**budget.common_params(args), drop_tool_rows=args.drop_tool_rows,
                                     max_bad_line_frac=args.max_bad_line_frac,
                                     spread_block_bytes=args.spread_block_bytes)
    files = args.input_file or [DEFAULT_INPUT]
    budget.run_script(args, lambda: nemotron.NemotronSource(files, params.drop_tool_rows, params.max_bad_line_frac,
                                                            params.order, params.spread_block_bytes, params.seed),
                      params)


if __name__ == "__main__":
    run(main)
