"""Running the real workflow from tests: a private copy of the project, snakemake as a
subprocess, and the "Job stats" table of a dry run parsed into {rule: count}."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
COPIED = ["Snakefile", "rules", "workflow_scripts", "schemas", "config.yaml", "data", "src", "profiles"]


def copy_project(dest: Path) -> Path:
    """A copy of the workflow *and* the package, so that a test can edit code safely.
    Jobs import the copy through PYTHONPATH (see `snakemake`)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = PROJECT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


SMALL_SHARDS = ["synth_010.parquet", "synth_034.parquet"]


def small_mix_config(root: Path, seed: int) -> dict:
    """Generated sources for a small mix under `root/raw` (seeds seed..seed+3) and the config
    that builds it into `root/out`: two SYNTH shards, code and math stopped by their budgets."""
    from distill_data.demo.nemotron import write_nemotron_jsonl
    from distill_data.demo.oasst2 import write_oasst2_source
    from distill_data.demo.opencode import write_opencode_source
    from distill_data.demo.synth import write_synth_source

    raw = root / "raw"
    write_synth_source(raw / "synth", SMALL_SHARDS, 150, seed=seed)
    (root / "list.txt").write_text("".join(f"{name}\n" for name in SMALL_SHARDS))
    write_opencode_source(raw / "code", 2, 120, seed=seed + 1)
    write_nemotron_jsonl(raw / "math" / "low.jsonl", 150, seed=seed + 2)
    write_oasst2_source(raw / "chat", 25, seed=seed + 3)
    return {
        "output_root": str(root / "out"),
        "common": {"rows_per_file": 40},
        "threads": {"encode": 1, "budgeted": 1, "merge": 2},
        "synth": {"raw_root": str(raw / "synth"), "subset_dir": str(root / "subset"),
                  "shard_list": str(root / "list.txt"), "global_keep": 0.6},
        "code": {"input_dir": str(raw / "code"), "target_total_tokens": 15_000},
        "math": {"input_files": [str(raw / "math" / "low.jsonl")], "target_total_tokens": 30_000},
        "chat": {"input_dir": str(raw / "chat")},
        "merge": {"rows_per_file": 60, "samples_per_input": 2},
    }


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(project: Path, *args: str, unset_env: tuple[str, ...] = (),
                      env: dict | None = None) -> tuple[list[str], dict]:
    full_env = dict(os.environ, PYTHONPATH=str(project / "src"), **(env or {}))
    for name in unset_env:
        full_env.pop(name, None)
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(project), "--snakefile",
           str(project / "Snakefile"), *args]
    return cmd, full_env


def snakemake(project: Path, *args: str, check: bool = True, timeout: int = 900,
              unset_env: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    cmd, env = snakemake_command(project, *args, unset_env=unset_env, env=env)
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}")
    return done


def dry_run_jobs(project: Path, *args: str, unset_env: tuple[str, ...] = (), env: dict | None = None) -> dict[str, int]:
    """{rule: job count} that `snakemake -n` would run; {} when nothing is to be done."""
    done = snakemake(project, "-n", *args, unset_env=unset_env, env=env)
    text = done.stdout + done.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def dataset_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a published dataset except build_info.json (time and host by design)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "build_info.json"}


# A rebuilt dataset is validated again and its report items redrawn (rules/validate.smk,
# rules/report.smk): the jobs that follow each builder's last job and the merge.
CHECKED_AFTER = {"synth_finalize": "synth", "code_build": "code", "math_build": "math", "chat_build": "chat",
                 "merge_mix": "mix"}


def with_checks(jobs: dict[str, int]) -> dict[str, int]:
    """`jobs` plus validate_<name> and report_<name> for every dataset those jobs rebuild."""
    out = dict(jobs)
    for job, name in CHECKED_AFTER.items():
        if job in jobs:
            out[f"validate_{name}"] = out[f"report_{name}"] = 1
    return out
