"""`snakemake teacher` on a small mix with a tiny random teacher: plan and estimate first, one
capture job per part, the validator, the packed forms DistillKit's prepacked mode reads, the
report page, and the rebuild rules (issue 16). One build per module."""
from __future__ import annotations

import json

import numpy as np
import pytest

from teacher_helpers import tiny_teacher
from workflow_helpers import copy_project, dry_run_jobs, small_mix_config, snakemake, write_config

datasets = pytest.importorskip("datasets", reason="the teacher tests need the test extra (datasets)")
torch = pytest.importorskip("torch", reason="the teacher tests need torch (pip install torch==2.13.0 first)")

from distill_data.teacher import format as fmt

MIX = "phase1_mix_8k_665m"
K = 4


@pytest.fixture(scope="module")
def built(tmp_path_factory, vocab_dir):
    root = tmp_path_factory.mktemp("teacher_workflow")
    project = copy_project(root / "project")
    model = tiny_teacher(root / "tiny_teacher")
    config = small_mix_config(root, seed=41)
    config["handoff"] = {"max_seq_len": 2048}
    config["teacher"] = {"model": str(model), "dtype": "float32", "top_k": K, "max_rows": 4, "chunk_rows": 2,
                         "batch_tokens": 4096, "pack_window_tokens": 20_000}
    cfg = write_config(root / "config.yaml", config)
    run = snakemake(project, "teacher", "-j", "2", "--configfile", str(cfg))
    out = root / "out"
    return {"root": root, "project": project, "cfg": cfg, "config": config, "run": run, "out": out,
            "teacher": out / "teacher" / MIX, "handoff": out / "handoff" / MIX,
            "checks": out / "_work" / "validate" / "handoff" / MIX}


def test_the_estimate_is_printed_before_any_capture(built):
    text = built["run"].stdout + built["run"].stderr
    estimate = text.index("teacher pass over phase1_mix_8k_665m:")
    assert estimate < text.index("rule teacher_capture")
    line = text[estimate:text.index("\n", estimate)]
    assert f"at k={K}" in line and "on disk" in line and "GPU hours" in line


def test_one_capture_per_part_checked_and_the_manifest_accounts_for_the_trial(built):
    mix = json.loads((built["out"] / MIX / "manifest.json").read_text())
    manifest = json.loads((built["teacher"] / "manifest.json").read_text())
    for split in ("train", "validation"):
        assert [f["path"] for f in manifest["files"][split]] == [f["path"] for f in mix["files"][split]]
        assert manifest["rows"][split] == sum(min(4, f["rows"]) for f in mix["files"][split])
    assert manifest["top_k"] == K and manifest["teacher"]["name"] == "tiny_teacher"
    assert len(manifest["teacher"]["config_sha256"]) == 64 and manifest["warnings"]   # the trial is said
    assert fmt.read_config(built["teacher"]).k == K
    for form in ("teacher", "teacher_packed", "teacher_packed_disk"):
        report = json.loads((built["checks"] / f"{form}.json").read_text())
        assert report["ok"], (form, report["checks"])
    page = (built["out"] / "_work" / "report" / "teacher" / f"{MIX}.html").read_text()
    assert "teacher_packed_disk" in page and "FAILED" not in page
    info = json.loads((built["teacher"] / "build_info.json").read_text())
    assert info["tokens_per_second"] > 0 and info["parts"] == sum(len(v) for v in mix["files"].values())


def test_distillkits_prepacked_stacking_gives_logits_in_line_with_tokens(built):
    folder = built["handoff"] / "teacher_packed_disk"
    loaded = datasets.load_from_disk(str(folder))
    config = fmt.read_config(folder)
    rows = loaded["train"]
    assert len(rows) >= 1
    # what DistillKit's collate_packed_batch does: one tensor per column
    batch = {key: torch.tensor([example[key] for example in rows]) for key in rows[0]}
    n, seq = batch["input_ids"].shape
    assert batch["compressed_logprobs"].shape == (n, seq, config.logprob_bytes)
    assert batch["bytepacked_indices"].shape == (n, seq, config.index_bytes)
    # each packed example: its tokens but the last, and the teacher's entries of those positions
    teacher_rows = {}
    for f in json.loads((built["teacher"] / "manifest.json").read_text())["files"]["train"]:
        for row in datasets.Dataset.from_parquet(str(built["teacher"] / f["path"])):
            teacher_rows[row["id"]] = row
    packed = datasets.Dataset.from_parquet(str(next((built["handoff"] / "teacher_packed" / "train").glob("*.parquet"))))
    first = packed[0]
    at = 0
    for example_id, size in zip(first["example_ids"], first["example_lengths"]):
        row = teacher_rows[example_id]
        assert batch["input_ids"][0, at:at + size].tolist() == row["input_ids"][:-1]
        ids, values = fmt.decode(batch["compressed_logprobs"][0, at:at + size].numpy().astype(np.uint8),
                                 batch["bytepacked_indices"][0, at:at + size].numpy().astype(np.uint8), config)
        want_ids, want = fmt.decode(np.array(row["compressed_logprobs"], np.uint8),
                                    np.array(row["bytepacked_indices"], np.uint8), config)
        assert (ids == want_ids).all() and (values == want).all()
        at += size


def test_nothing_reruns_and_a_changed_k_reruns_only_the_teacher(built):
    assert dry_run_jobs(built["project"], "teacher", "--configfile", str(built["cfg"])) == {}
    changed = dict(built["config"], teacher=dict(built["config"]["teacher"], top_k=K + 1))
    cfg = write_config(built["root"] / "k5.yaml", changed)
    jobs = dry_run_jobs(built["project"], "teacher", "--configfile", str(cfg))
    # the captures are listed once the plan (a checkpoint) has run again; nothing before the teacher reruns
    assert "teacher_plan" in jobs and not {"merge_mix", "validate_mix", "handoff_packed"} & set(jobs)
    run = snakemake(built["project"], "teacher", "-j", "2", "--configfile", str(cfg))
    text = run.stdout + run.stderr
    mix = json.loads((built["out"] / MIX / "manifest.json").read_text())
    assert text.count("rule teacher_capture") == sum(len(v) for v in mix["files"].values())
    assert json.loads((built["teacher"] / "manifest.json").read_text())["top_k"] == K + 1


def test_no_teacher_model_is_one_line(built):
    cfg = write_config(built["root"] / "nomodel.yaml", dict(built["config"], teacher={"model": None}))
    done = snakemake(built["project"], "-n", "teacher", "--configfile", str(cfg), check=False)
    assert done.returncode != 0
    assert "Error: teacher.model is not set" in done.stderr and "Traceback" not in done.stderr
