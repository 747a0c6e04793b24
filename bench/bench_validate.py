#!/usr/bin/env python3
"""Validator speed and peak memory on built datasets (the demo by default).

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python bench/bench_validate.py [--out demo/distillation_1]
        [--sample-rows N ...]

Runs `python -m distill_data.validate` in a subprocess on each of the four datasets and on the
mix (against its inputs), once per `--sample-rows` value (default: every row, then 0 = no
Harmony round trip), and prints wall time, rows/s, tokens/s, the Harmony round trip's rows/s
and the process's peak RSS (its own rusage).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = {"synth": "synth_distill_phase1_high_550m", "code": "code_opencodeinstruct_55m",
            "math": "math_nemotron_v2_low_55m", "chat": "helpfulness_oasst2_15m"}
MIX = "phase1_mix_8k_665m"


def run(out: Path, name: str, sample_rows: int | None) -> dict:
    directory = out / (MIX if name == "mix" else DATASETS[name])
    inputs = [f"--input={n}={out / d}" for n, d in DATASETS.items()] if name == "mix" else []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "distill_data.validate", str(directory), *inputs, "--report", str(report)]
        if sample_rows is not None:
            cmd += ["--sample-rows", str(sample_rows)]
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)     # this child's own peak RSS
        wall = time.perf_counter() - started
        if status:
            raise SystemExit(f"{' '.join(cmd)} failed ({status})")
        result = json.loads(report.read_text())
    result["wall"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # KB on Linux
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo/distillation_1"), help="the output_root of a build")
    p.add_argument("--sample-rows", type=int, nargs="*", default=None,
                   help="values to try (default: all rows, then 0)")
    args = p.parse_args()
    if not os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
        print("set TIKTOKEN_ENCODINGS_BASE", file=sys.stderr)
        return 2
    samples = args.sample_rows if args.sample_rows else [None, 0]
    print(f"{'dataset':8} {'sample':>7} {'rows':>8} {'tokens':>10} {'wall s':>7} {'rows/s':>8} {'Mtok/s':>7} "
          f"{'RT rows':>8} {'RT rows/s':>9} {'peak RSS':>9}  ok")
    for sample in samples:
        for name in (*DATASETS, "mix"):
            r = run(args.out, name, sample)
            rows = sum(r["rows"].values())
            rt = r["harmony_round_trip"]
            print(f"{name:8} {'all' if sample is None else sample:>7} {rows:>8,} {r['tokens']:>10,} {r['wall']:>7.2f} "
                  f"{rows / r['wall']:>8,.0f} {r['tokens'] / r['wall'] / 1e6:>7.2f} {rt['rows']:>8,} "
                  f"{rt['rows_per_second'] or 0:>9,.0f} {r['peak_rss_mb']:>7.0f} MB  {r['ok']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
