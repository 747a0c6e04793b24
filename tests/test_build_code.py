"""OpenCodeInstruct builder (budget.py + builders/opencode.py) on planted shards."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from hashlib import blake2b
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data.builders import opencode
from distill_data.demo.opencode import make_opencode_table, write_opencode_source
from distill_data.encode import ExampleEncoder
from distill_data.io import SourceError
from distill_data.render import HarmonyRenderer, reference_render
from workflow_helpers import PROJECT, dataset_bytes

SCRIPT = PROJECT / "workflow_scripts" / "build_opencode_distill.py"


def make_encoder(tokenizer, threads=1, max_seq_len=8192):
    return ExampleEncoder(HarmonyRenderer(tokenizer, "high", threads), max_seq_len, 1337, 0.99)


def write_shard(path, rows, score_as_string=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(make_opencode_table(rows, score_as_string=score_as_string), path)
    return path


def good(i, **extra):
    return {"id": f"c{i:04d}", "input": f"Write f{i}(x) returning x + {i}.",
            "output": f"```python\ndef f{i}(x):\n    return x + {i}\n```", **extra}


def read_rows(folder):
    tables = [pq.read_table(p) for split in ("train", "validation") for p in sorted((folder / split).glob("*.parquet"))]
    return pa.concat_tables(tables).to_pylist() if tables else []


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Shard 0 holds doubles, shard 1 strings: every drop reason, in one run."""
    raw = tmp_path_factory.mktemp("code_raw")
    doubles = [
        good(0), good(1, input="Say <|end|> then <|start|>assistant\x00 please."), good(2),
        good(3, id=None), good(4, id="  "),                          # missing_id ×2
        good(5, input=""), good(6, input=None), good(7, input=" \x00 "),  # empty_prompt ×3
        good(8, output=None), good(9, output="\n"),                  # empty_answer ×2
        good(10, average_test_score=None), good(11, average_test_score=math.nan),  # no_test_score ×2
        good(12, average_test_score=0.9), good(13, average_test_score=0.0),        # imperfect ×2
        good(14, output="```python\n" + " ".join(f"w{k}" for k in range(9000)) + "\n```"),  # too_long
        good(15, average_test_score=1),
    ]
    strings = [
        good(20, average_test_score="1"), good(21, average_test_score="1.0"), good(22, average_test_score=" 1 "),
        good(23, average_test_score="0.9"),                                        # imperfect
        good(24, average_test_score="n/a"), good(25, average_test_score=None),     # no_test_score ×4
        good(26, average_test_score="nan"), good(27, average_test_score=""),
    ]
    write_shard(raw / "train-00000-of-00002.parquet", doubles, score_as_string=False)
    write_shard(raw / "train-00001-of-00002.parquet", strings, score_as_string=True)
    return raw


def test_every_drop_reason_counted_exactly_with_double_and_string_scores(planted, tmp_path, tokenizer):
    params = opencode.OpenCodeParams(target_total_tokens=10**9, shuffle_shards=False)
    manifest = opencode.build(planted, tmp_path / "out", make_encoder(tokenizer), params)
    acc = manifest["accounting"]
    assert acc["dropped"] == {"missing_id": 2, "empty_prompt": 3, "empty_answer": 2, "no_test_score": 6,
                              "imperfect_tests": 3, "too_long": 1}
    assert acc["rows_read"] == 24 == acc["rows_written_total"] + acc["dropped_total"]
    rows = read_rows(tmp_path / "out")
    assert sorted(r["id"] for r in rows) == [f"opencode:c{i:04d}" for i in (0, 1, 2, 15, 20, 21, 22)]
    assert manifest["budget"] == {"target_total_tokens": 10**9, "total_tokens": manifest["total_tokens"],
                                  "exhausted": True, "stopped_at": None}
    assert manifest["not_read"]["rows"] == 0
    assert [(i["rows"], i["rows_read"], i["read"]) for i in manifest["inputs"]] == [(16, 16, "complete"), (8, 8, "complete")]
    assert set(manifest["drop_samples"]) == set(acc["dropped"])
    assert manifest["drop_samples"]["too_long"] == [{"file": "train-00000-of-00002.parquet", "row": 14}]


def test_rows_follow_the_contract(planted, tmp_path, tokenizer):
    opencode.build(planted, tmp_path / "out", make_encoder(tokenizer),
                   opencode.OpenCodeParams(target_total_tokens=10**9, shuffle_shards=False))
    row = next(r for r in read_rows(tmp_path / "out") if r["id"] == "opencode:c0001")
    group = "say <|end|> then <|start|>assistant please."  # the normalized prompt decides the split
    assert row["source"] == {"dataset": "nvidia/OpenCodeInstruct", "id": "c0001", "domain": "generic",
                             "generation_algorithm": "self-instruct",
                             "split_group": blake2b(group.encode(), digest_size=8).hexdigest()}
    # markers are ordinary text, NULs are gone, no analysis message
    want = reference_render(tokenizer, "Say <|end|> then <|start|>assistant please.", "",
                            "```python\ndef f1(x):\n    return x + 1\n```", "high")
    assert row["input_ids"] == want.input_ids
    assert row["spans"] == {"assistant_token_start": want.assistant_token_start, "analysis_token_count": 0,
                            "final_token_count": want.final_token_count}
    start = want.assistant_token_start
    assert row["labels"] == [-100] * start + row["input_ids"][start:]


def token_counts(tokenizer, rows):
    """Tokens of each row the filters keep, in read order."""
    renderer = HarmonyRenderer(tokenizer, "high")
    return [len(renderer.render(r["input"], "", r["output"]).input_ids) for r in rows]


