#!/usr/bin/env python3
"""Merge throughput and peak memory on a generated mix.

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python bench/bench_merge.py [--tokens 60e6] [--threads 2]

Writes four builder datasets in the CONTRACT.md format with synthetic token ids (shares of
total tokens 81/8/8/3%, like synth/code/math/chat, with different row-length profiles), runs
workflow_scripts/merge_distill_datasets.py on them in a subprocess, and prints tokens/s, rows/s
and the merge process's peak RSS (its own rusage; the generator runs in another process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from distill_data.demo.contract import write_contract_dataset

PROJECT = Path(__file__).resolve().parent.parent
# name: (share of total tokens, mean prompt tokens, mean assistant tokens, share of rows with analysis)
PROFILES = {
    "synth": (0.81, 250, 600, 0.9),
    "code": (0.08, 300, 900, 0.0),
    "math": (0.08, 120, 2000, 1.0),
    "chat": (0.03, 80, 350, 0.0),
}


def generate(root: Path, tokens: float, rows_per_file: int) -> dict:
    written = {}
    for seed, (name, (token_share, prompt, assistant, analysis)) in enumerate(PROFILES.items()):
        rows = max(1, int(tokens * token_share / (prompt + assistant + 22)))
        written[name] = write_contract_dataset(root / name, name=name, rows=rows, seed=seed, mean_prompt=prompt,
                                               mean_assistant=assistant, analysis_frac=analysis,
                                               rows_per_file=rows_per_file)
    return written


def run_measured(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one child process, from its own rusage
    (wait4), so that no other child of this process counts."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"merge failed with exit code {child.returncode}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=float, default=60e6, help="total tokens of the generated inputs")
    parser.add_argument("--threads", type=int, default=2, help="--threads of the merge")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rows-per-file", type=int, default=2000)
    parser.add_argument("--weight-by", default="assistant_tokens")
    parser.add_argument("--work", type=Path, default=None, help="folder for the inputs and the mix (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        # in a child process, so that this one stays small while the merge runs
        with ProcessPoolExecutor(max_workers=1) as pool:
            inputs = pool.submit(generate, root, args.tokens, args.rows_per_file).result()
        total = sum(m["total_tokens"] for m in inputs.values())
        rows = sum(sum(m["rows"].values()) for m in inputs.values())
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        print(f"generated {rows:,} rows, {total:,} tokens, {size / 1e6:.0f} MB parquet in {time.perf_counter() - t0:.1f} s")

        cmd = [sys.executable, str(PROJECT / "workflow_scripts" / "merge_distill_datasets.py"),
               *(f"--input={name}={root / name}" for name in PROFILES),
               "--output-dir", str(root / "mix"), "--weight-by", args.weight_by, "--seed", "1337",
               "--rows-per-shard", str(args.rows_per_file), "--threads", str(args.threads),
               "--batch-size", str(args.batch_size)]
        os.sync()  # the generated files' writeback would otherwise slow the merge's own I/O
        seconds, cpu, peak_mb = run_measured(cmd)
        manifest = json.loads((root / "mix" / "manifest.json").read_text())
        assert manifest["total_tokens"] == total and manifest["accounting"]["rows_written_total"] == rows
        deviation = manifest["composition"]["train"]["prefix_deviation"]
        shares = {k: v["target_share"] for k, v in manifest["composition"]["train"]["inputs"].items()}
        print(f"merge: {seconds:.1f} s wall ({cpu:.1f} s CPU), {total / seconds / 1e6:.1f} M tokens/s, "
              f"{rows / seconds:,.0f} rows/s, peak RSS {peak_mb:.0f} MB (threads {args.threads}, batch {args.batch_size})")
        print(f"train shares by {args.weight_by}: " + ", ".join(f"{k} {v:.4f}" for k, v in shares.items()))
        print(f"worst prefix deviation: {deviation['max_deviation_in_B']:.3f} B, "
              f"{deviation['max_pp_at_1pct_prefixes']:.4f} pp at 1% prefixes")


if __name__ == "__main__":
    main()
