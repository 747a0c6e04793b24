"""Write a small, deterministic imitation of the four raw sources.

    python -m distill_data.demo --out DIR [--seed 1337] [--scale 1.0] [--sources synth,code,math,chat]

Layout (as the workflow expects the real downloads)::

    DIR/pleias_synth/synth_010.parquet …          6 shards × 1500 rows
    DIR/synth_phase1_shards.txt                    those shard names, one per line
    DIR/nvidia__OpenCodeInstruct/data/train-0000i-of-00004.parquet   4 × 1500 rows, shard 1 string scores
    DIR/nvidia__Nemotron-Math-v2/data/low.jsonl    3000 rows
    DIR/OpenAssistant__oasst2/data/{train,validation}-…parquet       600 trees

``--scale`` multiplies the row and tree counts. The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill_data.demo.nemotron import write_nemotron_jsonl
from distill_data.demo.oasst2 import write_oasst2_source
from distill_data.demo.opencode import write_opencode_source
from distill_data.demo.synth import write_synth_source

#: The first shards of the real Phase-1 subset, so the demo exercises the real names.
DEMO_SYNTH_SHARDS = ("synth_010.parquet", "synth_034.parquet", "synth_056.parquet",
                     "synth_061.parquet", "synth_085.parquet", "synth_088.parquet")
SYNTH_ROWS_PER_SHARD = 1500
CODE_SHARDS = 4
CODE_ROWS_PER_SHARD = 1500
CODE_STRING_SCORE_SHARDS = frozenset({1})
MATH_ROWS = 3000
CHAT_TREES = 600
SOURCES = ("synth", "code", "math", "chat")


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def write_demo(out: Path, seed: int = 1337, scale: float = 1.0,
               sources: tuple[str, ...] = SOURCES) -> list[Path]:
    """Write the selected sources under ``out``; returns every file written, in order."""
    written: list[Path] = []
    if "synth" in sources:
        written += write_synth_source(out / "pleias_synth", list(DEMO_SYNTH_SHARDS),
                                      _scaled(SYNTH_ROWS_PER_SHARD, scale), seed)
        listing = out / "synth_phase1_shards.txt"
        listing.write_text("".join(f"{name}\n" for name in DEMO_SYNTH_SHARDS), encoding="utf-8")
        written.append(listing)
    if "code" in sources:
        written += write_opencode_source(out / "nvidia__OpenCodeInstruct" / "data", CODE_SHARDS,
                                         _scaled(CODE_ROWS_PER_SHARD, scale), seed,
                                         score_as_string_shards=CODE_STRING_SCORE_SHARDS)
    if "math" in sources:
        written.append(write_nemotron_jsonl(out / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl",
                                            _scaled(MATH_ROWS, scale), seed))
    if "chat" in sources:
        written += write_oasst2_source(out / "OpenAssistant__oasst2", _scaled(CHAT_TREES, scale), seed)
    return written


def _sources(value: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown sources {unknown}; choose from {','.join(SOURCES)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_data.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies rows / trees")
    parser.add_argument("--sources", type=_sources, default=SOURCES,
                        help="comma-separated subset of synth,code,math,chat")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    for path in write_demo(args.out, args.seed, args.scale, args.sources):
        print(f"{path}\t{path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
