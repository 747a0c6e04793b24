"""Near-duplicate prompts across the mix's inputs (distill_data.minhash, distill_data.neardup,
workflow_scripts/find_near_duplicates.py) and the merge with its drop list: planted reworded
prompts found across sources and one kept by priority, a pair below the threshold left alone,
determinism, and the validator catching a mix that does not match its list."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data import minhash
from distill_data.merge import MergeParams, build_mix, open_inputs
from distill_data.neardup import NearDupParams, NearDuplicateError
from distill_data.validate import Options, validate
from neardup_helpers import prompt_text, write_prompt_dataset
from workflow_helpers import PROJECT

P = prompt_text(1, words=200)
# P reworded: re-cased, re-spaced, two words changed, two swapped (true Jaccard ~0.86)
WORDS = P.split()
WORDS[10], WORDS[11] = WORDS[11], WORDS[10]
WORDS[30] = "granite"
WORDS[50] = "harvest"
REWORDED = "  " + "\n".join(" ".join(WORDS[i:i + 7]) for i in range(0, len(WORDS), 7)).upper() + " "
THIRD = P.replace("Please explain:", "Kindly explain:")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT / "workflow_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIND = load_script("find_near_duplicates")


def true_jaccard(a: str, b: str, k: int = 5) -> float:
    hasher = minhash.WordHasher(k)
    x, y = set(hasher.shingles(a).tolist()), set(hasher.shingles(b).tolist())
    return len(x & y) / len(x | y)


def make_inputs(root: Path, tokenizer, planted: dict[str, list[tuple[str, str, str]]], unrelated: int = 4) -> dict:
    """Each input: its planted rows plus `unrelated` rows with prompts of their own."""
    folders = {}
    for k, (name, rows) in enumerate(planted.items()):
        extra = [(f"u{j}", prompt_text(100 + 10 * k + j), "train") for j in range(unrelated)]
        write_prompt_dataset(root / name, name, rows + extra, tokenizer)
        folders[name] = root / name
    return folders


def run_stage(folders: dict, out: Path, *extra: str) -> tuple[pa.Table, dict]:
    FIND.main([*(f"--input={n}={p}" for n, p in folders.items()), "--output", str(out / "drops.parquet"),
               "--summary", str(out / "summary.json"), *extra])
    return pq.read_table(out / "drops.parquet"), json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("neardup")
    folders = make_inputs(root, tokenizer, {
        "synth": [("p", P, "train")],
        "code": [],
        "math": [("p", REWORDED, "validation")],
        "chat": [],
    })
    drops, summary = run_stage(folders, root / "stage")
    return {"root": root, "folders": folders, "drops": drops, "summary": summary}


# --- the stage -----------------------------------------------------------------------------------

def test_the_planted_pair_is_reworded_but_above_the_threshold():
    assert 0.8 < true_jaccard(P, REWORDED) < 0.9
    assert P.casefold() != REWORDED.casefold()


def test_a_reworded_prompt_in_two_sources_is_one_cluster_kept_from_the_priority_source(planted):
    summary, drops = planted["summary"], planted["drops"].to_pylist()
    assert summary["clusters"] == 1 and summary["clusters_across_inputs"] == {"math+synth": 1}
    assert summary["clusters_within_one_input"] == {}
    assert [(d["input"], d["split"], d["id"], d["kept_input"], d["kept_split"], d["kept_id"]) for d in drops] == \
        [("synth", "train", "synth:p", "math", "validation", "math:p")]       # math before synth
    assert drops[0]["jaccard"] >= 0.8
    assert summary["clusters_straddling_the_split_before_the_policy"] == 1   # the leak it prevents
    assert summary["dropped"]["synth"] == {"train": 1, "validation": 0} and summary["dropped_total"] == 1
    assert summary["inputs"]["code"]["rows_hashed"] == {"train": 4, "validation": 0}
    sample = summary["sample_clusters"][0]
    assert [(r["input"], r["kept"]) for r in sample["rows"]] == [("math", True), ("synth", False)]
    assert sample["rows"][1]["prompt"].startswith("Please explain:") and len(sample["rows"][1]["prompt"]) <= 200


def test_the_priority_decides_the_kept_row(planted, tmp_path):
    drops, _ = run_stage(planted["folders"], tmp_path, "--priority", "synth", "math")
    assert [(d["id"], d["kept_id"]) for d in drops.to_pylist()] == [("math:p", "synth:p")]


def test_unrelated_prompts_make_no_cluster(tmp_path, tokenizer):
    folders = make_inputs(tmp_path, tokenizer, {"code": [], "math": []}, unrelated=6)
    drops, summary = run_stage(folders, tmp_path / "stage")
    assert drops.num_rows == 0 and summary["clusters"] == 0 and summary["verified_pairs"] == 0


def test_a_pair_just_below_the_threshold_is_not_clustered(tmp_path, tokenizer):
    words = P.split()
    for i in range(20, 200, 26):       # seven words changed: true Jaccard ~0.71
        words[i] = "changed" + str(i)
    below = " ".join(words)
    assert 0.65 < true_jaccard(P, below) < 0.75
    folders = make_inputs(tmp_path, tokenizer, {"code": [("p", P, "train")], "math": [("p", below, "train")]})
    drops, summary = run_stage(folders, tmp_path / "stage")
    assert drops.num_rows == 0 and summary["clusters"] == 0
    # the same pair is one cluster at a threshold under its similarity
    drops, summary = run_stage(folders, tmp_path / "low", "--threshold", "0.6")
    assert summary["clusters"] == 1 and drops.column("id").to_pylist() == ["code:p"]


def test_a_cluster_across_three_sources_keeps_exactly_one(tmp_path, tokenizer):
    folders = make_inputs(tmp_path, tokenizer, {"synth": [("p", THIRD, "train")], "code": [("p", P, "train")],
                                                "chat": [("p", REWORDED, "train")]})
    drops, summary = run_stage(folders, tmp_path / "stage")
    assert summary["clusters"] == 1 and summary["cluster_sizes"] == [{"size": 3, "clusters": 1}]
    assert summary["clusters_across_inputs"] == {"chat+code+synth": 1}
    assert sorted(drops.column("id").to_pylist()) == ["chat:p", "synth:p"]
    assert set(drops.column("kept_id").to_pylist()) == {"code:p"}


def test_rows_of_one_problem_are_not_near_duplicates_of_each_other(tmp_path, tokenizer):
    """Two answers to one prompt in one input share its split group: the builder keeps both."""
    folders = make_inputs(tmp_path, tokenizer, {"math": [("a", P, "train"), ("b", P, "train")]})
    drops, summary = run_stage(folders, tmp_path / "stage")
    assert drops.num_rows == 0 and summary["clusters"] == 0


def test_the_same_inputs_give_the_same_bytes_whatever_their_order(planted, tmp_path):
    run_stage(planted["folders"], tmp_path / "again")
    first = planted["root"] / "stage"
    assert (tmp_path / "again" / "drops.parquet").read_bytes() == (first / "drops.parquet").read_bytes()
    assert (tmp_path / "again" / "summary.json").read_bytes() == (first / "summary.json").read_bytes()
    reversed_inputs = dict(reversed(list(planted["folders"].items())))
    drops, summary = run_stage(reversed_inputs, tmp_path / "reversed")
    assert drops.equals(planted["drops"])
    assert summary == planted["summary"]


# --- MinHash and LSH ------------------------------------------------------------------------------

def test_signatures_do_not_depend_on_the_batch_and_estimate_the_jaccard():
    hasher = minhash.WordHasher(5)
    seeds = minhash.permutation_seeds(256, 7)
    texts = [P, REWORDED, THIRD, prompt_text(2)]
    together = minhash.signatures([hasher.shingles(t) for t in texts], seeds)
    alone = np.concatenate([minhash.signatures([hasher.shingles(t)], seeds) for t in texts])
    assert np.array_equal(together, alone)
    for b in range(1, 4):
        estimate = float(minhash.estimated_jaccard(together, np.array([0]), np.array([b]))[0])
        assert abs(estimate - true_jaccard(P, texts[b])) < 0.1
    assert float(minhash.estimated_jaccard(together, np.array([0]), np.array([3]))[0]) < 0.1


def test_bands_and_candidates_agree_with_datasketch():
    datasketch = pytest.importorskip("datasketch")
    assert minhash.lsh_params(0.8, 128) == (16, 8)
    assert minhash.lsh_params(0.8, 128, 0.5) == datasketch.lsh._optimal_param(0.8, 128, 0.5, 0.5) == (9, 13)
    assert minhash.lsh_params(0.5, 64) == datasketch.lsh._optimal_param(0.5, 64, 0.05, 0.95)
    hasher = minhash.WordHasher(5)
    texts = [P, REWORDED, THIRD] + [prompt_text(s) for s in range(2, 30)]
    words = P.split()
    texts += [" ".join(words[:k] + ["x"] * (k // 8) + words[k + k // 8:]) for k in range(0, 200, 12)]
    sig = minhash.signatures([hasher.shingles(t) for t in texts], minhash.permutation_seeds(128, 3))
    ours = {tuple(p) for p in minhash.candidate_pairs(sig, 16, 8, np.arange(len(sig))).tolist()}
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128, params=(16, 8))
    for i, values in enumerate(sig):
        lsh.insert(i, datasketch.LeanMinHash(seed=3, hashvalues=values, scheme="affine32"))
    theirs = {tuple(sorted((i, j))) for i, values in enumerate(sig)
              for j in lsh.query(datasketch.LeanMinHash(seed=3, hashvalues=values, scheme="affine32")) if j != i}
    assert ours == theirs and len(ours) > 10


def test_union_find_joins_chains():
    assert minhash.clusters([0, 5, 2, 9], [1, 2, 3, 8]) == [[0, 1], [2, 3, 5], [8, 9]]


# --- the merge with a drop list ------------------------------------------------------------------

@pytest.fixture(scope="module")
def merged(planted, tmp_path_factory, vocab_dir):
    out = tmp_path_factory.mktemp("mix") / "mix"
    specs = list(planted["folders"].items())
    build_mix(specs, out, MergeParams(inputs=tuple(planted["folders"]), rows_per_file=5, samples_per_input=0),
              drop_list=planted["root"] / "stage" / "drops.parquet")
    return out


def mix_ids(mix: Path) -> list[str]:
    return [i for split in ("train", "validation") for f in sorted((mix / split).glob("*.parquet"))
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


def test_the_merge_leaves_the_drops_out_and_accounts_for_them(planted, merged):
    ids = mix_ids(merged)
    inputs = [i for inp in open_inputs(list(planted["folders"].items())) for s in ("train", "validation")
              for f in inp.files[s] for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert "synth:p" not in ids and "math:p" in ids
    assert sorted(ids) == sorted(set(inputs) - {"synth:p"}) and len(ids) == len(set(ids))
    manifest = json.loads((merged / "manifest.json").read_text())
    acc = manifest["accounting"]
    assert acc["rows_read"] == len(inputs) == acc["rows_written_total"] + acc["dropped_total"]
    assert acc["dropped"] == {"near_duplicate": 1}
    synth = next(i for i in manifest["inputs"] if i["name"] == "synth")
    assert synth["near_duplicate_drops"] == {"train": 1, "validation": 0} and synth["rows"]["train"] == 5
    assert manifest["composition"]["train"]["inputs"]["synth"]["rows"] == 4
    assert manifest["near_duplicates"]["clusters"] == 1
    assert (merged / "near_duplicates.parquet").read_bytes() == (planted["root"] / "stage" / "drops.parquet").read_bytes()
    report = validate(merged, Options(sample_rows=5))
    assert report["ok"], report["failed_checks"]


def tampered(merged: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "mix"
    shutil.copytree(merged, copy)
    for name in json.loads((merged / "manifest.json").read_text())["inputs"]:   # the inputs beside it
        target = tmp_path / Path(name["path"]).name
        if not target.exists():
            shutil.copytree((merged / name["path"]).resolve(), target)
    return copy


def failures(report: dict) -> list[str]:
    return [e["problem"] for e in report["checks"]["mix_rows"]["examples"]]


def test_the_validator_catches_an_edited_drop_list(merged, tmp_path):
    mix = tampered(merged, tmp_path)
    table = pq.read_table(mix / "near_duplicates.parquet")
    pq.write_table(table.slice(0, 0), mix / "near_duplicates.parquet")
    report = validate(mix, Options(sample_rows=5))
    assert not report["ok"] and "mix_rows" in report["failed_checks"]
    problems = failures(report)
    assert any("is not the drop list the manifest lists" in p for p in problems)
    assert any("input row missing from the mix" in p for p in problems)


def test_the_validator_catches_a_dropped_row_in_the_mix(planted, merged, tmp_path):
    """A mix built without the list, given the list's manifest section: the listed row is there."""
    mix = tmp_path / "mix"
    build_mix(list(planted["folders"].items()), mix,
              MergeParams(inputs=tuple(planted["folders"]), rows_per_file=5, samples_per_input=0))
    manifest = json.loads((mix / "manifest.json").read_text())
    listed = json.loads((merged / "manifest.json").read_text())
    manifest["near_duplicates"] = listed["near_duplicates"]
    (mix / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(merged / "near_duplicates.parquet", mix / "near_duplicates.parquet")
    report = validate(mix, Options(sample_rows=5), inputs=list(planted["folders"].items()))
    problems = failures(report)
    assert any("listed as a near-duplicate drop (of math:p), but in the mix" in p for p in problems)
    assert any("accounting.dropped.near_duplicate = 0, the drop list has 1 rows" in p for p in problems)


def test_a_drop_list_made_from_other_inputs_is_refused(planted, tmp_path, tokenizer):
    folders = dict(planted["folders"])
    shutil.copytree(folders["code"], tmp_path / "code")
    manifest = json.loads((tmp_path / "code" / "manifest.json").read_text())
    manifest["params"]["seed"] = 7                 # another build of code
    (tmp_path / "code" / "manifest.json").write_text(json.dumps(manifest))
    folders["code"] = tmp_path / "code"
    with pytest.raises(NearDuplicateError, match="was made from another build of input code"):
        build_mix(list(folders.items()), tmp_path / "mix",
                  MergeParams(inputs=tuple(folders), samples_per_input=0),
                  drop_list=planted["root"] / "stage" / "drops.parquet")
    assert not (tmp_path / "mix").exists()


def test_stage_on_inputs_with_an_empty_split_and_params_recorded(planted):
    params = planted["summary"]["params"]
    assert params == {**NearDupParams().to_dict()}
    assert params["bands"] * params["rows_per_band"] <= params["num_perm"]


def test_an_input_losing_most_of_its_rows_to_the_policy_is_a_warning():
    """A too-low threshold or a source repeating itself shows in the mix manifest and the log."""
    from types import SimpleNamespace

    from distill_data import neardup

    inputs = [SimpleNamespace(name="code", rows={"train": 90, "validation": 10}),
              SimpleNamespace(name="math", rows={"train": 100, "validation": 0}),
              SimpleNamespace(name="chat", rows={"train": 10, "validation": 0})]
    ids = {"code": {"train": frozenset(f"c{i}" for i in range(55)), "validation": frozenset()},
           "math": {"train": frozenset(f"m{i}" for i in range(50)), "validation": frozenset()},
           "chat": {"train": frozenset(f"h{i}" for i in range(9)), "validation": frozenset()}}
    drops = neardup.DropList(Path("drops.parquet"), {"params": {"threshold": 0.5}}, ids, 114)
    assert neardup.drop_warnings(drops, inputs) == [
        "input code: near-duplicates removed 55 of its 100 rows (Jaccard at least merge.near_duplicates.threshold 0.5); "
        "see the manifest's near_duplicates clusters"]  # math: half, not more; chat: too few rows to judge


def test_the_demo_like_merge_has_no_near_duplicate_warning(merged):
    manifest = json.loads((merged / "manifest.json").read_text())
    assert not [w for w in manifest["warnings"] if "near-duplicates removed" in w]
