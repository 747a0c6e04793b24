"""Rehearsal: the whole workflow from raw at a fraction of the real size, with the plain command.

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python -m distill_data.bench rehearsal \\
        --out DIR [--tokens 66.5e6] [--jobs 2] [--update-docs]

1. Generates the four sources with the demo generators, each sized so that it gives
   `--tokens / 665M` of its real share (SYNTH 550M, code 55M, math 55M, chat 15M): SYNTH in
   shards of a real shard's 155,000 rows, named as the first Phase-1 shards; the budgeted
   sources a third larger than their scaled budget, so that the budget stops them.
2. Writes a config for them (the real parameters, budgets scaled) and runs
   `snakemake -j N --configfile CFG -- phase1_mix_8k_665m` from raw, timing the whole run; then
   the same command again (nothing to do) and its dry run (`-n`).
3. Reads every job's Snakemake benchmark TSV (`<work>/logs/…benchmark.tsv`) and prints, per
   rule: jobs, wall, CPU seconds, tokens, tokens/s/core, peak RSS, bytes of its outputs; the
   issue's targets (tiktoken's raw `encode_ordinary` on the very texts each job wrote, as in
   `python -m distill_data.bench`); and the projection to the real size on a 20-core node
   (`distill_data.rehearsal_projection`), with its assumptions.
4. Writes DIR/rehearsal.md and DIR/rehearsal.json; `--update-docs` also writes the JSON to
   docs/rehearsal.json and rewrites the marked block of docs/benchmarks.md from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .rehearsal_report import (DOCS_JSON, REAL_MIX, REAL_TOKENS, TARGET, project_costs, render, targets,
                               update_docs)

PROJECT = Path(__file__).resolve().parents[2]
# Generated units each source needs per token written, measured on the demo sources with the
# real parameters (config.demo.yaml's run); the run prints what each source actually gave.
# (math: 285 per line over a whole generated file; its first lines give more, 404 in the demo's run)
TOKENS_PER_UNIT = {"synth": 35.5, "code": 77.9, "math": 285.0, "chat": 806.0}  # per row, row, line, tree
HEADROOM = 1.3          # budgeted sources hold this much more than their budget
SYNTH_ROWS_PER_SHARD = 155_000   # a real Phase-1 shard
CODE_ROWS_PER_SHARD = 10_000
SEED = 1337


def source_sizes(tokens: float) -> dict:
    """What to generate for a mix of about `tokens` (the real shares scaled by tokens / 665M)."""
    fraction = tokens / REAL_MIX
    synth_rows = REAL_TOKENS["synth"] * fraction / TOKENS_PER_UNIT["synth"]
    shards = max(2, math.ceil(synth_rows / SYNTH_ROWS_PER_SHARD))
    budgets = {name: round(REAL_TOKENS[name] * fraction) for name in ("code", "math", "chat")}
    code_rows = budgets["code"] * HEADROOM / TOKENS_PER_UNIT["code"]
    code_shards = max(2, math.ceil(code_rows / CODE_ROWS_PER_SHARD))
    return {
        "fraction": fraction,
        "synth_shards": shards,
        "synth_rows_per_shard": math.ceil(synth_rows / shards),
        "code_shards": code_shards,
        "code_rows_per_shard": math.ceil(code_rows / code_shards),
        "math_lines": math.ceil(budgets["math"] * HEADROOM / TOKENS_PER_UNIT["math"]),
        "chat_trees": math.ceil(budgets["chat"] * HEADROOM / TOKENS_PER_UNIT["chat"]),
        "budgets": budgets,
    }


def generate(raw: Path, sizes: dict) -> None:
    from .demo.nemotron import write_nemotron_jsonl
    from .demo.oasst2 import write_oasst2_source
    from .demo.opencode import write_opencode_source
    from .demo.synth import write_synth_source

    names = (PROJECT / "data" / "distillation_1" / "synth_phase1_shards.txt").read_text().split()
    if sizes["synth_shards"] > len(names):
        raise SystemExit(f"--tokens asks for {sizes['synth_shards']} SYNTH shards; the Phase-1 list has {len(names)}")
    names = names[:sizes["synth_shards"]]
    write_synth_source(raw / "pleias_synth", names, sizes["synth_rows_per_shard"], SEED)
    (raw / "synth_shards.txt").write_text("".join(f"{n}\n" for n in names))
    write_opencode_source(raw / "code", sizes["code_shards"], sizes["code_rows_per_shard"], SEED)
    write_nemotron_jsonl(raw / "math" / "low.jsonl", sizes["math_lines"], SEED)
    write_oasst2_source(raw / "chat", sizes["chat_trees"], SEED)


def write_config(out: Path, raw: Path, sizes: dict) -> Path:
    budgets = sizes["budgets"]
    config = {
        "output_root": str(out / "out"),
        "synth": {"raw_root": str(raw / "pleias_synth"), "subset_dir": str(out / "subset"),
                  "shard_list": str(raw / "synth_shards.txt")},
        "code": {"input_dir": str(raw / "code"), "target_total_tokens": budgets["code"]},
        "math": {"input_files": [str(raw / "math" / "low.jsonl")], "target_total_tokens": budgets["math"]},
        "chat": {"input_dir": str(raw / "chat"), "target_total_tokens": budgets["chat"]},
    }
    path = out / "config.yaml"
    path.write_text("# The rehearsal: config.yaml's parameters and threads, sources and budgets scaled.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


# --- running Snakemake ----------------------------------------------------------------------------

def snakemake_command(jobs: int, config: Path, *extra: str) -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    return [*head, "-j", str(jobs), "--configfile", str(config), *extra, "--", TARGET]


def timed_run(cmd: list[str], project: Path, log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(project / "src"), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    seconds = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); see {log}:\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


JOB_HEAD = re.compile(r"^(?:local)?rule (\w+):$")


def jobs_of_log(text: str) -> list[dict]:
    """Every job the run's log announces: {rule, outputs, benchmark}."""
    jobs, current = [], None
    for line in text.splitlines():
        head = JOB_HEAD.match(line.strip())
        if head and not line.startswith(" "):
            current = {"rule": head.group(1), "outputs": [], "benchmark": None}
            jobs.append(current)
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "output":
                current["outputs"] = [v.strip() for v in value.split(",")]
            elif key == "benchmark":
                current["benchmark"] = value.strip()
        elif not line.strip() or not line.startswith(" "):
            current = None
    return [job for job in jobs if job["benchmark"]]


