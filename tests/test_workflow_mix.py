"""The mix target through real Snakemake runs: the four builders and the merge from generated
sources in one command, identical bytes when rebuilt, and reruns of exactly what is stale
(read from `snakemake -n`)."""

from __future__ import annotations

import json
from collections import Counter
import shutil

import pytest

from workflow_helpers import (SMALL_SHARDS as SHARDS, copy_project, dataset_bytes, dry_run_jobs, small_mix_config,
                              snakemake, with_checks, write_config)

TARGET = "phase1_mix_8k_665m"
MERGE_ONLY = with_checks({"merge_mix": 1, TARGET: 1})
# new or other inputs: their near-duplicates are looked for again, then merged
REMERGE = with_checks({"mix_near_duplicates": 1, "merge_mix": 1, TARGET: 1})
BUILDERS = {"synth": "synth_distill_phase1_high_550m", "code": "code_opencodeinstruct_55m",
            "math": "math_nemotron_v2_low_55m", "chat": "helpfulness_oasst2_15m"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix_workflow")
    project = copy_project(root / "project")
    config = small_mix_config(root, seed=21)
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, TARGET, "-j", "2", "--configfile", str(cfg))
    return {"root": root, "project": project, "config": config, "cfg": cfg,
            "mix": root / "out" / TARGET, "snapshot": dataset_bytes(root / "out" / TARGET)}


def variant(built, name, section, **values):
    config = json.loads(json.dumps(built["config"]))
    config[section].update(values)
    return str(write_config(built["root"] / f"{name}.yaml", config))


def jobs_for(built, cfg=None):
    return dry_run_jobs(built["project"], TARGET, "--configfile", cfg or str(built["cfg"]))


def test_one_command_builds_the_mix_of_all_four(built):
    manifest = json.loads(built["snapshot"]["manifest.json"])
    out = built["root"] / "out"
    assert [i["name"] for i in manifest["inputs"]] == list(BUILDERS)
    written = dropped = 0
    for entry, (name, dataset) in zip(manifest["inputs"], BUILDERS.items()):
        builder = json.loads((out / dataset / "manifest.json").read_text())
        assert entry["dataset"] == builder["dataset"] == dataset
        assert entry["rows"] == builder["accounting"]["rows_written"]
        written += builder["accounting"]["rows_written_total"]
        dropped += sum(entry["near_duplicate_drops"].values())   # near-duplicates (merge.near_duplicates)
    assert manifest["accounting"]["rows_read"] == written > 0
    assert manifest["accounting"]["rows_written_total"] == written - dropped
    assert manifest["accounting"]["dropped"] == ({"near_duplicate": dropped} if dropped else {})
    listed = {f["path"] for split in ("train", "validation") for f in manifest["files"][split]}
    assert listed | {"manifest.json", "stats.json", "samples.md", "near_duplicates.parquet"} == set(built["snapshot"])
    composition = manifest["composition"]["train"]
    assert set(composition["inputs"]) == set(BUILDERS)
    assert composition["prefix_deviation"]["max_deviation_in_B"] <= 1
    samples = built["snapshot"]["samples.md"].decode()
    assert all(f"\n## {name}\n" in samples for name in BUILDERS) and "<|return|>" in samples


def test_nothing_to_do_after_a_build(built):
    assert jobs_for(built) == {}


def test_the_mix_is_rebuilt_byte_identical(built):
    shutil.rmtree(built["mix"])
    assert jobs_for(built) == MERGE_ONLY
    snakemake(built["project"], TARGET, "-j", "2", "--configfile", str(built["cfg"]))
    assert dataset_bytes(built["mix"]) == built["snapshot"]


@pytest.mark.parametrize("key, value", [("seed", 7), ("samples_per_input", 1), ("weight_by", "rows"),
                                        ("rows_per_file", 33)])
def test_a_merge_parameter_reruns_only_the_merge(built, key, value):
    assert jobs_for(built, variant(built, f"merge_{key}", "merge", **{key: value})) == MERGE_ONLY


def test_other_merge_inputs_rerun_the_near_duplicates_and_the_merge(built):
    assert jobs_for(built, variant(built, "merge_inputs", "merge", inputs=["synth", "code", "math"])) == REMERGE


def test_editing_the_merge_code_reruns_only_the_merge(built):
    source = built["project"] / "src" / "distill_data" / "merge.py"
    original = source.read_text()
    source.write_text(original + "\n# an edit\n")
    try:
        assert jobs_for(built) == MERGE_ONLY
    finally:
        source.write_text(original)


