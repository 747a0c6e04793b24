"""One benchmark of every stage, on generated sources in the real schemas.

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python -m distill_data.bench [--scale 1] [--work DIR]
    python -m distill_data.bench rehearsal --out DIR [--tokens 66.5e6]   (distill_data/rehearsal.py)

Generates the four raw sources with the demo generators (`distill_data.demo`; at scale 1:
two SYNTH shards of 50,000 rows, and at least 50,000 rows read by each budgeted builder), runs
every stage as the workflow does, each in its own process (`workflow_scripts/…`), then merges
the four datasets and, separately, a 60M-token mix of contract-format inputs
(`bench/bench_merge.py`'s profile). It prints one table:

- rows: rows read → rows written; tokens: tokens written (len(input_ids), both splits);
- wall s: the stage's process, start to exit (imports, vocabulary and all), tokens/s from it;
- % raw: tiktoken `encode_ordinary` (one thread, one call per text, fastest of three passes)
  on the very texts the stage wrote, timed in this process, as a share of the stage's time (raw s / stage s), by
  wall clock and by CPU time (the CPU ratio is the stable one on a shared machine); over 100%
  means the stage beats tokenizing its own texts;
- harmony tok/s: openai-harmony's `render_conversation_for_training` on (a sample of) the same
  rows, tokens/s, one thread; each of those rows is also checked to equal what was written;
- peak RSS of the stage's process.

The texts of a written row are recovered from its tokens: each message's content is the run of
ordinary tokens after a `<|message|>`, and `decode` then `encode_ordinary` gives back exactly
those tokens (checked). SYNTH is encoded with every quality-passing row kept (`--synth-sampling
all`: the job then tokenizes what it reads, as the issue's measurements did); `real` uses the
Phase-1 plan (~6% of rows kept, so the job mostly reads). Timings on a shared machine move by
±20%: compare the ratios within one run, and use `--repeat` to see the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SCRIPTS = PROJECT / "workflow_scripts"
UNLIMITED = str(10**12)
SYNTH_SHARDS = ("synth_010.parquet", "synth_034.parquet")
# Rows per unit of --scale: SYNTH rows per shard; code shards x rows; math lines; chat trees
SYNTH_ROWS, CODE_SHARDS, CODE_ROWS, MATH_ROWS, CHAT_TREES = 50_000, 4, 12_500, 50_000, 7_000
HARMONY_SAMPLE_ROWS = 1500


@dataclass
class Row:
    stage: str
    rows_read: int | None = None
    rows_written: int | None = None
    tokens: int | None = None
    wall: float | None = None
    cpu: float | None = None
    peak_mb: float | None = None
    raw_s: float | None = None
    raw_cpu: float | None = None
    harmony_tps: float | None = None
    notes: list = field(default_factory=list)


# --- running one stage ------------------------------------------------------------------------

# Runs a command and reports its rusage. A child's peak RSS on Linux starts from its parent's RSS
# at fork (kept across exec), so stages are started from this small launcher, never directly
# from the benchmark process, which holds the texts it measured.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
"""