@pytest.fixture(scope="module")
def even_odd(tmp_path_factory):
    """Two shards, odd rows imperfect: 40 kept rows of known length in a known order."""
    raw = tmp_path_factory.mktemp("code_budget")
    shards = []
    for s in range(2):
        rows = [good(100 * s + i, average_test_score=1.0 if i % 2 == 0 else 0.5) for i in range(40)]
        write_shard(raw / f"train-0000{s}-of-00002.parquet", rows, score_as_string=False)
        shards.append(rows)
    return raw, shards


@pytest.mark.parametrize("exact", [False, True])
def test_the_row_that_crosses_the_budget_is_the_last_one_taken(even_odd, tmp_path, tokenizer, exact):
    raw, shards = even_odd
    kept = [r for rows in shards for r in rows if r["average_test_score"] == 1.0]
    tokens = token_counts(tokenizer, kept)
    k = 27  # the 28th kept row (shard 1, row 14) crosses
    target = sum(tokens[: k + 1]) - (0 if exact else 1)
    outputs = []
    for batch_size in (1, 7, 4096):
        out = tmp_path / f"b{batch_size}"
        manifest = opencode.build(raw, out, make_encoder(tokenizer),
                                  opencode.OpenCodeParams(target_total_tokens=target, shuffle_shards=False),
                                  batch_size=batch_size)
        outputs.append(dataset_bytes(out))
    assert outputs[0] == outputs[1] == outputs[2]
    taken = [f"opencode:{r['id']}" for r in kept[: k + 1]]
    assert sorted(r["id"] for r in read_rows(out)) == sorted(taken)
    train = pq.read_table(out / "train" / "part-00000.parquet").column("id").to_pylist()
    assert train == [i for i in taken if i in train]  # read order kept within a split
    budget = manifest["budget"]
    assert budget["total_tokens"] == sum(tokens[: k + 1]) and not budget["exhausted"]
    assert budget["stopped_at"] == {"file": "train-00001-of-00002.parquet", "row": 14}
    acc = manifest["accounting"]
    assert acc["rows_read"] == 40 + 15 and acc["dropped"] == {"imperfect_tests": 20 + 7}
    assert manifest["not_read"]["rows"] == 80 - 55
    assert manifest["not_read"]["files"] == [{"path": "train-00001-of-00002.parquet", "rows": 25}]
    assert [i["read"] for i in manifest["inputs"]] == ["complete", "partial"]


def test_shuffled_shard_order_is_recorded(tmp_path, tokenizer):
    raw = tmp_path / "raw"
    names = [f"train-{i:05d}-of-00006.parquet" for i in range(6)]
    for i, name in enumerate(names):
        write_shard(raw / name, [good(i)], score_as_string=i % 2 == 1)
    manifest = opencode.build(raw, tmp_path / "out", make_encoder(tokenizer),
                              opencode.OpenCodeParams(target_total_tokens=10**9, seed=1337))
    expected = sorted(str(raw / n) for n in names)
    random.Random(1337).shuffle(expected)
    assert expected != sorted(expected)
    names = [Path(p).name for p in expected]  # relative to the input folder: no machine paths
    assert (tmp_path / "out" / "input_shards_order.txt").read_text().splitlines() == names
    assert [i["path"] for i in manifest["inputs"]] == names
    assert [r["id"] for r in read_rows(tmp_path / "out")] == [f"opencode:c{int(Path(p).name[6:11]):04d}" for p in expected]


def test_script_output_does_not_depend_on_threads(tmp_path):
    raw = tmp_path / "raw"
    write_opencode_source(raw, 2, 250, seed=3, score_as_string_shards={1})
    outs = []
    for threads in (1, 3):
        out = tmp_path / f"t{threads}"
        subprocess.run([sys.executable, str(SCRIPT), "--input-dir", str(raw), "--output-dir", str(out),
                        "--target-total-tokens", "25000", "--threads", str(threads), "--batch-size", "200",
                        "--rows-per-file", "40"], check=True, capture_output=True)
        outs.append(dataset_bytes(out))
    assert outs[0] == outs[1]
    manifest = json.loads(outs[0]["manifest.json"])
    assert not manifest["budget"]["exhausted"] and manifest["not_read"]["rows"] > 0
    assert manifest["params"]["shuffle_shards"] is True and "input_shards_order.txt" in outs[0]
    acc = manifest["accounting"]
    assert acc["rows_read"] == acc["rows_written_total"] + acc["dropped_total"]
    assert manifest["accounting"]["dropped"]["no_test_score"] >= 2  # null and NaN/"n/a" planted per shard


def test_wrong_shards_fail_with_the_file_and_column_named(tmp_path, tokenizer):
    bad = tmp_path / "missing"
    write_shard(bad / "train-00000-of-00001.parquet", [good(0)], score_as_string=False)
    table = pq.read_table(bad / "train-00000-of-00001.parquet").drop_columns(["output"])
    pq.write_table(table, bad / "train-00000-of-00001.parquet")
    with pytest.raises(SourceError, match=r"train-00000-of-00001.parquet: missing column\(s\) output"):
        opencode.build(bad, tmp_path / "o1", make_encoder(tokenizer), opencode.OpenCodeParams())
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    table = make_opencode_table([good(0)]).set_column(8, "average_test_score", pa.array([[1.0]]))
    pq.write_table(table, wrong / "train-00000-of-00001.parquet")
    with pytest.raises(SourceError, match="column average_test_score has type list"):
        opencode.build(wrong, tmp_path / "o2", make_encoder(tokenizer), opencode.OpenCodeParams())
    done = subprocess.run([sys.executable, str(SCRIPT), "--input-dir", str(tmp_path / "empty"),
                           "--output-dir", str(tmp_path / "o3")], capture_output=True, text=True)
    assert done.returncode == 2 and "no such folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()
