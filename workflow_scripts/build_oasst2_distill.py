#!/usr/bin/env python3
"""Build `helpfulness_oasst2_15m` from the OpenAssistant/oasst2 message parquet files.

One example per prompter message that has an acceptable reply: its best reply (lowest rank),
with the thread from the root before it (earlier turns, unless --no-include-history); replies
below a deleted or unreviewed message are dropped; non-English threads downsampled so that
English is at least --english-frac; taken in read order (sorted files, then rows; with --order
spread, message trees in a seeded order) until the
token budget (the real source runs out first):
    build_oasst2_distill.py --input-dir /data/raw_0/OpenAssistant__oasst2 \
        --output-dir /data/distillation_1/helpfulness_oasst2_15m
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill_data import budget
from distill_data.builders import oasst2
from distill_data.cli import check_args, run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-dir", type=Path, default=Path("/data/raw_0/OpenAssistant__oasst2"),
                   help="folder holding the message parquet files (searched recursively)")
    p.add_argument("--english-frac", type=float, default=0.90,
                   help="least share of examples whose thread is English (root lang 'en') among those kept")
    p.add_argument("--require-rank-zero", action=argparse.BooleanOptionalAction, default=True,
                   help="one example per prompt, its best reply (lowest rank; unranked only when no sibling "
                        "is ranked); --no-require-rank-zero makes every acceptable reply an example")
    p.add_argument("--include-history", action=argparse.BooleanOptionalAction, default=True,
                   help="put the thread's earlier turns before the prompt; --no-include-history renders "
                        "the prompter message alone")
    budget.add_budget_args(p, "helpfulness_oasst2_15m", 15_000_000)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    check_args(args, {"target_total_tokens": "chat.target_total_tokens", "english_frac": "chat.english_frac"},
               "threads.budgeted")
    if not 0 <= args.english_frac <= 1:
        raise ValueError(f"--english-frac must be between 0 and 1, got {args.english_frac}")
    params = oasst2.Oasst2Params(**budget.common_params(args), english_frac=args.english_frac,
                                 require_rank_zero=args.require_rank_zero,
                                 include_history=args.include_history)

    def source():
        files = budget.find_input_files(args.input_dir, "*.parquet", "--input-dir", recursive=True)
        return oasst2.Oasst2Source(files, params.english_frac, params.require_rank_zero, params.seed,
                                   args.batch_size, params.include_history, params.order)

    budget.run_script(args, source, params)


if __name__ == "__main__":
    run(main)