def run_stage(cmd: list[str], log: Path, env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds) of one command, each in its own process."""
    report = log.with_suffix(".rusage")
    started = time.perf_counter()
    with open(log, "w") as err:
        subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(report), *map(str, cmd)], stdout=err, stderr=err,
                       env={**os.environ, **(env or {})}, check=False)
    wall = time.perf_counter() - started
    status, maxrss_kb, cpu = report.read_text().split()
    if int(status):
        raise SystemExit(f"{' '.join(map(str, cmd))} failed; see {log}")
    return wall, int(maxrss_kb) / 1024, float(cpu)


def script(name: str) -> str:
    path = SCRIPTS / name
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the benchmark from a checkout of the project")
    return str(path)


# --- sources ----------------------------------------------------------------------------------

def generate(raw: Path, scale: float, seed: int = 1337) -> None:
    from .demo.nemotron import write_nemotron_jsonl
    from .demo.oasst2 import write_oasst2_source
    from .demo.opencode import write_opencode_source
    from .demo.synth import write_synth_source

    write_synth_source(raw / "pleias_synth", list(SYNTH_SHARDS), round(SYNTH_ROWS * scale), seed)
    write_opencode_source(raw / "code", CODE_SHARDS, round(CODE_ROWS * scale), seed)
    write_nemotron_jsonl(raw / "math" / "low.jsonl", round(MATH_ROWS * scale), seed)
    write_oasst2_source(raw / "chat", round(CHAT_TREES * scale), seed)


# --- the texts a dataset holds, and the two references ------------------------------------------

def written_tokens(paths: list[Path]):
    """(flat tokens, offsets) of every row of these parquet or Arrow IPC files."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks = []
    for path in paths:
        if path.suffix == ".arrow":
            with pa.memory_map(str(path)) as source:
                chunks.append(pa.ipc.open_file(source).read_all().column("input_ids"))
        else:
            chunks.append(pq.read_table(path, columns=["input_ids"]).column("input_ids"))
    ids = pa.chunked_array([c for chunk in chunks for c in chunk.chunks], pa.list_(pa.int32())).combine_chunks()
    offsets = ids.offsets.to_numpy().astype(np.int64)
    return ids.values.to_numpy()[offsets[0]:offsets[-1]], offsets - offsets[0]


def message_texts(tokenizer, tokens, offsets):
    """Per row, the decoded content of each message after the system one, and the ordinary
    token count of all of them (from the written tokens)."""
    import numpy as np

    message = tokenizer.tiktoken.encode_single_token("<|message|>")
    special = tokens >= min(tokenizer.tiktoken._special_tokens.values())
    special_at = np.flatnonzero(special)
    rows, ordinary = [], 0
    decode = tokenizer.tiktoken.decode_bytes
    for i in range(len(offsets) - 1):
        lo, hi = offsets[i], offsets[i + 1]
        marks = special_at[np.searchsorted(special_at, lo):np.searchsorted(special_at, hi)]
        contents = []
        for a, b in zip(marks[:-1], marks[1:]):
            if tokens[a] == message:
                contents.append(tokens[a + 1:b])
        contents = contents[1:]  # the system message is a constant frame
        ordinary += sum(len(c) for c in contents)
        rows.append([decode(c.tolist()).decode("utf-8") for c in contents])
    return rows, ordinary


