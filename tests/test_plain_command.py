"""The plain command does the right thing (issue 9): `snakemake -j N --configfile … -- target`
with no --profile and no extra flag resumes after a SIGKILL, judges the vocabulary by content,
does not rerun for knobs that cannot change the output, stops on a missing raw input naming
the config key (but re-merges built datasets without the raw sources), takes nested --config
values, shows a failed job's real error, writes manifests without machine paths, and passes
`snakemake --lint` up to the findings allowed with a reason.

One demo build (`demo`) serves the dry-run checks; a second one (`moved`, built with absolute
output folders, SIGKILLed midway and resumed) serves the destructive checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from distill_data.builders import nemotron
from distill_data.config import load_schema
from distill_data.demo.__main__ import write_demo
from distill_data.demo.nemotron import nemotron_line
from distill_data.demo.synth import write_synth_source
from distill_data.encode import ExampleEncoder
from distill_data.io import SourceError
from distill_data.render import HarmonyRenderer
from workflow_helpers import (PROJECT, copy_project, dataset_bytes, dry_run_jobs, snakemake, snakemake_command, with_checks,
                              write_config)

MIX = "phase1_mix_8k_665m"
CONFIG = "config.plain.yaml"
NO_PROFILE = ["--workflow-profile", "none"]
DATASETS = ["synth_distill_phase1_high_550m", "code_opencodeinstruct_55m", "math_nemotron_v2_low_55m",
            "helpfulness_oasst2_15m", MIX]
MERGE = with_checks({"merge_mix": 1, MIX: 1})  # a rebuilt dataset is validated and its report items made again
REMERGE = {"mix_near_duplicates": 1, **MERGE}  # a rebuilt input: its near-duplicates are looked for again
EVERY_ENCODE = with_checks({"synth_encode": 6, "synth_finalize": 1, "code_build": 1, "math_build": 1, "chat_build": 1,
                            **REMERGE})
SCHEMA = load_schema(PROJECT / "schemas" / "config.schema.yaml")


def demo_config(project: Path, **top) -> dict:
    config = yaml.safe_load((PROJECT / "config.demo.yaml").read_text())
    config["tokenizer_dir"] = str(project / "tokenizer")
    config.update(top)
    return config


def make_project(root: Path, vocab_dir: Path, **top) -> Path:
    project = copy_project(root / "project")
    shutil.copytree(vocab_dir, project / "tokenizer")
    for path in (project / "tokenizer").iterdir():
        path.chmod(0o644)
    write_config(project / CONFIG, demo_config(project, **top))
    write_demo(project / "demo" / "raw")
    return project


@pytest.fixture(scope="module")
def demo(tmp_path_factory, vocab_dir):
    project = make_project(tmp_path_factory.mktemp("plain"), vocab_dir)
    snakemake(project, "-j", "2", "--configfile", CONFIG, "--", MIX)
    return project


def variant(project: Path, name: str, **changes) -> str:
    config = yaml.safe_load((project / CONFIG).read_text())
    for section, values in changes.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    return str(write_config(project / f"variant_{name}.yaml", config))


def jobs(project: Path, *args: str, config: str = CONFIG, **kw) -> dict[str, int]:
    return dry_run_jobs(project, *args, "--configfile", config, "--", MIX, **kw)


def console(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


# --- 1. resume with the bare command after SIGKILL ------------------------------------------------

def finished_jobs(log: Path) -> int:
    return len(re.findall(r"^Finished jobid", log.read_text(), flags=re.M)) if log.exists() else 0


@pytest.fixture(scope="module")
def moved(tmp_path_factory, vocab_dir):
    """The demo built into absolute folders elsewhere, SIGKILLed (Snakemake and its jobs, as
    a reboot or the OOM killer would) after a few jobs, then resumed with the bare command."""
    root = tmp_path_factory.mktemp("moved")
    elsewhere = root / "elsewhere"
    project = make_project(root, vocab_dir, output_root=str(elsewhere / "out"))
    config = yaml.safe_load((project / CONFIG).read_text())
    config["synth"]["subset_dir"] = str(elsewhere / "subset")
    write_config(project / CONFIG, config)
    cmd, env = snakemake_command(project, "-j", "2", "--configfile", CONFIG, "--", MIX)
    log = root / "killed.log"
    with open(log, "w") as out:
        first = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        deadline = time.time() + 300
        while finished_jobs(log) < 8 and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    locks = list((project / ".snakemake" / "locks").glob("*.lock"))
    assert locks, "the killed run must have left its lock (else this test shows nothing)"
    runs = [json.loads(p.read_text()) for p in (project / ".snakemake" / "distill_runs").glob("*.json")]
    assert [(r["pid"], r["executor"]) for r in runs] == [(first.pid, "local")]
    resumed = snakemake(project, "-j", "2", "--configfile", CONFIG, "--", MIX)  # the bare command
    return {"project": project, "out": elsewhere / "out", "resumed": console(resumed), "killed": log.read_text()}


def test_the_bare_command_resumes_after_a_sigkill(moved, demo):
    assert "Removed the lock left by a killed run" in moved["resumed"]
    assert "LockException" not in moved["resumed"] and "IncompleteFilesException" not in moved["resumed"]
    # nothing left to do, and the same bytes as an uninterrupted build
    assert jobs(moved["project"]) == {}
    for name in DATASETS[:-1]:
        assert dataset_bytes(moved["out"] / name) == dataset_bytes(demo / "demo" / "distillation_1" / name), name


TOY_WORKFLOW = """
from distill_data import runlock
for message in runlock.claim(".snakemake"):
    print(message)