def read_benchmark(path: str) -> dict:
    """The job's record: s, max_rss (MiB), cpu_time (Snakemake samples the process every 0.5 s
    for ~15 s, then every 30 s, and keeps the last sample: a longer job's CPU time stops at that
    sample, so it is scaled to the whole wall time, assuming an even rate)."""
    lines = Path(path).read_text().splitlines()
    if len(lines) < 2:
        raise SystemExit(f"{path}: no benchmark record (the job did not finish?)")
    record = dict(zip(lines[0].split("\t"), lines[-1].split("\t")))

    def value(key: str) -> float:  # "NA": the job ended before Snakemake's first sample
        return float(record[key]) if record.get(key) not in (None, "NA", "-") else 0.0

    wall, cpu = value("s"), value("cpu_time")
    last_sample = 15 + 30 * math.floor((wall - 15) / 30) if wall > 15 else wall
    return {"wall": wall, "cpu_sampled": cpu, "cpu": cpu * wall / last_sample if wall > 15 else cpu,
            "peak_mb": value("max_rss")}


def output_files(outputs: list[str]) -> set[Path]:
    """A job's output files; a dataset's manifest.json stands for the folder it publishes."""
    files = set()
    for name in outputs:
        path = Path(name)
        if path.name == "manifest.json" and path.parent.is_dir():
            files |= {p for p in path.parent.rglob("*") if p.is_file() or p.is_symlink()}
        elif path.exists() or path.is_symlink():
            files.add(path)
    return files


def dataset_tokens(out: Path) -> dict[str, int]:
    """{section or "mix": total tokens} of the published datasets."""
    names = yaml.safe_load((PROJECT / "config.yaml").read_text())
    sections = {"synth": "synth", "code": "code", "math": "math", "chat": "chat", "mix": "merge"}
    return {key: json.loads((out / names[section]["dataset_name"] / "manifest.json").read_text())["total_tokens"]
            for key, section in sections.items()}


def rule_tokens(rule: str, outputs: list[str], datasets: dict[str, int]) -> int | None:
    """Tokens a job wrote (or, for the checks, the tokens of the dataset it read)."""
    for name in outputs:
        if name.endswith(".stats.json"):
            return json.loads(Path(name).read_text())["total_tokens"]
        if name.endswith("manifest.json"):
            return json.loads(Path(name).read_text())["total_tokens"]
    kind, _, dataset = rule.partition("_")
    if kind in ("validate", "report") and dataset in datasets:
        return datasets[dataset]
    return None


def collect_rules(log_text: str, datasets: dict[str, int]) -> list[dict]:
    rules: dict[str, dict] = {}
    for job in jobs_of_log(log_text):
        bench = read_benchmark(job["benchmark"])
        row = rules.setdefault(job["rule"], {"rule": job["rule"], "jobs": 0, "wall_sum": 0.0, "wall_max": 0.0,
                                             "cpu": 0.0, "cpu_sampled": 0.0, "tokens": None, "peak_mb": 0.0,
                                             "files": set()})
        row["jobs"] += 1
        row["wall_sum"] += bench["wall"]
        row["wall_max"] = max(row["wall_max"], bench["wall"])
        row["cpu"] += bench["cpu"]
        row["cpu_sampled"] += bench["cpu_sampled"]
        row["peak_mb"] = max(row["peak_mb"], bench["peak_mb"])
        tokens = rule_tokens(job["rule"], job["outputs"], datasets)
        if tokens is not None:  # the checks read one dataset each; the others add up their jobs' tokens
            row["tokens"] = tokens if job["rule"].startswith(("validate_", "report_")) else (row["tokens"] or 0) + tokens
        row["files"] |= output_files(job["outputs"])
    for row in rules.values():
        row["disk_bytes"] = sum(p.lstat().st_size for p in row.pop("files"))
    return list(rules.values())


