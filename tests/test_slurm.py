"""The SLURM profile on a real SLURM cluster: the demo mix built with `--profile profiles/slurm`
(every non-local job an `sbatch` job) equals the local build byte for byte, and a run whose
Snakemake is SIGKILLed mid-build resumes without redoing finished jobs.

The cluster tests run when DISTILL_SLURM is set (.ci/run sets it after starting a one-node
cluster with ../shared/slurm/slurm_localhost.sh); then an unreachable cluster is a failure, never
a skip. Without DISTILL_SLURM (a laptop) they are skipped, saying so. The profile checks at the
end need no cluster."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from distill_data.demo.__main__ import write_demo
from workflow_helpers import PROJECT, copy_project, dataset_bytes, snakemake

MIX = "phase1_mix_8k_665m"
DATASETS = ["synth_distill_phase1_high_550m", "code_opencodeinstruct_55m", "math_nemotron_v2_low_55m",
            "helpfulness_oasst2_15m", MIX]
# What the demo mix submits to SLURM, and what runs on the submit host (localrules).
SLURM_JOBS = Counter({"synth_scan": 6, "synth_encode": 6, "synth_finalize": 1, "code_build": 1,
                      "math_build": 1, "chat_build": 1, "mix_near_duplicates": 1, "merge_mix": 1,
                      **{f"{step}_{name}": 1 for step in ("validate", "report")
                         for name in ("synth", "code", "math", "chat", "mix")}})
LOCAL_JOBS = Counter({"stage_tokenizer": 1, "synth_link": 6, "synth_plan": 1, MIX: 1})
# Test-only plugin settings: poll every 2 s instead of 40 s (MinJobAge must stay >= 3 x 2 s for
# the squeue status mode) and keep every job's SLURM log so that the test can read it.
INIT_SECONDS = 2
FAST_POLLING = ["--slurm-status-command", "squeue",
                "--slurm-init-seconds-before-status-checks", str(INIT_SECONDS),
                "--seconds-between-status-checks", str(INIT_SECONDS),
                "--slurm-keep-successful-logs"]
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
SLURM_RUN = [MIX, "--profile", "profiles/slurm", *FAST_POLLING, "--configfile", "config.demo.yaml"]


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------

def _sh(*cmd: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def min_job_age() -> int | None:
    match = re.search(r"^MinJobAge\s*=\s*(\d+)", _sh("scontrol", "show", "config").stdout, re.M)
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def cluster(request):
    if not os.environ.get("DISTILL_SLURM"):
        pytest.skip("DISTILL_SLURM is not set, so there is no SLURM cluster for this run; .ci/run starts a "
                    "one-node cluster and sets it when it runs as root on Debian")
    missing = [tool for tool in ("sbatch", "squeue", "sinfo", "scontrol", "scancel") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"DISTILL_SLURM is set but the SLURM client tools {missing} are not on PATH")
    try:
        states = _sh("sinfo", "-h", "-o", "%T")
    except subprocess.TimeoutExpired:
        pytest.fail("DISTILL_SLURM is set but `sinfo` did not answer within 30 s (is slurmctld running?)")
    if states.returncode != 0 or not re.search(r"^(idle|mixed|allocated)", states.stdout, re.M):
        pytest.fail(f"DISTILL_SLURM is set but no SLURM node is usable: sinfo -> {states.stdout!r} {states.stderr!r}")
    age = min_job_age()
    if age is None or age < 3 * INIT_SECONDS:
        pytest.fail(f"MinJobAge={age}: the plugin's squeue status mode needs it >= {3 * INIT_SECONDS} s "
                    "(else it falls back to sacct and waits forever on a cluster without accounting)")
    threads = yaml.safe_load((PROJECT / "config.demo.yaml").read_text()).get("threads", {})
    cpus = max(int(c) for c in _sh("sinfo", "-h", "-o", "%c").stdout.split())
    if cpus < max(threads.values(), default=1):
        pytest.fail(f"the SLURM node has {cpus} CPUs, fewer than the demo's threads {threads}: jobs could never start")
    started = time.monotonic()
    yield {"min_job_age": age}
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[test_slurm] tests/test_slurm.py took {time.monotonic() - started:.0f} s (local reference build, "
              "SLURM build, killed and resumed SLURM build, profile checks)")


# --------------------------------------------------------------------------------------------
# The demo, and what a run did
# --------------------------------------------------------------------------------------------

def demo_project(dest: Path) -> Path:
    """A private copy of the project with the demo sources and config.demo.yaml in it (its paths
    are relative to the project folder, which is where every job runs)."""
    project = copy_project(dest)
    shutil.copy2(PROJECT / "config.demo.yaml", project / "config.demo.yaml")
    write_demo(project / "demo" / "raw")
    return project


def outputs(project: Path) -> Path:
    return project / "demo" / "distillation_1"


def job_blocks(log: str) -> list[dict]:
    """Every job a Snakemake log announces: {kind: rule|localrule, rule, jobid, threads, resources…}."""
    blocks, current = [], None
    for line in log.splitlines():
        head = re.match(r"^(localrule|rule) (\S+):$", line)
        if head:
            current = {"kind": head.group(1), "rule": head.group(2), "threads": "1"}
            blocks.append(current)
        elif current is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
        else:
            current = None
    return blocks


def slurm_submissions(log: str) -> dict[str, str]:
    """{snakemake jobid: SLURM job id} from the plugin's 'Job N has been submitted' lines."""
    return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))