def raw_encode_seconds(tokenizer, rows, expected_tokens: int, tries: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds of encode_ordinary over the texts, one thread: the fastest of
    `tries` passes (on a shared machine one pass can take twice as long as another)."""
    texts = [t for row in rows for t in row]
    encode = tokenizer.tiktoken.encode_ordinary
    best = None
    for _ in range(tries):
        started, cpu = time.perf_counter(), time.thread_time()
        total = sum(len(encode(t)) for t in texts)
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        if total != expected_tokens:
            raise SystemExit(f"decode/encode round trip gave {total} tokens, the rows hold {expected_tokens}")
        best = (seconds, cpu) if best is None or seconds < best[0] else best
    return best


def harmony_tokens_per_second(tokenizer, rows, tokens, offsets, effort: str = "high") -> float | None:
    """openai-harmony's training render on up to HARMONY_SAMPLE_ROWS rows of the two- or
    three-message shape, each checked against the written tokens."""
    from openai_harmony import RenderConversationConfig

    from .render import harmony_conversation

    config = RenderConversationConfig(auto_drop_analysis=False)
    render = tokenizer.harmony.render_conversation_for_training
    picked = [i for i, row in enumerate(rows) if len(row) in (2, 3)][:HARMONY_SAMPLE_ROWS]
    if not picked:
        return None
    conversations = []
    for i in picked:
        row = rows[i]
        prompt, reasoning, final = (row[0], row[1], row[2]) if len(row) == 3 else (row[0], "", row[1])
        conversations.append(harmony_conversation(prompt, reasoning, final, effort))
    started = time.perf_counter()
    rendered = [render(conv, config) for conv in conversations]
    seconds = time.perf_counter() - started
    for i, ids in zip(picked, rendered):
        if list(ids) != tokens[offsets[i]:offsets[i + 1]].tolist():
            raise SystemExit(f"row {i}: openai-harmony renders other tokens than were written")
    return sum(len(r) for r in rendered) / seconds


def measure_texts(row: Row, tokenizer, paths: list[Path]) -> None:
    tokens, offsets = written_tokens(paths)
    texts, ordinary = message_texts(tokenizer, tokens, offsets)
    row.raw_s, row.raw_cpu = raw_encode_seconds(tokenizer, texts, ordinary)
    row.harmony_tps = harmony_tokens_per_second(tokenizer, texts, tokens, offsets)


def dataset_files(folder: Path) -> list[Path]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [folder / f["path"] for split in ("train", "validation") for f in manifest["files"][split]]


# --- the stages -------------------------------------------------------------------------------

START_CODE = ("import argparse; from distill_data.cli import add_encoding_args, make_encoder; "
              "p = argparse.ArgumentParser(); add_encoding_args(p); make_encoder(p.parse_args([]))")


def job_start(rows: list[Row], logs: Path) -> None:
    env_off = {"DISTILL_RENDER_CHECK_DIR": "off"}
    wall, peak, cpu = run_stage([sys.executable, "-c", START_CODE], logs / "start_cold.log", env_off)
    rows.append(Row("job start, self-check run", wall=wall, cpu=cpu, peak_mb=peak))
    run_stage([sys.executable, "-c", START_CODE], logs / "start_record.log")  # make sure it is recorded
    wall, peak, cpu = run_stage([sys.executable, "-c", START_CODE], logs / "start.log")
    rows.append(Row("job start, self-check recorded", wall=wall, cpu=cpu, peak_mb=peak))


def synth_stages(rows: list[Row], tokenizer, raw: Path, work: Path, logs: Path, threads: int, sampling: str,
                 batch_size: int) -> Path:
    flags = ["--global-keep", "1", "--memorization-cap", "1", "--english-frac", "0"] if sampling == "all" else []
    run = [sys.executable, script("build_synth_distill.py")]
    shards = [raw / "pleias_synth" / name for name in SYNTH_SHARDS]
    stem = [Path(n).stem for n in SYNTH_SHARDS]
    for s, shard in zip(stem, shards):
        wall, peak, cpu = run_stage([*run, "--stage", "scan", "--shard", str(shard), "--scan-mask", str(work / f"{s}.mask.parquet"),
                                "--scan-summary", str(work / f"{s}.scan.json"), "--batch-size", str(batch_size)], logs / f"scan_{s}.log")
        summary = json.loads((work / f"{s}.scan.json").read_text())
        rows.append(Row(f"synth scan {s}", rows_read=summary["rows"], wall=wall, cpu=cpu, peak_mb=peak))
    summaries = [str(work / f"{s}.scan.json") for s in stem]
    masks = [str(work / f"{s}.mask.parquet") for s in stem]
    duplicates = [str(work / f"{s}.duplicates.json") for s in stem]
    wall, peak, cpu = run_stage([*run, "--stage", "plan", "--scan-summary", *summaries, "--scan-mask", *masks,
                                 "--duplicates", *duplicates, "--plan", str(work / "plan.json"), *flags], logs / "plan.log")
    rows.append(Row("synth plan", wall=wall, cpu=cpu, peak_mb=peak))
    for s, shard in zip(stem, shards):
        wall, peak, cpu = run_stage([*run, "--stage", "encode", "--shard", str(shard), "--scan-mask", str(work / f"{s}.mask.parquet"),
                                "--plan", str(work / "plan.json"), "--duplicates", str(work / f"{s}.duplicates.json"),
                                "--encoded-dir", str(work / "encoded"),
                                "--shard-stats", str(work / f"{s}.stats.json"), "--threads", str(threads),
                                "--batch-size", str(batch_size), *flags], logs / f"encode_{s}.log")
        stats = json.loads((work / f"{s}.stats.json").read_text())
        row = Row(f"synth encode {s} ({threads} thr)", rows_read=stats["accounting"]["rows_read"],
                  rows_written=stats["accounting"]["rows_written_total"], tokens=stats["total_tokens"], wall=wall, cpu=cpu, peak_mb=peak)
        measure_texts(row, tokenizer, sorted(p for p in (work / "encoded").glob(f"{s}.*")
                                             if p.suffix in (".arrow", ".parquet")))
        rows.append(row)
    out = work / "synth"
    wall, peak, cpu = run_stage([*run, "--stage", "finalize", "--output-dir", str(out), "--shard", *map(str, shards),
                            "--scan-summary", *summaries, "--shard-stats", *(str(work / f"{s}.stats.json") for s in stem),
                            "--plan", str(work / "plan.json"), "--encoded-dir", str(work / "encoded"),
                            "--threads", str(threads), *flags], logs / "finalize.log")
    manifest = json.loads((out / "manifest.json").read_text())
    rows.append(Row("synth finalize", rows_written=manifest["accounting"]["rows_written_total"],
                    tokens=manifest["total_tokens"], wall=wall, cpu=cpu, peak_mb=peak))
    return out


def budgeted_stage(rows: list[Row], tokenizer, name: str, cmd: list[str], out: Path, logs: Path, threads: int,
                   batch_size: int) -> Path:
    wall, peak, cpu = run_stage([sys.executable, *cmd, "--output-dir", str(out), "--target-total-tokens", UNLIMITED,
                            "--threads", str(threads), "--batch-size", str(batch_size)], logs / f"{name}.log")
    manifest = json.loads((out / "manifest.json").read_text())
    row = Row(f"{name} build ({threads} thr)", rows_read=manifest["accounting"]["rows_read"],
              rows_written=manifest["accounting"]["rows_written_total"], tokens=manifest["total_tokens"], wall=wall,
              cpu=cpu, peak_mb=peak)
    measure_texts(row, tokenizer, dataset_files(out))
    rows.append(row)
    return out


def merge_stage(rows: list[Row], label: str, inputs: dict[str, Path], out: Path, logs: Path, threads: int) -> None:
    os.sync()  # the inputs' writeback would otherwise slow the merge's own I/O
    wall, peak, cpu = run_stage([sys.executable, script("merge_distill_datasets.py"),
                            *(f"--input={k}={v}" for k, v in inputs.items()), "--output-dir", str(out),
                            "--threads", str(threads)], logs / f"{out.name}.log")
    manifest = json.loads((out / "manifest.json").read_text())
    rows.append(Row(label, rows_read=manifest["accounting"]["rows_read"],
                    rows_written=manifest["accounting"]["rows_written_total"], tokens=manifest["total_tokens"],
                    wall=wall, cpu=cpu, peak_mb=peak))


# --- the table --------------------------------------------------------------------------------

def fmt_rows(row: Row) -> str:
    if row.rows_read is None and row.rows_written is None:
        return ""
    if row.rows_read is None:
        return f"{row.rows_written:,}"
    if row.rows_written is None:
        return f"{row.rows_read:,}"
    return f"{row.rows_read:,} → {row.rows_written:,}"


def table(rows: list[Row]) -> str:
    head = ["stage", "rows", "tokens", "wall s", "CPU s", "tokens/s", "% raw encode_ordinary (wall / CPU)",
            "harmony tok/s", "peak RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        tps = f"{r.tokens / r.wall / 1e6:.2f}M" if r.tokens and r.wall else ""
        raw = f"{100 * r.raw_s / r.wall:.0f}% / {100 * r.raw_cpu / r.cpu:.0f}%" if r.raw_s and r.cpu else ""
        harmony = f"{r.harmony_tps / 1e6:.2f}M" if r.harmony_tps else ""
        cells = [r.stage, fmt_rows(r), f"{r.tokens / 1e6:.1f}M" if r.tokens else "", f"{r.wall:.2f}",
                 f"{r.cpu:.2f}" if r.cpu is not None else "", tps, raw, harmony, f"{r.peak_mb:,.0f} MB"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["rehearsal"]:
        from .rehearsal import main as rehearsal

        return rehearsal(argv[1:])
    p = argparse.ArgumentParser(prog="python -m distill_data.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every generated source (default: 50k rows each)")
    p.add_argument("--work", type=Path, default=None, help="folder for sources and outputs (default: a temp dir); "
                   "generated sources in it are reused")
    p.add_argument("--threads", type=int, default=2, help="--threads of every stage")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--synth-sampling", choices=["all", "real"], default="all",
                   help="all: keep every quality-passing SYNTH row; real: the Phase-1 plan")
    p.add_argument("--merge-tokens", type=float, default=60e6, help="tokens of the generated merge benchmark (0: skip)")
    p.add_argument("--stages", default="start,synth,code,math,chat,merge", help="comma-separated subset")
    p.add_argument("--repeat", type=int, default=1, help="run everything this many times (one table each)")
    args = p.parse_args(argv)
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        raise SystemExit("set TIKTOKEN_ENCODINGS_BASE to the folder holding o200k_base.tiktoken")
    stages = set(args.stages.split(","))
    from .tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp:
        work = args.work or Path(tmp)
        raw = work / f"raw-scale{args.scale:g}"
        if not (raw / "done").exists():
            started = time.perf_counter()
            generate(raw, args.scale)
            (raw / "done").write_text("")
            print(f"generated sources (scale {args.scale:g}) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        merge_inputs = work / f"merge-inputs-{args.merge_tokens:g}"
        if args.merge_tokens and "merge" in stages and not (merge_inputs / "done").exists():
            sys.path.insert(0, str(PROJECT / "bench"))
            from bench_merge import generate as generate_merge_inputs

            generate_merge_inputs(merge_inputs, args.merge_tokens, 2000)
            (merge_inputs / "done").write_text("")
        for repeat in range(args.repeat):
            run_dir = work / f"run{repeat}"
            logs = run_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            rows: list[Row] = []
            datasets: dict[str, Path] = {}
            if "start" in stages:
                job_start(rows, logs)
            if "synth" in stages:
                (run_dir / "synth_work").mkdir(exist_ok=True)
                datasets["synth"] = synth_stages(rows, tokenizer, raw, run_dir / "synth_work", logs, args.threads,
                                                 args.synth_sampling, args.batch_size)
            commands = {
                "code": [script("build_opencode_distill.py"), "--input-dir", str(raw / "code")],
                "math": [script("build_nemotron_math_distill.py"), "--input-file", str(raw / "math" / "low.jsonl")],
                "chat": [script("build_oasst2_distill.py"), "--input-dir", str(raw / "chat")],
            }
            for name, cmd in commands.items():
                if name in stages:
                    datasets[name] = budgeted_stage(rows, tokenizer, name, cmd, run_dir / name, logs, args.threads,
                                                    args.batch_size)
            if "merge" in stages:
                if len(datasets) == 4:
                    merge_stage(rows, f"merge of the above ({args.threads} thr)", datasets, run_dir / "mix", logs, args.threads)
                if args.merge_tokens:
                    inputs = {n: merge_inputs / n for n in ("synth", "code", "math", "chat")}
                    merge_stage(rows, f"merge, {args.merge_tokens / 1e6:g}M-token benchmark ({args.threads} thr)", inputs,
                                run_dir / "mix60", logs, args.threads)
            print(f"\nrun {repeat + 1} of {args.repeat}, scale {args.scale:g}, SYNTH sampling {args.synth_sampling}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
