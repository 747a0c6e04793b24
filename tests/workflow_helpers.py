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