def run_id(log: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log)
    assert match, "no 'SLURM run ID' in the Snakemake log: was the slurm executor used?"
    return match.group(1)


def slurm_jobs(run: str) -> dict[str, dict]:
    """{SLURM id: {comment, cpus, state, elapsed}} of one run (its jobs are named after the run
    ID); finished jobs stay visible for MinJobAge seconds."""
    out = _sh("squeue", "--states=all", "--noheader", "--name", run, "-o", "%i|%k|%C|%T|%M").stdout
    jobs = {}
    for line in out.splitlines():
        jid, comment, cpus, state, elapsed = line.strip().split("|")
        jobs[jid] = {"comment": comment, "cpus": int(cpus), "state": state, "elapsed": elapsed}
    return jobs


def show(title: str, lines: list[str], capsys) -> None:
    with capsys.disabled():
        print(f"\n[test_slurm] {title}")
        for line in lines:
            print(f"[test_slurm]   {line}")


def env_for(project: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(project / "src"))


def wipe_outputs(project: Path) -> None:
    """Back to sources only: no datasets, no shard links, no Snakemake state."""
    for folder in (outputs(project), project / "demo" / "pleias_synth", project / ".snakemake"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One project copy with the demo for every build of this module. The builds run one after
    the other in the same folder because a manifest may record absolute input paths (math does),
    so that the same data at another path is, rightly, another dataset."""
    return demo_project(tmp_path_factory.mktemp("slurm_demo") / "project")


@pytest.fixture(scope="module")
def local_build(demo):
    """The reference: the demo mix built on this machine with profiles/local."""
    wipe_outputs(demo)
    snakemake(demo, MIX, "--profile", "profiles/local", "--configfile", "config.demo.yaml")
    return {name: dataset_bytes(outputs(demo) / name) for name in DATASETS}


# --------------------------------------------------------------------------------------------
# The cluster tests
# --------------------------------------------------------------------------------------------

def test_slurm_build_equals_the_local_build(cluster, local_build, demo, capsys):
    project = demo
    wipe_outputs(project)
    started = time.monotonic()
    done = snakemake(project, *SLURM_RUN, timeout=900)
    seconds = time.monotonic() - started
    log = done.stdout + done.stderr

    blocks = job_blocks(log)
    submitted = slurm_submissions(log)
    jobs = slurm_jobs(run_id(log))
    by_jobid = {b["jobid"]: b for b in blocks}
    # Every non-local job went through sbatch, and only those.
    assert Counter(b["rule"] for b in blocks if b["kind"] == "rule") == SLURM_JOBS
    assert Counter(b["rule"] for b in blocks if b["kind"] == "localrule") == LOCAL_JOBS
    assert Counter(by_jobid[j]["rule"] for j in submitted) == SLURM_JOBS
    # ...and SLURM ran each of them to completion, with one CPU per thread of the rule.
    rows = []
    for jobid, slurm_id in sorted(submitted.items(), key=lambda item: int(item[1])):
        block, job = by_jobid[jobid], jobs.get(slurm_id)
        assert job is not None, f"SLURM job {slurm_id} ({block['rule']}) is not known to squeue"
        assert job["state"] == "COMPLETED", (slurm_id, block["rule"], job)
        assert job["comment"].startswith(f"rule_{block['rule']}"), (slurm_id, job)
        cpus_per_task = int(re.search(r"cpus_per_task=(\d+)", block["resources"]).group(1))
        assert job["cpus"] == cpus_per_task == int(block["threads"]), (block["rule"], job, block)
        slurm_log = next((project / ".snakemake" / "slurm_logs").rglob(f"{slurm_id}.log"), None)
        assert slurm_log is not None, f"no SLURM log for job {slurm_id}"
        rows.append(f"SLURM job {slurm_id:>4}  {job['state']:<9}  {job['cpus']} CPU  {job['elapsed']:>5}  {job['comment']}")
    show(f"{len(submitted)} jobs submitted to SLURM and completed; the whole build took {seconds:.0f} s", rows, capsys)

    built = {name: dataset_bytes(outputs(project) / name) for name in DATASETS}
    for name in DATASETS:
        assert built[name] == local_build[name], f"{name} built through SLURM differs from the local build"
    assert (outputs(project) / MIX / "manifest.json").is_file()


def test_a_killed_slurm_run_resumes_without_redoing_finished_jobs(cluster, local_build, demo, tmp_path, capsys):
    project = demo
    wipe_outputs(project)
    first_log = tmp_path / "first.log"
    started = time.monotonic()
    with open(first_log, "w") as sink:
        first = subprocess.Popen([sys.executable, "-m", "snakemake", *SLURM_RUN], cwd=project, env=env_for(project),
                                 stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    run = None
    try:
        # Wait until SLURM has finished (and Snakemake has registered) two scans while other jobs
        # of the run are still queued or running, then SIGKILL Snakemake: no cleanup, no
        # scancel, the lock left behind, SLURM jobs left running.
        deadline = time.monotonic() + 600
        while True:
            text = first_log.read_text()
            assert first.poll() is None, "the first run ended before it could be killed:\n" + text[-3000:]
            assert time.monotonic() < deadline, "no point to kill the run within 600 s:\n" + text[-3000:]
            if len(re.findall(r"Finished jobid: \d+ \(Rule: synth_scan\)", text)) >= 2:
                run = run_id(text)
                leftover = {j["comment"] for j in slurm_jobs(run).values() if j["state"] in ACTIVE}
                if leftover:
                    break
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        killed_after = time.monotonic() - started
        text = first_log.read_text()

        # Jobs already submitted keep running in SLURM. Let them finish (the README's advice;
        # `scancel --name <run ID>` is the other choice, and their jobs are then redone).
        deadline = time.monotonic() + 300
        while any(j["state"] in ACTIVE for j in slurm_jobs(run).values()):
            assert time.monotonic() < deadline, f"leftover SLURM jobs of run {run} still running after 300 s"
            time.sleep(1)
        first_jobs = slurm_jobs(run)
        assert first_jobs and all(j["state"] == "COMPLETED" for j in first_jobs.values()), first_jobs
        finished_first = Counter(j["comment"] for j in first_jobs.values())
        assert leftover <= set(finished_first), (leftover, finished_first)
        local_first = Counter(b["rule"] for b in job_blocks(text) if b["kind"] == "localrule")
        before = {p: p.lstat().st_mtime_ns for p in outputs(project).rglob("*") if not p.is_dir()}
        assert before, "the killed run left no outputs"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        if run and any(j["state"] in ACTIVE for j in slurm_jobs(run).values()):
            _sh("scancel", "--name", run)  # only this test's own jobs (they carry its run ID)

    # SIGKILL leaves the lock behind: Snakemake refuses to start until it is removed.
    refused = snakemake(project, *SLURM_RUN, check=False)
    assert refused.returncode != 0 and "Directory cannot be locked" in refused.stdout + refused.stderr
    snakemake(project, *SLURM_RUN, "--unlock")
    resumed = time.monotonic()
    second = snakemake(project, *SLURM_RUN, timeout=900)
    second_seconds = time.monotonic() - resumed
    log = second.stdout + second.stderr

    blocks = job_blocks(log)
    second_jobs = slurm_jobs(run_id(log))
    assert all(j["state"] == "COMPLETED" for j in second_jobs.values()), second_jobs
    redone = Counter(j["comment"] for j in second_jobs.values())
    # Not one finished SLURM job was submitted again, and together the two runs did each job once.
    assert not (set(redone) & set(finished_first)), sorted(set(redone) & set(finished_first))
    both = Counter(re.match(r"rule_(.+?)(?:_wildcards_.*)?$", c).group(1) for c in (finished_first + redone).elements())
    assert both == SLURM_JOBS
    # The local jobs the first run finished (the shard links) are not redone either.
    assert local_first["synth_link"] == 6
    assert "synth_link" not in Counter(b["rule"] for b in blocks if b["kind"] == "localrule")
    # Every file the first run finished is untouched.
    changed = [str(p) for p, mtime in before.items() if not p.exists() or p.lstat().st_mtime_ns != mtime]
    assert not changed, f"the resumed run rewrote finished outputs: {changed[:10]}"
    for name in DATASETS:
        assert dataset_bytes(outputs(project) / name) == local_build[name], f"{name} differs after the resume"
    show(f"SIGKILL after {killed_after:.0f} s, {len(leftover)} SLURM job(s) still queued or running; after they "
         f"finished, {sum(finished_first.values())} were done; the rerun submitted the other "
         f"{sum(redone.values())} and finished in {second_seconds:.0f} s; output identical to the local build",
         [f"running at the kill, then left to finish: {', '.join(sorted(leftover))}",
          f"done by the first run: {', '.join(sorted(finished_first))}",
          f"done by the rerun:     {', '.join(sorted(redone))}"], capsys)


# --------------------------------------------------------------------------------------------
# The profiles (no cluster needed)
# --------------------------------------------------------------------------------------------

def profile(name: str) -> dict:
    return yaml.safe_load((PROJECT / "profiles" / name / "config.yaml").read_text())


SHARED_KEYS = ["set-resources", "retries", "keep-going"]


def cluster_free(value):
    """set-resources without the keys only SLURM has (partition, gres)."""
    if not isinstance(value, dict):
        return value
    return {rule: {k: v for k, v in items.items() if k not in ("gres", "slurm_partition")}
            for rule, items in value.items()}


def test_both_profiles_give_jobs_the_same_resources_and_rebuild_rules():
    slurm, local = profile("slurm"), profile("local")
    for key in SHARED_KEYS:
        assert cluster_free(slurm.get(key)) == local.get(key), key
    # only the GPU job names a partition and GPUs, and only on SLURM
    assert {rule for rule, items in slurm["set-resources"].items() if set(items) & {"gres", "slurm_partition"}} \
        == {"teacher_capture"}
    # The rebuild rules live in the workflow profile, which Snakemake applies to every run on
    # top of --profile and whose keys replace the same keys of that profile: a key in both
    # would be silently overridden, so each key is in one place only.
    default = profile("default")
    assert {"consider-ancient", "rerun-incomplete", "show-failed-logs", "latency-wait"} <= set(default)
    for prof in (slurm, local):
        assert not set(default) & set(prof), set(default) & set(prof)
    slurm_defaults = {k: v for k, v in slurm["default-resources"].items() if not k.startswith("slurm_")}
    assert slurm_defaults == local["default-resources"]
    assert slurm["executor"] == "slurm" and "rerun-triggers" not in slurm and "rerun-triggers" not in local


def test_cpus_per_task_always_follows_threads():
    """The plugin's most reported pitfall: SLURM grants cpus_per_task CPUs while the job starts
    `threads` tokenizer threads. The profile derives one from the other and never sets it per rule."""
    for name in ("slurm", "local"):
        prof = profile(name)
        assert prof["default-resources"]["cpus_per_task"] == "threads"
        for rule, resources in prof["set-resources"].items():
            assert "cpus_per_task" not in resources and "threads" not in resources, (name, rule)
        assert "set-threads" not in prof


def test_profiles_name_only_real_rules_and_every_cluster_rule(demo):
    out = snakemake(demo, "--configfile", "config.demo.yaml", "--list-rules").stdout
    listed = {line.split()[0] for line in out.splitlines() if line.strip() and not line[0].isspace()}
    resources = profile("slurm")["set-resources"]
    assert set(resources) <= set(listed), set(resources) - set(listed)
    assert set(SLURM_JOBS) <= set(resources), set(SLURM_JOBS) - set(resources)
    for rule, items in profile("default")["consider-ancient"].items():
        assert rule in listed, rule
