"""The decontamination stage through Snakemake (one build): a benchmark file planted from a few
demo rows' texts is indexed once, and every dataset's manifest counts the rows it removes; with
no benchmark configured the dry run has no index job."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from distill_data.builders.synth import quality_drop
from workflow_helpers import SMALL_SHARDS, copy_project, dry_run_jobs, small_mix_config, snakemake, write_config

DATASETS = {"synth": "synth_distill_phase1_high_550m", "code": "code_opencodeinstruct_55m",
            "math": "math_nemotron_v2_low_55m", "chat": "helpfulness_oasst2_15m"}


def planted_texts(raw) -> list[str]:
    """Texts of rows every builder reads and keeps unless decontaminated: the first math line's
    problem, each code shard's first perfect-score input, the first passing SYNTH queries, the
    first English prompts of the chat trees."""
    texts = [json.loads((raw / "math" / "low.jsonl").read_text().splitlines()[0])["problem"]]
    for shard in sorted((raw / "code").rglob("*.parquet")):
        rows = pq.read_table(shard, columns=["input", "average_test_score"]).to_pylist()
        texts.append(next(r["input"] for r in rows if float(r["average_test_score"]) == 1.0))
    for name in SMALL_SHARDS:
        rows = pq.read_table(raw / "synth" / name).to_pylist()
        texts += [r["query"] for r in rows if quality_drop(r["synth_id"], r["query"], r["synthetic_answer"],
                                                           r["constraints"], r["exercise"]) is None][:3]
    messages = pq.read_table(sorted((raw / "chat").rglob("*.parquet"))[0], columns=["text", "role", "lang"]).to_pylist()
    texts += [m["text"] for m in messages if m["role"] == "prompter" and m["lang"] == "en"][:3]
    return texts


def test_index_once_and_every_manifest_counts_its_drops(tmp_path):
    project = copy_project(tmp_path / "project")
    config = small_mix_config(tmp_path, seed=41)
    plain = write_config(tmp_path / "plain.yaml", config)
    assert "decontam_index" not in dry_run_jobs(project, *DATASETS.values(), "--configfile", str(plain))

    bench = tmp_path / "benchmarks" / "planted.jsonl"
    bench.parent.mkdir()
    bench.write_text(json.dumps({"id": "p0", "texts": planted_texts(tmp_path / "raw")}) + "\n", encoding="utf-8")
    config["decontam"] = {"benchmarks": [{"name": "planted", "files": [str(bench)], "fields": ["texts"]}],
                          "compare": ["prompt", "final"], "samples": 2}
    cfg = write_config(tmp_path / "decontam.yaml", config)
    jobs = dry_run_jobs(project, *DATASETS.values(), "--configfile", str(cfg))
    assert jobs["decontam_index"] == 1 and jobs["synth_scan"] == 2
    snakemake(project, *DATASETS.values(), "-j", "2", "--configfile", str(cfg))
    index_summary = json.loads((tmp_path / "out" / "_work" / "decontam" / "index.json").read_text())
    for section, name in DATASETS.items():
        manifest = json.loads((tmp_path / "out" / name / "manifest.json").read_text())
        dropped = manifest["accounting"]["dropped"].get("benchmark_planted", 0)
        found = manifest["decontamination"]
        assert dropped >= 1, section
        assert found["index_sha256"] == index_summary["index_sha256"] and found["compare"] == ["prompt", "final"]
        assert found["benchmarks"][0]["rows_dropped"] == dropped
        assert 1 <= len(found["benchmarks"][0]["samples"]) <= 2
        assert "benchmark_planted" in manifest["drop_reasons"]
    math = json.loads((tmp_path / "out" / DATASETS["math"] / "manifest.json").read_text())
    assert math["decontamination"]["benchmarks"][0]["samples"][0]["line"] == 1
    assert dry_run_jobs(project, *DATASETS.values(), "--configfile", str(cfg)) == {}
