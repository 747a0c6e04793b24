"""The SYNTH target through real Snakemake runs: identical output however it is run, and
rebuilds of exactly what is stale (read from `snakemake -n`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from distill_data.demo.synth import write_synth_source
from workflow_helpers import copy_project, dataset_bytes, dry_run_jobs, snakemake, with_checks, write_config

TARGET = "synth_distill_phase1_high_550m"
SHARDS = ["synth_010.parquet", "synth_034.parquet"]
NEW_SHARD = "synth_056.parquet"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_workflow")
    project = copy_project(root / "project")
    write_synth_source(root / "raw", SHARDS + [NEW_SHARD], 300, seed=11)
    (root / "list.txt").write_text("".join(f"{name}\n" for name in SHARDS))
    config = {
        "output_root": str(root / "out"),
        "synth": {"raw_root": str(root / "raw"), "subset_dir": str(root / "subset"),
                  "shard_list": str(root / "list.txt"), "global_keep": 0.6},
        "common": {"rows_per_file": 50},
        "threads": {"encode": 2},
    }
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, TARGET, "-j", "1", "--configfile", str(cfg))
    return {"root": root, "project": project, "config": config, "cfg": cfg,
            "snapshot": dataset_bytes(root / "out" / TARGET)}


def variant(built, name, **changes):
    config = json.loads(json.dumps(built["config"]))
    for section, values in changes.items():
        config[section].update(values)
    return str(write_config(built["root"] / f"{name}.yaml", config))


def test_build_publishes_a_complete_dataset(built):
    snapshot = built["snapshot"]
    manifest = json.loads(snapshot["manifest.json"])
    assert manifest["accounting"]["rows_read"] == 600
    # the generator repeats one row in each shard and one row across shards: decided by the
    # plan from all scans, so the standalone run below must agree with these separate jobs
    assert manifest["accounting"]["dropped"]["duplicate_content"] == 3
    assert manifest["split_groups"]["in_both_splits"] == 0
    listed = {f["path"] for split in ("train", "validation") for f in manifest["files"][split]}
    assert listed | {"manifest.json"} == set(snapshot)
    links = sorted(p.name for p in (built["root"] / "subset").iterdir())
    assert links == SHARDS and all((built["root"] / "subset" / n).is_symlink() for n in links)


def test_nothing_to_do_after_a_build(built):
    assert dry_run_jobs(built["project"], TARGET, "--configfile", str(built["cfg"])) == {}


def test_same_output_at_j2_and_from_scratch(built):
    root = built["root"]
    shutil.rmtree(root / "out")
    snakemake(built["project"], TARGET, "-j", "2", "--configfile", str(built["cfg"]))
    assert dataset_bytes(root / "out" / TARGET) == built["snapshot"]


def test_standalone_script_builds_the_same_dataset(built):
    root = built["root"]
    out = root / "standalone" / TARGET
    subprocess.run([sys.executable, str(built["project"] / "workflow_scripts" / "build_synth_distill.py"),
                    "--input-dir", str(root / "subset"), "--shard-list", str(root / "list.txt"),
                    "--output-dir", str(out), "--global-keep", "0.6", "--rows-per-file", "50"], check=True)
    assert dataset_bytes(out) == built["snapshot"]


def test_changing_global_keep_reruns_plan_encodes_and_finalize_only(built):
    jobs = dry_run_jobs(built["project"], TARGET, "--configfile", variant(built, "keep", synth={"global_keep": 0.5}))
    assert jobs == with_checks({"synth_plan": 1, "synth_encode": 2, "synth_finalize": 1, TARGET: 1})


def test_turning_the_result_check_off_rescans(built):
    jobs = dry_run_jobs(built["project"], TARGET, "--configfile", variant(built, "nocheck", synth={"result_check": False}))
    assert jobs == with_checks({"synth_scan": 2, "synth_plan": 1, "synth_encode": 2, "synth_finalize": 1, TARGET: 1})


def test_adding_a_shard_scans_only_that_shard(built):
    listing = built["root"] / "list3.txt"
    listing.write_text("".join(f"{name}\n" for name in SHARDS + [NEW_SHARD]))
    jobs = dry_run_jobs(built["project"], TARGET, "--configfile", variant(built, "three", synth={"shard_list": str(listing)}))
    assert jobs == with_checks({"synth_link": 1, "synth_scan": 1, "synth_plan": 1, "synth_encode": 3, "synth_finalize": 1, TARGET: 1})


def test_editing_the_renderer_reruns_the_encodes(built):
    render = built["project"] / "src" / "distill_data" / "render.py"
    original = render.read_text()
    render.write_text(original + "\n# an edit\n")
    try:
        jobs = dry_run_jobs(built["project"], TARGET, "--configfile", str(built["cfg"]))
    finally:
        render.write_text(original)
    assert jobs == with_checks({"synth_encode": 2, "synth_finalize": 1, TARGET: 1})


def test_a_missing_shard_stops_the_run_naming_it(built):
    listing = built["root"] / "missing.txt"
    listing.write_text("synth_010.parquet\nsynth_999.parquet\n")
    done = snakemake(built["project"], TARGET, "-n", "--configfile",
                     variant(built, "missing", synth={"shard_list": str(listing)}), check=False)
    assert done.returncode != 0
    assert "synth_999.parquet" in done.stdout + done.stderr


def test_a_wrong_config_key_stops_the_run_naming_it(built):
    done = snakemake(built["project"], TARGET, "-n", "--configfile", variant(built, "typo", synth={"globl_keep": 0.5}),
                     check=False)
    assert done.returncode != 0
    assert "globl_keep" in done.stdout + done.stderr


def test_without_a_vocabulary_folder_the_workflow_downloads_it_once_locally(built, tmp_path):
    config = json.loads(json.dumps(built["config"]))
    config["synth"]["global_keep"] = 0.5
    config["work_root"] = str(tmp_path / "fresh_work")  # no staged vocabulary there yet
    config = str(write_config(built["root"] / "fresh.yaml", config))
    jobs = dry_run_jobs(built["project"], TARGET, "--configfile", config, unset_env=("TIKTOKEN_ENCODINGS_BASE",))
    assert jobs["stage_tokenizer"] == 1
    assert jobs["synth_encode"] == 2
