"""Command-line pieces the builder scripts share: common flags, logging, clean failures."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable

from .encode import SPLIT_BY, ExampleEncoder
from .io import SourceError
from .render import REASONING_EFFORTS, HarmonyRenderer
from .tokenizer import TokenizerError, load_tokenizer

log = logging.getLogger("distill_data")


def add_encoding_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rendering and output")
    group.add_argument("--max-seq-len", type=int, default=8192, help="drop (never cut) longer rows")
    group.add_argument("--seed", type=int, default=1337, help="seed of every hash decision")
    group.add_argument("--train-frac", type=float, default=0.99, help="share of rows in train")
    group.add_argument("--reasoning-level", choices=REASONING_EFFORTS, default="high",
                       help="reasoning effort written into the system message")
    group.add_argument("--split-by", choices=SPLIT_BY, default="group",
                       help="decide train/validation by the example's group (one problem on one side) "
                            "or by its own id (the original rule)")
    group.add_argument("--rows-per-file", type=int, default=2000, help="rows per output parquet file")
    group.add_argument("--batch-size", type=int, default=4096, help="rows read and encoded at a time")
    group.add_argument("--threads", type=int, default=1, help="tokenizer threads (output does not depend on it)")
    group.add_argument("--tokenizer-dir", default=None,
                       help="folder with o200k_base.tiktoken (default: $TIKTOKEN_ENCODINGS_BASE)")


# The shared flags and the config keys whose bounds they obey (config.check_args).
ENCODING_KEYS = {"max_seq_len": "common.max_seq_len", "train_frac": "common.train_frac",
                 "rows_per_file": "common.rows_per_file", "batch_size": "common.batch_size"}


def check_args(args: argparse.Namespace, keys: dict[str, str], threads_key: str = "threads.encode") -> None:
    """The script's values within the config schema's bounds (shared flags included)."""
    from .config import check_args as check

    check(args, {**ENCODING_KEYS, "threads": threads_key, **keys})


def make_encoder(args: argparse.Namespace) -> ExampleEncoder:
    tokenizer = load_tokenizer(args.tokenizer_dir)
    renderer = HarmonyRenderer(tokenizer, args.reasoning_level, args.threads)
    return ExampleEncoder(renderer, args.max_seq_len, args.seed, args.train_frac, args.split_by)


def run(main: Callable[[], None]) -> None:
    """Run a builder entry point: progress on stderr, known errors as one clear line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    started = time.time()
    try:
        main()
    except (SourceError, TokenizerError, ValueError) as exc:
        log.error("%s", exc)
        sys.exit(2)
    log.info("done in %.1f s", time.time() - started)
