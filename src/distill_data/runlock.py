"""Resume after a killed run with the plain command: stale Snakemake locks are detected.

Snakemake locks the working folder (`.snakemake/locks/`) while it runs and removes the lock
when it ends, also on Ctrl-C. A run killed with SIGKILL (the OOM killer, a closed terminal, a
reboot) leaves the lock behind, and the next run stops with "Directory cannot be locked"
until someone runs `snakemake --unlock`. Snakemake cannot tell a stale lock from a live one;
this module can: every run of this workflow registers its process (host and pid) under
`.snakemake/distill_runs/` and removes the entry when it ends. When the next run finds locks
and every registered run is a dead process of this host, the locks are stale and removed.

Conservative by design: a registered run on another host, a live process (or a reused pid),
locks without any registered run, or a killed run that had sent jobs to a cluster (its jobs may
still be running there) leave the locks alone, so Snakemake refuses as before and the message
says what to check.
"""

from __future__ import annotations

import atexit
import binascii
import json
import os
import socket
from base64 import urlsafe_b64decode
from pathlib import Path

RUNS_DIR = "distill_runs"
LOCKS_DIR = "locks"
# Snakemake marks a job's outputs here while it runs (one file per output, named by the path's
# urlsafe base64, split into folders prefixed "@" when longer than a file name may be).
INCOMPLETE_DIR = "incomplete"
# How many cut-off outputs the message names before "and N more".
NAMED_OUTPUTS = 5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(entry: Path) -> dict | None:
    try:
        return json.loads(entry.read_text())
    except (OSError, ValueError):
        return None


def claim(snakemake_dir: str | os.PathLike = ".snakemake", pid: int | None = None,
          host: str | None = None, register_exit: bool = True) -> list[str]:
    """Register this run; remove locks left by killed local runs. Returns messages to show."""
    pid = os.getpid() if pid is None else pid
    host = host or socket.gethostname()
    root = Path(snakemake_dir)
    runs = root / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    dead, live = [], []
    for entry in sorted(runs.glob("*.json")):
        info = _read(entry)
        if info is None or info.get("pid") == pid and info.get("host") == host:
            continue
        if info.get("host") == host and not _alive(int(info["pid"])):
            dead.append(info)
            entry.unlink(missing_ok=True)
        else:
            live.append(info)
    locks = sorted((root / LOCKS_DIR).glob("*.lock")) if (root / LOCKS_DIR).is_dir() else []
    messages = []
    if locks and dead and not live:
        remote = [d for d in dead if d.get("executor") not in (None, "local", "dryrun", "touch")]
        if remote:
            d = remote[0]
            messages.append(
                f"A previous run (pid {d['pid']}, executor {d['executor']}) was killed and left its lock. "
                "Its cluster jobs may still be running: check them (profiles/slurm/README.md, "
                "'An interrupted run'), then run `snakemake --unlock` and the same command again.")
        else:
            for lock in locks:
                lock.unlink(missing_ok=True)
            pids = ", ".join(str(d["pid"]) for d in dead)
            messages.append(
                f"Removed the lock left by a killed run (pid {pids}, no longer running on {host}); "
                "jobs it had cut off are redone (rerun-incomplete), finished ones are kept.")
    resumed = incomplete_outputs(root)
    if resumed:
        named = ", ".join(resumed[:NAMED_OUTPUTS]) + (f" and {len(resumed) - NAMED_OUTPUTS} more"
                                                      if len(resumed) > NAMED_OUTPUTS else "")
        messages.append(
            f"{len(resumed)} output{'s were' if len(resumed) > 1 else ' was'} left incomplete by an interrupted run "
            f"({named}): {'their jobs are' if len(resumed) > 1 else 'its job is'} redone from the start "
            "(rerun-incomplete; Snakemake's dry-run lists such a job as 'Forced execution', not a --forcerun).")
    own = runs / f"{host}-{pid}.json"
    own.write_text(json.dumps({"pid": pid, "host": host, "executor": None}))
    if register_exit:
        atexit.register(release, own)
    return messages


def incomplete_outputs(snakemake_dir: str | os.PathLike = ".snakemake") -> list[str]:
    """The outputs Snakemake marked as being written by a job that never finished, and that
    exist (a marked output that does not exist is simply missing), sorted."""
    root = Path(snakemake_dir) / INCOMPLETE_DIR
    if not root.is_dir():
        return []
    found = []
    for marker in root.rglob("*"):
        if not marker.is_file() or marker.name.startswith("@"):
            continue
        parts = [p[1:] for p in marker.relative_to(root).parent.parts] + [marker.name]
        try:
            path = urlsafe_b64decode("".join(parts)).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # Snakemake's own bookkeeping files (e.g. migration_underway)
        if os.path.exists(path):
            found.append(path)
    return sorted(found)


def relabel_resumed_jobs(dag, settings) -> int:
    """Give the jobs that rerun-incomplete redoes their real reason, "Incomplete output files:
    …", instead of "Forced execution" (Snakemake forces them internally, and says so as if the
    user had asked for a --forcerun). Jobs the user forced keep their label. Returns how many
    were relabelled; Snakemake's scheduling is not touched (the reason is only shown)."""
    resumed = {str(f) for f in getattr(dag, "forcefiles", ())} & set(incomplete_outputs(".snakemake"))
    if not resumed or settings.forceall:
        return 0
    user_forced = set(settings.forcerun or ())
    count = 0
    for job in dag.needrun_jobs():
        reason = dag.reason(job)
        outputs = {str(f) for f in job.output} & resumed
        if not outputs or not reason.forced or job.rule.name in user_forced:
            continue
        reason.forced = False
        reason.incomplete_output.update(f for f in job.output if str(f) in outputs)
        count += 1
    return count


def record_executor(snakemake_dir: str | os.PathLike, executor: str | None,
                    pid: int | None = None, host: str | None = None) -> None:
    """Note the executor of this run (known only once it starts), for the next run's check."""
    pid = os.getpid() if pid is None else pid
    own = Path(snakemake_dir) / RUNS_DIR / f"{host or socket.gethostname()}-{pid}.json"
    info = _read(own) or {"pid": pid, "host": host or socket.gethostname()}
    info["executor"] = executor
    try:
        own.write_text(json.dumps(info))
    except OSError:
        pass


def release(entry: Path) -> None:
    Path(entry).unlink(missing_ok=True)
