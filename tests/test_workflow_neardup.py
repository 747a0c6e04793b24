"""The near-duplicate stage in the workflow (rule mix_near_duplicates before merge_mix): a math
problem planted, reworded, as a code task in the generated sources is found across the two
sources, the math row is kept (merge.near_duplicates.priority), the code row is left out of the
mix and counted, and the mix passes the validator (the target runs it)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neardup_helpers import prompt_text
from workflow_helpers import copy_project, dry_run_jobs, small_mix_config, snakemake, with_checks, write_config

TARGET = "phase1_mix_8k_665m"
TASK = prompt_text(5, words=150)
WORDS = TASK.split()
WORDS[40], WORDS[41], WORDS[90] = WORDS[41], WORDS[40], "rephrased"
REWORDED = "\n".join(" ".join(WORDS[i:i + 9]) for i in range(0, len(WORDS), 9)).upper()


def plant_code_task(folder, text: str) -> None:
    """A copy of the first shard's first passing row, with `text` as its task, first in the
    first shard (code reads shards in sorted order here)."""
    path = sorted(folder.glob("*.parquet"))[0]
    table = pq.read_table(path)
    rows = table.to_pylist()
    passing = next(r for r in rows if float(r["average_test_score"]) == 1.0)
    planted = dict(passing, id="planted0001", input=text)
    pq.write_table(pa.Table.from_pylist([planted] + rows, schema=table.schema), path)


def plant_math_problem(path, text: str) -> None:
    """A copy of the first row without tools, with `text` as its problem, first in the file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    row = next(json.loads(line) for line in lines if not json.loads(line).get("tools"))
    row["uuid"], row["problem"] = "planted-0001", text
    row["messages"][0]["content"] = text
    path.write_text("\n".join([json.dumps(row)] + lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("neardup_workflow")
    project = copy_project(root / "project")
    config = small_mix_config(root, seed=31)
    config["code"]["shuffle_shards"] = False
    plant_code_task(root / "raw" / "code", REWORDED)
    plant_math_problem(root / "raw" / "math" / "low.jsonl", TASK)
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, TARGET, "-j", "2", "--configfile", str(cfg))
    return {"root": root, "project": project, "cfg": cfg, "config": config, "mix": root / "out" / TARGET}


def test_the_planted_pair_is_found_across_code_and_math_and_the_math_row_kept(built):
    mix = built["mix"]
    manifest = json.loads((mix / "manifest.json").read_text())
    found = manifest["near_duplicates"]
    assert found["clusters_across_inputs"].get("code+math", 0) >= 1
    drops = pq.read_table(mix / "near_duplicates.parquet").to_pylist()
    planted = [d for d in drops if d["id"] == "opencode:planted0001"]
    assert [(d["input"], d["kept_input"], d["kept_id"]) for d in planted] == \
        [("code", "math", "nemotron_math:planted-0001")]
    ids = {i for split in ("train", "validation") for f in (mix / split).glob("*.parquet")
           for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
    assert "nemotron_math:planted-0001" in ids and "opencode:planted0001" not in ids
    assert not {d["id"] for d in drops} & ids
    acc = manifest["accounting"]
    assert acc["dropped"] == {"near_duplicate": len(drops)} and acc["rows_read"] == acc["rows_written_total"] + len(drops)
    code = next(i for i in manifest["inputs"] if i["name"] == "code")
    assert sum(code["near_duplicate_drops"].values()) == sum(found["dropped"]["code"].values()) >= 1
    validation = json.loads((built["root"] / "out" / "_work" / "validate" / "mix.json").read_text())
    assert validation["ok"]


def test_a_near_duplicate_parameter_reruns_the_stage_and_the_merge_only(built):
    config = json.loads(json.dumps(built["config"]))
    config["merge"]["near_duplicates"] = {"threshold": 0.9}
    cfg = write_config(built["root"] / "threshold.yaml", config)
    assert dry_run_jobs(built["project"], TARGET, "--configfile", str(cfg)) == \
        with_checks({"mix_near_duplicates": 1, "merge_mix": 1, TARGET: 1})
    config["merge"]["near_duplicates"] = {"enabled": False}
    cfg = write_config(built["root"] / "off.yaml", config)
    assert dry_run_jobs(built["project"], TARGET, "--configfile", str(cfg)) == \
        with_checks({"merge_mix": 1, TARGET: 1})