def folder_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink()) if path.exists() else 0


# --- the targets: raw encode_ordinary on the texts each job wrote ---------------------------------

def raw_encode_cpu(out: Path) -> dict[str, dict]:
    """{synth, code, math, chat: raw encode CPU s and tokens} on the texts the jobs wrote."""
    from .bench import Row, dataset_files, measure_texts
    from .tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    names = yaml.safe_load((PROJECT / "config.yaml").read_text())
    work = out / "_work" / names["synth"]["dataset_name"] / "encoded"
    paths = {"synth": sorted(work.glob("*.arrow"))}
    for section in ("code", "math", "chat"):
        paths[section] = dataset_files(out / names[section]["dataset_name"])
    result = {}
    for name, files in paths.items():
        row = Row(name)
        measure_texts(row, tokenizer, files)
        result[name] = {"raw_cpu": row.raw_cpu, "raw_wall": row.raw_s}
    return result


# --- the command ----------------------------------------------------------------------------------

def rehearse(out: Path, tokens: float, jobs: int, project: Path, node_cores: int, skip_raw: bool = False) -> dict:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = source_sizes(tokens)
    raw = out / "raw"
    stamp = raw / "done.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != sizes:
        started = time.perf_counter()
        generate(raw, sizes)
        stamp.write_text(json.dumps(sizes))
        print(f"generated the sources in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    for built in (out / "out", out / "subset"):  # from raw: nothing of an earlier run is kept
        shutil.rmtree(built, ignore_errors=True)
    config = write_config(out, raw, sizes)
    cmd = snakemake_command(jobs, config)
    print(f"running: (cd {project} && {' '.join(cmd)})", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    run_s, log_text = timed_run(cmd, project, out / "snakemake.log")
    load_after = os.getloadavg()[0]
    noop_s, noop_text = timed_run(cmd, project, out / "snakemake.noop.log")
    dry_s, dry_text = timed_run(snakemake_command(jobs, config, "-n"), project, out / "snakemake.dryrun.log")
    datasets = dataset_tokens(out / "out")
    rules = collect_rules(log_text, datasets)
    data = {
        "tokens_requested": tokens,
        "sizes": sizes,
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "load_average": [round(load_before, 1), round(load_after, 1)],
        "command": f"snakemake -j {jobs} --configfile CFG -- {TARGET}",
        "dataset_tokens": datasets,
        "run_s": run_s,
        "noop_s": noop_s,
        "noop_nothing_to_do": "Nothing to be done" in noop_text,
        "dryrun_s": dry_s,
        "dryrun_nothing_to_do": "Nothing to be done" in dry_text,
        "rules": rules,
        "disk": {"raw": folder_bytes(raw), "work": folder_bytes(out / "out" / "_work"),
                 "published": folder_bytes(out / "out") - folder_bytes(out / "out" / "_work")},
        "raw_encode": None if skip_raw else raw_encode_cpu(out / "out"),
    }
    return derive(data, node_cores)


def derive(data: dict, node_cores: int) -> dict:
    """The targets and the projection, from the measurements."""
    data["targets"] = targets(data)
    data["projection"] = project_costs(data, node_cores)
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill_data.bench rehearsal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="folder for sources, outputs, logs and the tables "
                   "(generated sources of the same size are reused)")
    p.add_argument("--from-json", type=Path, help="no run: the tables again from a rehearsal.json's measurements")
    p.add_argument("--tokens", type=float, default=REAL_MIX / 10, help="tokens of the rehearsal mix (default: a tenth)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count(), help="snakemake -j")
    p.add_argument("--node-cores", type=int, default=20, help="cores of the node the projection is for")
    p.add_argument("--project", type=Path, default=PROJECT, help="the workflow checkout to run (default: this one)")
    p.add_argument("--skip-raw-encode", action="store_true", help="do not time raw encode_ordinary (no targets)")
    p.add_argument("--update-docs", action="store_true", help=f"write {DOCS_JSON.relative_to(PROJECT)} and the "
                   "generated block of docs/benchmarks.md")
    args = p.parse_args(argv)
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ and not args.from_json:
        raise SystemExit("set TIKTOKEN_ENCODINGS_BASE to the folder holding o200k_base.tiktoken")
    if args.from_json:
        data = derive(json.loads(args.from_json.read_text()), args.node_cores)
    elif args.out:
        data = rehearse(args.out, args.tokens, args.jobs, args.project.resolve(), args.node_cores, args.skip_raw_encode)
    else:
        p.error("give --out (a run) or --from-json (the tables of a saved run)")
    text = render(data)
    if args.out:
        (args.out / "rehearsal.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        (args.out / "rehearsal.md").write_text(text)
    print(text, end="")
    if args.update_docs:
        DOCS_JSON.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        update_docs(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
