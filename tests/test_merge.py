"""The merge (workflow_scripts/merge_distill_datasets.py, distill_data.merge) on four
contract-format inputs of very different sizes: every row once and unchanged, splits kept,
the prefix composition bound, byte-identical rebuilds, stats, samples and clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from distill_data import merge
from distill_data.demo.contract import write_contract_dataset
from distill_data.interleave import _max_scaled_deviation, interleave_schedule
from distill_data.mix_report import prefix_deviation
from distill_data.schema import SPLITS
from workflow_helpers import PROJECT, dataset_bytes

# name: rows, seed, mean prompt, mean assistant, source categories (as the real builders name them)
INPUTS = {
    "synth": (2000, 1, 150, 300, {"language": ["en", "en", "de"], "exercise": ["memorization", "rag", "mcq"]}),
    "code": (300, 2, 200, 900, {"domain": ["generic", "algorithmic"]}),
    "math": (50, 3, 100, 2500, {"data_source": ["AoPS", "StackExchange-Math"]}),
    "chat": (7, 4, 60, 200, {"lang": ["en", "pt-BR", ""]}),
}


def load_script():
    spec = importlib.util.spec_from_file_location("merge_script", PROJECT / "workflow_scripts" / "merge_distill_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()


def run_merge(inputs: dict, out: Path, *extra: str) -> Path:
    argv = [f"--input={name}={path}" for name, path in inputs.items()]
    SCRIPT.main([*argv, "--output-dir", str(out), "--rows-per-shard", "97", *extra])
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("merge_inputs")
    for name, (rows, seed, prompt, assistant, categories) in INPUTS.items():
        write_contract_dataset(root / name, name=name, rows=rows, seed=seed, mean_prompt=prompt,
                               mean_assistant=assistant, rows_per_file=64, train_frac=0.85, categories=categories)
    return {name: root / name for name in INPUTS}


@pytest.fixture(scope="module")
def mix(sources, tmp_path_factory, vocab_dir) -> Path:
    return run_merge(sources, tmp_path_factory.mktemp("mix") / "phase1_mix_8k_665m", "--batch-size", "50",
                     "--tokenizer-dir", str(vocab_dir))


def read_split(folder: Path, split: str) -> pa.Table:
    files = sorted((folder / split).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def rows_by_id(table: pa.Table) -> dict:
    return {row["id"]: row for row in table.to_pylist()}


# --- every row once, unchanged ---------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
def test_every_input_row_appears_exactly_once_in_its_own_split(sources, mix, split):
    mixed = read_split(mix, split).column("id").to_pylist()
    expected = []
    for folder in sources.values():
        expected += read_split(folder, split).column("id").to_pylist()
    assert len(mixed) == len(set(mixed)) == len(expected)
    assert Counter(mixed) == Counter(expected)


@pytest.mark.parametrize("split", SPLITS)
def test_rows_are_unchanged_but_for_the_canonical_source(sources, mix, split):
    mixed = read_split(mix, split)
    assert mixed.schema == merge.MIX_SCHEMA
    out = rows_by_id(mixed)
    for name, folder in sources.items():
        for row in read_split(folder, split).to_pylist():
            got = out[row["id"]]
            for column in ("input_ids", "labels", "attention_mask", "spans"):
                assert got[column] == row[column], (row["id"], column)
            original = row["source"]
            assert got["source"]["dataset"] == name
            assert json.loads(got["source"]["meta_json"]) == original
            assert got["source"]["meta_json"] == json.dumps(original, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            language = original.get("language") or original.get("lang") or "unknown"
            exercise = original.get("exercise") or original.get("domain") or original.get("data_source") or "unknown"
            assert (got["source"]["language"], got["source"]["exercise"]) == (language, exercise)


@pytest.mark.parametrize("split", SPLITS)
def test_each_input_keeps_its_row_order(sources, mix, split):
    datasets = read_split(mix, split).column("source").combine_chunks().field("dataset").to_pylist()
    ids = read_split(mix, split).column("id").to_pylist()
    for name, folder in sources.items():
        assert [i for i, d in zip(ids, datasets) if d == name] == read_split(folder, split).column("id").to_pylist()


def test_files_hold_a_fixed_number_of_rows(mix):
    manifest = json.loads((mix / "manifest.json").read_text())
    for split in SPLITS:
        whole = ds.dataset(mix / split, format="parquet").to_table()   # as training code reads it
        assert whole.schema == merge.MIX_SCHEMA
        assert whole.num_rows == manifest["accounting"]["rows_written"][split]
        rows = [f["rows"] for f in manifest["files"][split]]
        assert rows[:-1] == [97] * (len(rows) - 1) and 0 < rows[-1] <= 97
        for entry in manifest["files"][split]:
            path = mix / entry["path"]
            assert pq.ParquetFile(path).metadata.num_rows == entry["rows"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


# --- the composition of every prefix --------------------------------------------------------

def measure(spans: pa.Array, weight_by: str) -> list[int]:
    prompt = pc.struct_field(spans, "assistant_token_start").to_numpy().astype(np.int64)
    analysis = pc.struct_field(spans, "analysis_token_count").to_numpy().astype(np.int64)
    final = pc.struct_field(spans, "final_token_count").to_numpy().astype(np.int64)
    values = {"rows": np.ones(len(prompt), np.int64), "total_tokens": prompt + analysis + final,
              "assistant_tokens": analysis + final}[weight_by]
    return values.tolist()


def check_prefix_bound(folder: Path, weight_by: str) -> None:
    """For every prefix P of each split and every input i: |A_i(P) - s_i A(P)| <= B, exactly,
    read back from the written mix alone."""
    names = list(INPUTS)
    for split in SPLITS:
        table = read_split(folder, split)
        owner = [names.index(d) for d in table.column("source").combine_chunks().field("dataset").to_pylist()]
        weight = measure(table.column("spans").combine_chunks(), weight_by)
        per_input = [[w for o, w in zip(owner, weight) if o == i] for i in range(len(names))]
        worst, total, bound = _max_scaled_deviation(per_input, owner)
        assert worst <= bound * total, (split, weight_by, worst / total, bound)


def test_every_prefix_has_the_composition_of_the_whole_by_assistant_tokens(mix):
    check_prefix_bound(mix, "assistant_tokens")


@pytest.mark.parametrize("weight_by", ["rows", "total_tokens"])
def test_the_bound_holds_for_the_other_measures(sources, tmp_path, weight_by):
    out = run_merge(sources, tmp_path / "mix", "--weight-by", weight_by, "--samples-per-input", "0")
    check_prefix_bound(out, weight_by)
    composition = json.loads((out / "manifest.json").read_text())["composition"]["train"]
    assert composition["weight_by"] == weight_by
    assert composition["prefix_deviation"]["max_deviation_in_B"] <= 1


def test_the_first_percent_is_not_one_source(mix):
    """The original merge concatenated whole files: its first 1% was SYNTH alone."""
    datasets = read_split(mix, "train").column("source").combine_chunks().field("dataset").to_pylist()
    assert set(datasets[: len(datasets) // 50]) >= {"synth", "code", "math"}


def test_manifest_reports_shares_and_the_measured_deviation(mix):
    manifest = json.loads((mix / "manifest.json").read_text())
    for split in SPLITS:
        composition = manifest["composition"][split]
        shares = {name: v["target_share"] for name, v in composition["inputs"].items()}
        assert abs(sum(shares.values()) - 1) < 1e-6
        for entry in composition["inputs"].values():
            assert entry["realised_share"] == entry["target_share"]
        deviation = composition["prefix_deviation"]
        assert 0 < deviation["max_deviation_in_B"] <= 1
        assert deviation["bound_B"] == max(a + f for a, f in zip(
            *(pc.struct_field(read_split(mix, split).column("spans").combine_chunks(), k).to_pylist()
              for k in ("analysis_token_count", "final_token_count"))))


def test_at_the_real_scale_every_1_percent_prefix_is_within_0_2_points():
    """665M tokens in four inputs of 81/8/8/3% (rows up to 8192 tokens): the bound of one row
    is ~8k tokens against ~4M assistant tokens in 1% of the mix."""
    rng = np.random.default_rng(0)
    weights = []
    for token_share, mean in ((0.81, 500), (0.08, 900), (0.08, 2000), (0.03, 300)):
        rows = int(665e6 * 0.6 * token_share / mean)
        weights.append(np.minimum(rng.geometric(1 / mean, rows), 8192))
    schedule = np.frombuffer(interleave_schedule([w.tolist() for w in weights], 1337), dtype=np.uint8)
    report = prefix_deviation(schedule, weights, ["synth", "code", "math", "chat"])
    assert report["max_deviation_in_B"] <= 1
    assert report["max_pp_at_1pct_prefixes"] < 0.2


# --- determinism -----------------------------------------------------------------------------

def test_rebuilds_are_byte_identical_whatever_the_threads_and_batches(sources, mix, tmp_path, vocab_dir):
    again = run_merge(sources, tmp_path / "phase1_mix_8k_665m", "--threads", "3", "--batch-size", "7",
                      "--tokenizer-dir", str(vocab_dir))
    assert dataset_bytes(again) == dataset_bytes(mix)
    assert json.loads((mix / "build_info.json").read_text())["argv"]


def test_another_seed_keeps_the_rows_and_the_bound(sources, mix, tmp_path):
    """The seed only breaks ties between inputs due at the same time (interleave.py), so most
    seeds give the same order; whatever it gives keeps every row and the bound."""
    other = run_merge(sources, tmp_path / "mix", "--seed", "7", "--samples-per-input", "0")
    assert sorted(read_split(other, "train").column("id").to_pylist()) == \
        sorted(read_split(mix, "train").column("id").to_pylist())
    check_prefix_bound(other, "assistant_tokens")
    assert json.loads((other / "manifest.json").read_text())["params"]["seed"] == 7


# --- manifest, stats, samples ----------------------------------------------------------------

def test_manifest_lists_the_inputs_manifests_by_sha256(sources, mix):
    manifest = json.loads((mix / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == list(INPUTS)
    for entry in manifest["inputs"]:
        path = sources[entry["name"]] / "manifest.json"
        assert entry["manifest_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    accounting = manifest["accounting"]
    assert accounting["rows_read"] == accounting["rows_written_total"] == sum(r[0] for r in INPUTS.values())
    assert manifest["params"] == {"inputs": list(INPUTS), "seed": 1337, "weight_by": "assistant_tokens",
                                  "rows_per_file": 97, "samples_per_input": 3}


def test_stats_per_split_and_input(sources, mix):
    stats = json.loads((mix / "stats.json").read_text())
    for split in SPLITS:
        inputs = stats["splits"][split]["inputs"]
        assert set(inputs) == set(INPUTS)
        for name, entry in inputs.items():
            table = read_split(sources[name], split)
            lengths = pc.list_value_length(table.column("input_ids")).to_numpy()
            assert entry["rows"] == table.num_rows
            assert entry["total_tokens"] == int(lengths.sum())
            assert entry["assistant_tokens"] == entry["analysis_tokens"] + entry["final_tokens"]
            assert entry["length_percentiles"]["max"] == int(lengths.max())
            assert entry["length_percentiles"]["p50"] <= entry["length_percentiles"]["p99"]
        overall = stats["splits"][split]["all"]
        assert overall["rows"] == sum(e["rows"] for e in inputs.values())


def test_samples_are_decoded_with_the_trained_part_marked(mix):
    text = (mix / "samples.md").read_text()
    for name in INPUTS:
        assert f"\n## {name}\n" in text
    assert text.count("\n### `") == 3 * 3 + 3  # chat has 7 rows: 3; every input has >= 3
    assert text.count("Prompt (not trained):") == text.count("Trained:") == 12


def test_samples_and_stats_need_no_token_pass_when_disabled(sources, tmp_path):
    out = run_merge(sources, tmp_path / "mix", "--samples-per-input", "0")
    assert "no samples" in (out / "samples.md").read_text()


# --- canonical source ------------------------------------------------------------------------

def test_meta_json_matches_json_dumps_on_awkward_strings():
    values = ['plain', 'quote " inside', 'back\\slash', 'nl\nand\ttab', 'nul\x00bell\x07', 'ünïcødé 😀 \u2028',
              '', None, '</script>', '{"json": [1]}']
    source = pa.StructArray.from_arrays([pa.array(["ds"] * len(values)), pa.array(values), pa.array(values[::-1])],
                                        names=["dataset", "z_field", "a_field"])
    got = merge.meta_json(source).to_pylist()
    expected = [json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for row in source.to_pylist()]
    assert got == expected


def test_canonical_source_falls_back_to_unknown():
    source = pa.StructArray.from_arrays([pa.array(["d", "d", "d"]), pa.array(["x", None, ""]), pa.array([1, 2, 3])],
                                        names=["dataset", "domain", "number"])
    canonical = merge.canonical_source(source, "code").to_pylist()
    assert [c["exercise"] for c in canonical] == ["x", "unknown", "unknown"]
    assert {c["language"] for c in canonical} == {"unknown"} and {c["dataset"] for c in canonical} == {"code"}
    assert canonical[0]["meta_json"] == '{"dataset":"d","domain":"x","number":1}'


# --- errors that name the input and the problem ----------------------------------------------

def broken_copy(sources, tmp_path, name) -> dict:
    copies = dict(sources)
    copies[name] = tmp_path / name
    shutil.copytree(sources[name], copies[name])
    return copies


def expect_error(inputs, tmp_path, *words):
    with pytest.raises(merge.MergeError) as caught:
        run_merge(inputs, tmp_path / "mix", "--samples-per-input", "0")
    for word in words:
        assert word in str(caught.value)
    assert not (tmp_path / "mix").exists()


def test_an_input_without_manifest_is_named(sources, tmp_path):
    inputs = broken_copy(sources, tmp_path, "math")
    (inputs["math"] / "manifest.json").unlink()
    expect_error(inputs, tmp_path, "input math", "manifest.json")


def test_a_column_of_the_wrong_type_is_named(sources, tmp_path):
    inputs = broken_copy(sources, tmp_path, "code")
    path = inputs["code"] / "train" / "part-00000.parquet"
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("input_ids"), "input_ids",
                             table.column("input_ids").cast(pa.list_(pa.int64())))
    pq.write_table(table, path)
    expect_error(inputs, tmp_path, "input code", "input_ids", "int64")


def test_a_missing_part_file_is_named(sources, tmp_path):
    inputs = broken_copy(sources, tmp_path, "chat")
    (inputs["chat"] / "train" / "part-00000.parquet").unlink()
    expect_error(inputs, tmp_path, "input chat", "part-00000.parquet", "does not exist")


@pytest.mark.parametrize("keep_validation", [False, True], ids=["empty", "validation_only"])
def test_an_input_without_train_rows_is_refused(sources, tmp_path, keep_validation):
    inputs = broken_copy(sources, tmp_path, "chat")
    manifest = json.loads((inputs["chat"] / "manifest.json").read_text())
    splits = ["train"] if keep_validation else ["train", "validation"]
    for split in splits:
        for entry in manifest["files"][split]:
            (inputs["chat"] / entry["path"]).unlink()
        manifest["files"][split] = []
    (inputs["chat"] / "manifest.json").write_text(json.dumps(manifest))
    validation = sum(e["rows"] for e in manifest["files"]["validation"])
    assert (validation > 0) == keep_validation
    expect_error(inputs, tmp_path, "input chat", "no train rows", f"validation {validation}", "merge.inputs")


def test_spans_that_do_not_add_up_are_named(sources, tmp_path):
    inputs = broken_copy(sources, tmp_path, "math")
    path = inputs["math"] / "train" / "part-00000.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[3]["spans"]["final_token_count"] += 1
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    manifest = json.loads((inputs["math"] / "manifest.json").read_text())
    (inputs["math"] / "manifest.json").write_text(json.dumps(manifest))
    expect_error(inputs, tmp_path, "input math", rows[3]["id"], "spans do not add up")


def test_a_bad_input_flag_and_a_repeated_name_are_refused(sources, tmp_path):
    with pytest.raises(merge.MergeError, match="NAME=DIR"):
        merge.parse_input_spec("synth")
    with pytest.raises(merge.MergeError, match="given twice: synth"):
        merge.open_inputs([("synth", sources["synth"]), ("synth", sources["code"])])