def test_a_builder_parameter_reruns_that_builder_and_the_merge(built):
    jobs = jobs_for(built, variant(built, "code_budget", "code", target_total_tokens=12_000))
    assert jobs == with_checks({"code_build": 1, **REMERGE})
    jobs = jobs_for(built, variant(built, "synth_keep", "synth", global_keep=0.5))
    assert jobs == with_checks({"synth_plan": 1, "synth_encode": len(SHARDS), "synth_finalize": 1, **REMERGE})


@pytest.fixture(scope="module")
def demo_mix(tmp_path_factory):
    """The demo sources (``python -m distill_data.demo``, scaled down) built into the mix with
    config.demo.yaml's settings, and 20% validation so that every dataset has both splits."""
    from distill_data.demo.__main__ import DEMO_SYNTH_SHARDS, write_demo

    root = tmp_path_factory.mktemp("demo_mix")
    project = copy_project(root / "project")
    raw = root / "raw"
    write_demo(raw, seed=1337, scale=0.1)
    config = {
        "output_root": str(root / "out"),
        "common": {"train_frac": 0.8, "rows_per_file": 200},
        "threads": {"encode": 1, "budgeted": 2, "merge": 2},
        "synth": {"raw_root": str(raw / "pleias_synth"), "subset_dir": str(root / "subset"),
                  "shard_list": str(raw / "synth_phase1_shards.txt")},
        "code": {"input_dir": str(raw / "nvidia__OpenCodeInstruct" / "data"), "target_total_tokens": 60_000},
        "math": {"input_files": [str(raw / "nvidia__Nemotron-Math-v2" / "data" / "low.jsonl")],
                 "target_total_tokens": 100_000},
        "chat": {"input_dir": str(raw / "OpenAssistant__oasst2")},
        "merge": {"samples_per_input": 1},
    }
    assert len(DEMO_SYNTH_SHARDS) == 6
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, TARGET, "-j", "2", "--configfile", str(cfg))
    return {"root": root, "mix": root / "out" / TARGET}


def mix_sources(built) -> dict[str, list[dict]]:
    """split -> the mix's rows as {dataset, meta (the builder's source struct)}."""
    import pyarrow.parquet as pq

    out = {}
    for split in ("train", "validation"):
        rows = []
        for path in sorted((built["mix"] / split).glob("part-*.parquet")):
            for source in pq.read_table(path, columns=["source"]).column("source").to_pylist():
                rows.append({"dataset": source["dataset"], "meta": json.loads(source["meta_json"])})
        out[split] = rows
    return out


def test_no_split_group_in_both_splits_of_the_mix(demo_mix):
    """One problem (SYNTH query, code input, math problem, chat thread) on one side only."""
    import re

    rows = mix_sources(demo_mix)
    groups = {split: {(r["dataset"], r["meta"]["split_group"]) for r in rows[split]} for split in rows}
    assert all(re.fullmatch(r"[0-9a-f]{16}", g) for split in groups for _, g in groups[split])
    assert {d for d, _ in groups["validation"]} == set(BUILDERS)  # the check has something to check
    assert groups["train"] & groups["validation"] == set()
    manifest = json.loads((demo_mix["mix"] / "manifest.json").read_text())
    assert manifest["split_groups"]["in_both_splits"] == 0 and not manifest["warnings"]
    for name in BUILDERS:
        counted = manifest["split_groups"]["inputs"][name]["groups"]
        assert counted == {split: len({g for d, g in groups[split] if d == name}) for split in groups}
    # chat: the group is the thread; a thread with several examples stays on one side
    trees = {split: {r["meta"]["message_tree_id"] for r in rows[split] if r["dataset"] == "chat"} for split in rows}
    assert trees["train"] & trees["validation"] == set()
    per_tree = Counter(r["meta"]["message_tree_id"] for split in rows for r in rows[split] if r["dataset"] == "chat")
    assert max(per_tree.values()) > 1


def test_one_chat_example_per_prompt_with_its_thread(demo_mix):
    rows = mix_sources(demo_mix)
    chat = [r["meta"] for split in rows for r in rows[split] if r["dataset"] == "chat"]
    per_prompt = Counter(m["parent_id"] for m in chat)
    assert len(chat) > 20 and max(per_prompt.values()) == 1
    manifest = json.loads((demo_mix["root"] / "out" / BUILDERS["chat"] / "manifest.json").read_text())
    assert manifest["examples_per_prompt"] == {"prompts": len(chat), "max": 1}
    assert max(int(k) for k in manifest["turns_per_example"]) >= 3  # earlier turns in the prompt