onstart:
    runlock.relabel_resumed_jobs(workflow.dag, workflow.dag_settings)
rule all:
    input: "done.txt", "other.txt"
rule slow:
    output: "done.txt"
    shell: "echo partial > {output}; if [ ! -e started ]; then touch started; sleep 60; fi; echo whole > {output}"
rule quick:
    output: "other.txt"
    shell: "echo whole > {output}"
"""


def test_a_job_cut_off_is_redone_as_incomplete_not_forced(tmp_path):
    """A job killed after writing part of its output is redone, and says why: Snakemake's own
    label for it is "Forced execution", as if the user had asked for a --forcerun (issue 17)."""
    (tmp_path / "Snakefile").write_text(TOY_WORKFLOW)
    cmd = [sys.executable, "-m", "snakemake", "-j", "1", "--rerun-incomplete"]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 60
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert (tmp_path / "done.txt").read_text() == "partial\n"
    dry = subprocess.run(cmd + ["-n"], cwd=tmp_path, capture_output=True, text=True)
    assert "1 output was left incomplete by an interrupted run (done.txt): its job is redone" in dry.stdout
    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "reason: Incomplete output files: done.txt" in resumed.stderr
    assert "Forced execution" not in resumed.stderr
    assert (tmp_path / "done.txt").read_text() == "whole\n"
    # a job the user forces keeps Snakemake's label
    forced = subprocess.run(cmd + ["--forcerun", "quick", "--", "other.txt"], cwd=tmp_path, capture_output=True, text=True)
    assert "reason: Forced execution" in forced.stderr


def test_a_live_run_or_another_host_keeps_its_lock(tmp_path):
    from distill_data import runlock

    smk = tmp_path / ".snakemake"
    (smk / "locks").mkdir(parents=True)
    lock = smk / "locks" / "0.output.lock"
    lock.write_text("x")
    runlock.claim(smk, pid=os.getpid(), host="here", register_exit=False)  # alive: this process
    assert runlock.claim(smk, pid=1_000_001, host="here", register_exit=False) == [] and lock.exists()
    (smk / "distill_runs" / f"here-{os.getpid()}.json").unlink()
    (smk / "distill_runs" / "here-1000001.json").unlink()
    (smk / "distill_runs" / "there-4242.json").write_text(json.dumps({"pid": 4242, "host": "there"}))
    assert runlock.claim(smk, pid=1_000_002, host="here", register_exit=False) == [] and lock.exists()
    # a killed run that had sent jobs to a cluster: they may still run, so the lock stays
    for entry in (smk / "distill_runs").iterdir():
        entry.unlink()
    dead = 2 ** 22 + 17  # above pid_max on this machine: no such process
    (smk / "distill_runs" / f"here-{dead}.json").write_text(json.dumps({"pid": dead, "host": "here", "executor": "slurm"}))
    messages = runlock.claim(smk, pid=1_000_003, host="here", register_exit=False)
    assert lock.exists() and "snakemake --unlock" in messages[0]


def test_the_workflow_profile_holds_the_settings_every_run_needs():
    default = yaml.safe_load((PROJECT / "profiles" / "default" / "config.yaml").read_text())
    assert default["rerun-incomplete"] is True and default["show-failed-logs"] is True
    assert default["latency-wait"] >= 60
    # every raw input, judged by its content fingerprint instead of its mtime
    assert default["consider-ancient"] == {"synth_link": "target", "synth_scan": "shard", "synth_encode": "shard",
                                           "code_build": "shards", "math_build": "files", "chat_build": "files"}


# --- 2. the vocabulary is judged by its content ---------------------------------------------------

def test_an_identical_vocabulary_elsewhere_reruns_nothing(demo, tmp_path):
    other = tmp_path / "other_place"
    other.mkdir()
    shutil.copy(demo / "tokenizer" / "o200k_base.tiktoken", other / "o200k_base.tiktoken")  # new mtime
    by_config = variant(demo, "vocab_moved", tokenizer_dir=str(other))
    by_env = variant(demo, "vocab_env", tokenizer_dir=None)
    for extra in ([], NO_PROFILE):
        assert jobs(demo, *extra, config=by_config) == {}
        assert jobs(demo, *extra, config=by_env, env={"TIKTOKEN_ENCODINGS_BASE": str(other)}) == {}
        # a new shell without the export: the staged copy is used, nothing is downloaded
        assert jobs(demo, *extra, config=by_env, unset_env=("TIKTOKEN_ENCODINGS_BASE",)) == {}


def test_a_different_vocabulary_reruns_every_encode(demo, tmp_path):
    other = tmp_path / "changed"
    other.mkdir()
    data = bytearray((demo / "tokenizer" / "o200k_base.tiktoken").read_bytes())
    data[-2] ^= 1
    (other / "o200k_base.tiktoken").write_bytes(bytes(data))
    assert jobs(demo, config=variant(demo, "vocab_changed", tokenizer_dir=str(other))) == {
        "stage_tokenizer": 1, **EVERY_ENCODE}
    # run (into another work_root, so that the demo's staged copy stays): one clear message
    aside = variant(demo, "vocab_changed_aside", tokenizer_dir=str(other), work_root=str(tmp_path / "work"))
    done = snakemake(demo, "-j", "1", "--configfile", aside, "--", "stage_tokenizer", check=False)
    assert done.returncode != 0 and "is not the o200k_base vocabulary" in console(done)
    assert not (tmp_path / "work" / "tokenizer" / "o200k_base.tiktoken").exists()


def test_a_missing_vocabulary_folder_is_one_message(demo, tmp_path):
    done = snakemake(demo, "-n", "--configfile", variant(demo, "vocab_missing", tokenizer_dir=str(tmp_path / "none")),
                     "--", MIX, check=False)
    assert done.returncode != 0
    assert f"config key tokenizer_dir: {tmp_path / 'none' / 'o200k_base.tiktoken'} does not exist" in console(done)


# --- 3. knobs that cannot change the bytes do not rerun jobs --------------------------------------

NO_OUTPUT_KNOBS = [
    ("common", "batch_size", 17),
    ("threads", "encode", 2),
    ("threads", "budgeted", 1),
    ("threads", "merge", 1),
]


@pytest.mark.parametrize("section,key,value", NO_OUTPUT_KNOBS, ids=[f"{s}.{k}" for s, k, _ in NO_OUTPUT_KNOBS])
def test_a_knob_that_cannot_change_the_output_reruns_nothing(demo, section, key, value):
    assert SCHEMA["properties"][section]["properties"][key]["default"] != value
    config = variant(demo, f"{section}_{key}", **{section: {key: value}})
    assert jobs(demo, config=config) == {}
    assert jobs(demo, *NO_PROFILE, config=config) == {}


def test_the_knobs_really_do_not_change_the_output(tmp_path, tokenizer):
    """The claim behind the list: a budgeted build at batch size 17 / 1 thread equals the default."""
    path = tmp_path / "low.jsonl"
    path.write_text("".join(json.dumps(nemotron_line(problem=f"Compute {i}+{i}.", expected_answer=str(2 * i))) + "\n"
                            for i in range(60)))
    built = []
    for batch_size, threads in ((4096, 2), (17, 1)):
        encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high", threads), 8192, 1337, 0.99)
        out = tmp_path / f"out_{batch_size}"
        nemotron.build([path], out, encoder, nemotron.NemotronParams(target_total_tokens=10**9), batch_size=batch_size)
        built.append(dataset_bytes(out))
    assert built[0] == built[1]


# --- 4. a missing raw input ----------------------------------------------------------------------

MISSING = {
    "synth": ({"synth": {"raw_root": "/nonexistent/pleias_synth"}}, "synth.raw_root", "/nonexistent/pleias_synth",
              "synth_distill_phase1_high_550m"),
    "code": ({"code": {"input_dir": "/nonexistent/code"}}, "code.input_dir", "/nonexistent/code",
             "code_opencodeinstruct_55m"),
    "math": ({"math": {"input_files": ["/nonexistent/low.jsonl"]}}, "math.input_files", "/nonexistent/low.jsonl",
             "math_nemotron_v2_low_55m"),
    "chat": ({"chat": {"input_dir": "/nonexistent/chat"}}, "chat.input_dir", "/nonexistent/chat",
             "helpfulness_oasst2_15m"),
}


@pytest.mark.parametrize("builder", list(MISSING))
def test_a_missing_raw_input_stops_its_builder_target_even_after_a_build(demo, builder):
    changes, key, path, target = MISSING[builder]
    config = variant(demo, f"missing_{builder}", **changes)
    for wanted in (target, "all"):
        done = snakemake(demo, "-n", "--configfile", config, "--", wanted, check=False)
        text = console(done)
        assert done.returncode != 0, text[-2000:]
        assert f"config key {key}" in text and path in text, text[-2000:]
        assert "fingerprint.py" not in text and "FileNotFoundError" not in text


@pytest.mark.parametrize("builder", list(MISSING))
def test_the_mix_is_remerged_without_the_raw_source_and_says_so(demo, builder):
    changes, key, path, _ = MISSING[builder]
    config = variant(demo, f"missing_{builder}", **changes)
    done = snakemake(demo, "-n", "--configfile", config, "--", MIX)
    assert "Nothing to be done" in console(done)
    assert f"Skipped the raw-input check of {builder}" in console(done) and path in console(done)
    # a merge parameter changed: only the merge reruns, from the built datasets
    assert jobs(demo, config=variant(demo, f"missing_{builder}_seed", merge={"seed": 9}, **changes)) == MERGE


def test_a_machine_with_only_the_built_datasets_remerges(demo):
    config = variant(demo, "no_sources", merge={"seed": 11}, **{k: v for changes, *_ in MISSING.values() for k, v in changes.items()})
    done = snakemake(demo, "-n", "--configfile", config, "--", MIX)
    assert all(f"Skipped the raw-input check of {b}" in console(done) for b in MISSING)
    assert jobs(demo, config=config) == MERGE


def test_a_missing_raw_input_without_a_built_dataset_stops_the_mix(demo, tmp_path):
    config = variant(demo, "fresh_missing", output_root=str(tmp_path / "fresh"), code={"input_dir": "/nonexistent/code"})
    done = snakemake(demo, "-n", "--configfile", config, "--", MIX, check=False)
    assert done.returncode != 0
    assert "config key code.input_dir" in console(done) and "/nonexistent/code" in console(done)


# --- 5. --config on nested keys ----------------------------------------------------------------------

def test_nested_config_values_are_coerced_by_the_schema(demo):
    assert jobs(demo, "--config", 'merge={"seed": 7}') == MERGE
    assert jobs(demo, "--config", 'synth={"global_keep": 0.25, "include_seed_text": true}') == with_checks({
        "synth_plan": 1, "synth_encode": 6, "synth_finalize": 1, **REMERGE})
    done = snakemake(demo, "-n", "--configfile", CONFIG, "--config", 'merge={"seed": "seven"}', "--", MIX, check=False)
    assert done.returncode != 0 and "config key merge.seed: 'seven' is not of type 'integer'" in console(done)


def test_coerce_types_follows_each_schema_type():
    from distill_data.config import coerce_types

    got = coerce_types({"merge": {"seed": "7", "weight_by": "rows"}, "synth": {"global_keep": "0.5", "append_rag_sources": "true"},
                        "work_root": "null", "math": {"input_files": ["a.jsonl"], "max_bad_line_frac": "1"}}, SCHEMA)
    assert got == {"merge": {"seed": 7, "weight_by": "rows"}, "synth": {"global_keep": 0.5, "append_rag_sources": True},
                   "work_root": "null", "math": {"input_files": ["a.jsonl"], "max_bad_line_frac": 1}}
    assert coerce_types({"common": {"seed": "x"}}, SCHEMA) == {"common": {"seed": "x"}}  # left for the validator


# --- 6. the standalone scripts use the schema's bounds -----------------------------------------------

SCRIPT_CASES = [
    ("build_synth_distill.py", ["--english-frac", "1.5"], "--english-frac 1.5: must be at most 1 (as config key synth.english_frac)"),
    ("build_synth_distill.py", ["--memorization-cap", "-1"], "--memorization-cap -1.0: must be at least 0"),
    ("build_synth_distill.py", ["--global-keep", "2"], "--global-keep 2.0: must be at most 1"),
    ("build_synth_distill.py", ["--train-frac", "1.5"], "--train-frac 1.5: must be at most 1 (as config key common.train_frac)"),
    ("build_synth_distill.py", ["--max-seq-len", "10"], "--max-seq-len 10: must be at least 64 (as config key common.max_seq_len)"),
    ("build_synth_distill.py", ["--train-frac", "0"], "--train-frac 0.0: must be more than 0"),
    ("build_opencode_distill.py", ["--threads", "0"], "--threads 0: must be at least 1 (as config key threads.budgeted)"),
    ("build_nemotron_math_distill.py", ["--max-bad-line-frac", "2"], "--max-bad-line-frac 2.0: must be at most 1"),
    ("build_oasst2_distill.py", ["--english-frac", "-0.1"], "--english-frac -0.1: must be at least 0 (as config key chat.english_frac)"),
    ("merge_distill_datasets.py", ["--input", "a=b", "--rows-per-shard", "0"], "--rows-per-file 0: must be at least 1"),
]


@pytest.mark.parametrize("script,args,message", SCRIPT_CASES, ids=[f"{s}:{a[-2]}" for s, a, _ in SCRIPT_CASES])
def test_a_script_refuses_a_value_the_config_would_refuse(tmp_path, vocab_dir, script, args, message):
    raw = tmp_path / "raw"
    write_synth_source(raw, ["synth_001.parquet"], 40, seed=3)  # a real shard: without the check, a dataset is written
    out = tmp_path / "out"
    base = {"build_synth_distill.py": ["--input-dir", str(raw), "--output-dir", str(out), "--tokenizer-dir", str(vocab_dir)],
            "merge_distill_datasets.py": ["--output-dir", str(out)]}.get(script, ["--output-dir", str(out)])
    done = subprocess.run([sys.executable, str(PROJECT / "workflow_scripts" / script), *base, *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


# --- 7. the math bad-line limit holds whatever the budget --------------------------------------------

def test_the_bad_line_share_is_judged_where_the_budget_stops(tmp_path, tokenizer):
    good = [json.dumps(nemotron_line(problem=f"Compute {i} + {i}.", expected_answer=str(2 * i))) for i in range(1160)]
    head = good[:100] + ["{garbage"] * 40 + good[100:]                 # 40 bad lines in the first 1,200 (3.3%)
    path = tmp_path / "low.jsonl"
    path.write_text("\n".join(head + good[:800]) + "\n")
    params = dict(max_seq_len=8192, seed=1337, train_frac=0.99, reasoning_effort="high", rows_per_file=2000)
    exact = tmp_path / "first1200.jsonl"
    exact.write_text("\n".join(head) + "\n")

    def build(target, source, frac, batch_size=4096):
        encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high", 1), 8192, 1337, 0.99)
        return nemotron.build([source], tmp_path / f"out_{batch_size}", encoder,
                              nemotron.NemotronParams(target_total_tokens=target, max_bad_line_frac=frac, **params),
                              batch_size=batch_size)

    tokens = build(10**12, exact, 1.0)["budget"]["total_tokens"]  # the first 1,200 lines' tokens
    for batch_size in (1, 64, 4096):
        with pytest.raises(SourceError, match=r"low\.jsonl: 40 of the first 1200 lines are unreadable.*line 101"):
            build(tokens, path, 0.01, batch_size)
    assert build(tokens, path, 0.05)["budget"]["stopped_at"]["line"] == 1200  # under a 5% limit it passes


# --- 8. the real error reaches the console ----------------------------------------------------------

def test_a_failed_job_shows_its_error_naming_the_link_and_the_raw_file(moved):
    project = moved["project"]
    raw = project / "demo" / "raw" / "pleias_synth" / "synth_034.parquet"
    link = Path(yaml.safe_load((project / CONFIG).read_text())["synth"]["subset_dir"]) / "synth_034.parquet"
    raw.write_bytes(os.urandom(3_000_000))
    done = snakemake(project, "-j", "1", "--configfile", CONFIG, "--", "synth_distill_phase1_high_550m", check=False)
    text = console(done)
    assert done.returncode != 0
    assert f"{link} (a link to {raw.resolve()}): not a readable parquet file" in text, text[-3000:]


# --- 9. manifests hold no machine paths --------------------------------------------------------------

def strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_manifests_do_not_change_when_the_output_folders_move(moved, demo):
    """`moved` wrote to absolute folders elsewhere, `demo` to demo/ under its project."""
    for name in DATASETS:
        here = (demo / "demo" / "distillation_1" / name / "manifest.json").read_bytes()
        there = (moved["out"] / name / "manifest.json").read_bytes()
        assert here == there, name
        assert not [s for s in strings(json.loads(there)) if s.startswith("/")], name


# --- 10. an offline vocabulary download ---------------------------------------------------------------

OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}


def test_an_offline_download_fails_in_one_line(demo, tmp_path):
    config = variant(demo, "offline", tokenizer_dir=None, work_root=str(tmp_path / "work"))
    done = snakemake(demo, "-j", "1", "--configfile", config, "--", "stage_tokenizer", check=False,
                     unset_env=("TIKTOKEN_ENCODINGS_BASE",), env=OFFLINE)
    text = console(done)
    assert done.returncode != 0
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Could not download" in errors[0] and "TIKTOKEN_ENCODINGS_BASE" in errors[0], text[-3000:]
    assert "Traceback" not in text
    assert not (tmp_path / "work" / "tokenizer" / "o200k_base.tiktoken").exists()


# --- 11. snakemake --lint ---------------------------------------------------------------------------

def lint_findings(text: str) -> set[str]:
    return {m.group(1).rstrip(":.") for m in re.finditer(r"^    \* (.+)$", text, flags=re.M)}


def test_lint_passes_up_to_the_findings_allowed_with_a_reason(demo):
    allowed = yaml.safe_load((PROJECT / "tests" / "lint_allowed.yaml").read_text())
    done = snakemake(demo, "--lint", "--configfile", CONFIG, check=False)
    found = lint_findings(console(done))
    assert found, "the lint output format changed: no finding parsed"
    unexplained = {f for f in found if not any(f.startswith(prefix) for prefix in allowed)}
    assert not unexplained, unexplained
    assert all(reason and len(reason) > 40 for reason in allowed.values())


# --- 12. README ---------------------------------------------------------------------------------------

def readme_section(title: str) -> str:
    text = (PROJECT / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_readme_reading_example_runs_on_a_built_dataset(demo):
    section = readme_section("## Reading a dataset")
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    scope = {}
    cwd = os.getcwd()
    os.chdir(demo)
    try:
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (the README's own example)
    finally:
        os.chdir(cwd)
    assert len(scope["train"]) > 0 and list(scope["train"].columns)[:2] == ["id", "source"]
    assert scope["validation_rows"] > 0


def test_the_readme_explains_the_demo_command():
    quick = readme_section("## Quick start")
    assert "-- phase1_mix_8k_665m" in quick
    assert "--configfile" in quick and "takes every following word" in quick
    assert "demo/pleias_synth/" in quick
    assert "DISTILL_SLURM" in quick and ".ci/run" in quick
