#!/usr/bin/env python3
"""Throughput and peak memory of the three budgeted builders at two input sizes.

    bench/bench_budgeted.py [--out /tmp/bench_budgeted] [--scales 1 10] [--threads 2] [--batch-size 512]

Generates demo sources (the distill_data.demo generators) at each scale, then runs each builder
script in its own process with a budget larger than the source, so that the whole input is
read, and reports rows/s, tokens/s and the peak RSS of that process (os.wait4 gives the
child's own ru_maxrss; RUSAGE_CHILDREN would be the maximum over every child so far). Linux
starts a forked child's ru_maxrss at its parent's RSS, so this process stays small: the
sources are generated in a child process too, and nothing heavy is imported here. Memory
is flat when the peak barely moves while the input grows tenfold. The default batch (512 rows)
is smaller than the workflow's 4096 so that even the small input spans several batches: the
peak is set by the batch, and should not grow with the input. OpenCodeInstruct grows by shards
(1500 rows each, as the real source has more shards, not bigger ones: its memory is bounded by
one row group); oasst2 is held in memory by design (the thread structure: every message's flags,
the texts of prompts and of replies that are followed), so its peak
grows with the messages of the source, which is fixed (135k) in reality.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


PROJECT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT / "workflow_scripts"
UNLIMITED = str(10**12)
CODE_SHARDS, CODE_ROWS_PER_SHARD, MATH_ROWS, CHAT_TREES = 4, 1500, 3000, 600


def builder_commands(raw: Path) -> dict[str, list[str]]:
    return {
        "code": [str(SCRIPTS / "build_opencode_distill.py"), "--input-dir", str(raw / "nvidia__OpenCodeInstruct" / "data")],
        "math": [str(SCRIPTS / "build_nemotron_math_distill.py"), "--input-file",
                 str(raw / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl")],
        "chat": [str(SCRIPTS / "build_oasst2_distill.py"), "--input-dir", str(raw / "OpenAssistant__oasst2")],
    }


def write_sources(raw: Path, scale: float, seed: int = 1337) -> None:
    from distill_data.demo.nemotron import write_nemotron_jsonl
    from distill_data.demo.oasst2 import write_oasst2_source
    from distill_data.demo.opencode import write_opencode_source

    write_opencode_source(raw / "nvidia__OpenCodeInstruct" / "data", round(CODE_SHARDS * scale), CODE_ROWS_PER_SHARD,
                          seed, score_as_string_shards={1})
    write_nemotron_jsonl(raw / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl", round(MATH_ROWS * scale), seed)
    write_oasst2_source(raw / "OpenAssistant__oasst2", round(CHAT_TREES * scale), seed)


def input_bytes(raw: Path, name: str) -> int:
    folder = {"code": "nvidia__OpenCodeInstruct", "math": "nvidia__Nemotron-Math-v2", "chat": "OpenAssistant__oasst2"}[name]
    return sum(p.stat().st_size for p in (raw / folder).rglob("*") if p.is_file())


def run_builder(cmd: list[str], out: Path, threads: int, batch_size: int, log: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one build in a child process."""
    started = time.perf_counter()
    with open(log, "w") as err:
        child = subprocess.Popen([sys.executable, *cmd, "--output-dir", str(out), "--target-total-tokens", UNLIMITED,
                                  "--threads", str(threads), "--batch-size", str(batch_size)], stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}); see {log}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports KiB


def main(argv=None) -> None:
    if argv is None and sys.argv[1:2] == ["--generate"]:
        write_sources(Path(sys.argv[2]), float(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_budgeted"))
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--builders", nargs="+", default=["code", "math", "chat"], choices=["code", "math", "chat"])
    args = p.parse_args(argv)
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        raise SystemExit("set TIKTOKEN_ENCODINGS_BASE to the folder holding o200k_base.tiktoken")
    rows = []
    for scale in args.scales:
        raw = args.out / f"scale{scale:g}" / "raw"
        if not raw.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate", str(raw), str(scale)], check=True)
            print(f"generated scale {scale:g} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for name, cmd in builder_commands(raw).items():
            if name not in args.builders:
                continue
            out = args.out / f"scale{scale:g}" / name
            seconds, peak = run_builder(cmd, out, args.threads, args.batch_size, args.out / f"scale{scale:g}" / f"{name}.log")
            manifest = json.loads((out / "manifest.json").read_text())
            read, tokens = manifest["accounting"]["rows_read"], manifest["total_tokens"]
            rows.append((name, scale, input_bytes(raw, name), read, tokens, seconds, peak))
            print(f"{name} scale {scale:g}: {seconds:.1f} s", file=sys.stderr)
    print(f"{'builder':8} {'scale':>5} {'input MB':>9} {'rows read':>10} {'tokens':>11} {'seconds':>8} "
          f"{'rows/s':>8} {'tokens/s':>10} {'peak RSS MB':>12}")
    for name, scale, size, read, tokens, seconds, peak in sorted(rows):
        print(f"{name:8} {scale:>5g} {size / 1e6:>9.1f} {read:>10} {tokens:>11} {seconds:>8.1f} "
              f"{read / seconds:>8.0f} {tokens / seconds:>10.0f} {peak / 2**20:>12.0f}")


if __name__ == "__main__":
    main()
