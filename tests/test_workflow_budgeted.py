"""The three budgeted targets through real Snakemake runs, next to SYNTH: all four datasets from
one `snakemake -j 2` command, nothing left to do afterwards, a budget change that reruns only
its own builder (read from the "Job stats" of `snakemake -n`), and a missing source that only
stops the targets that need it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill_data.demo.nemotron import write_nemotron_jsonl
from distill_data.demo.oasst2 import write_oasst2_source
from distill_data.demo.opencode import write_opencode_source
from distill_data.demo.synth import write_synth_source
from workflow_helpers import copy_project, dataset_bytes, dry_run_jobs, snakemake, with_checks, write_config

TARGETS = {"code": "code_opencodeinstruct_55m", "math": "math_nemotron_v2_low_55m",
           "chat": "helpfulness_oasst2_15m"}
SYNTH_TARGET = "synth_distill_phase1_high_550m"
SHARDS = ["synth_010.parquet", "synth_034.parquet"]
ALL_FOUR = [SYNTH_TARGET, *TARGETS.values()]  # named, so that the mix downstream stays out of it


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("budgeted_workflow")
    project = copy_project(root / "project")
    raw = root / "raw"
    write_synth_source(raw / "synth", SHARDS, 80, seed=11)
    (root / "list.txt").write_text("".join(f"{name}\n" for name in SHARDS))
    write_opencode_source(raw / "code", 3, 120, seed=12, score_as_string_shards={1})
    write_nemotron_jsonl(raw / "math" / "low.jsonl", 250, seed=13)
    write_oasst2_source(raw / "chat", 30, seed=14)
    config = {
        "output_root": str(root / "out"),
        "common": {"rows_per_file": 50},
        "threads": {"encode": 1, "budgeted": 2},
        "synth": {"raw_root": str(raw / "synth"), "subset_dir": str(root / "subset"),
                  "shard_list": str(root / "list.txt"), "global_keep": 0.6},
        "code": {"input_dir": str(raw / "code"), "target_total_tokens": 12_000},
        "math": {"input_files": [str(raw / "math" / "low.jsonl")], "target_total_tokens": 40_000},
        "chat": {"input_dir": str(raw / "chat")},
    }
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, *ALL_FOUR, "-j", "2", "--configfile", str(cfg))
    return {"root": root, "raw": raw, "project": project, "config": config, "cfg": cfg}


def variant(built, name, section, **values):
    config = json.loads(json.dumps(built["config"]))
    config[section].update(values)
    return str(write_config(built["root"] / f"{name}.yaml", config))


def manifest(built, name):
    return json.loads((built["root"] / "out" / name / "manifest.json").read_text())


def test_one_command_builds_all_four(built):
    for name in [SYNTH_TARGET, *TARGETS.values()]:
        acc = manifest(built, name)["accounting"]
        assert acc["rows_read"] == acc["rows_written_total"] + acc["dropped_total"] > 0
    code, math_, chat = (manifest(built, TARGETS[k]) for k in ("code", "math", "chat"))
    for m in (code, math_):
        assert not m["budget"]["exhausted"] and m["budget"]["total_tokens"] >= m["budget"]["target_total_tokens"]
    assert code["not_read"]["rows"] > 0 and math_["not_read"]["bytes"] > 0
    assert chat["budget"]["exhausted"] and chat["budget"]["target_total_tokens"] == 15_000_000
    assert (built["root"] / "out" / TARGETS["code"] / "input_shards_order.txt").is_file()
    # config.yaml's read orders reach the jobs: spread for code and math, head for chat
    assert [m["positions"]["order"] for m in (code, math_, chat)] == ["spread", "spread", "head"]
    assert code["params"]["spread_block_rows"] == 1000 and math_["params"]["spread_block_bytes"] == 1 << 20


def test_nothing_to_do_after_the_build(built):
    assert dry_run_jobs(built["project"], *ALL_FOUR, "--configfile", str(built["cfg"])) == {}


@pytest.mark.parametrize("section", ["code", "math", "chat"])
def test_a_budget_change_reruns_only_that_builder(built, section):
    target = built["config"][section].get("target_total_tokens", 15_000_000)
    cfg = variant(built, f"budget_{section}", section, target_total_tokens=target + 1000)
    assert dry_run_jobs(built["project"], *ALL_FOUR, "--configfile", cfg) == with_checks({
        f"{section}_build": 1, TARGETS[section]: 1})


def test_an_order_change_reruns_only_that_builder(built):
    cfg = variant(built, "order_math", "math", order="head")
    assert dry_run_jobs(built["project"], *ALL_FOUR, "--configfile", cfg) == with_checks({
        "math_build": 1, TARGETS["math"]: 1})


def test_standalone_script_with_one_thread_builds_the_same_dataset(built):
    out = built["root"] / "standalone" / TARGETS["code"]
    subprocess.run([sys.executable, str(built["project"] / "workflow_scripts" / "build_opencode_distill.py"),
                    "--input-dir", str(built["raw"] / "code"), "--output-dir", str(out),
                    "--target-total-tokens", "12000", "--rows-per-file", "50", "--threads", "1",
                    "--order", "spread"],
                   check=True, capture_output=True)
    assert dataset_bytes(out) == dataset_bytes(built["root"] / "out" / TARGETS["code"])


def test_a_folder_without_shards_is_named_when_the_workflow_starts(built, tmp_path):
    cfg = variant(built, "empty_code", "code", input_dir=str(tmp_path))
    done = snakemake(built["project"], "-n", TARGETS["code"], "--configfile", cfg, check=False)
    assert done.returncode != 0
    assert f"{tmp_path} (config key code.input_dir): no *.parquet files" in done.stdout + done.stderr
    # the other datasets do not depend on it
    assert dry_run_jobs(built["project"], SYNTH_TARGET, TARGETS["math"], TARGETS["chat"], "--configfile", cfg) == {}
