"""The SYNTH builder on planted rows: every drop reason counted exactly, the output format,
and the sampling rates."""

from __future__ import annotations

import json
import subprocess
import sys
from hashlib import blake2b
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill_data.builders import synth, synth_plan
from distill_data.demo.synth import make_synth_table, write_synth_source
from distill_data.encode import ExampleEncoder
from distill_data.render import HarmonyRenderer
from distill_data.schema import example_schema

PROJECT = Path(__file__).resolve().parent.parent

SCRIPT = Path(__file__).resolve().parent.parent / "workflow_scripts" / "build_synth_distill.py"
LONG_ANSWER = " ".join(f"token{i} ∴ 中文" for i in range(9000))


def u(value: str, seed: int, salt: str) -> float:
    """CONTRACT.md's hash, written out again so the test does not trust the code under test."""
    return int.from_bytes(blake2b(f"{seed}:{salt}:{value}".encode(), digest_size=8).digest(), "big") / 2**64


def build(input_dir: Path, output_dir: Path, *flags: str) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_synth_distill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--input-dir", str(input_dir), "--output-dir", str(output_dir), "--rows-per-file", "7", *flags])
    return json.loads((output_dir / "manifest.json").read_text())


def ok_row(i: int, **fields) -> dict:
    row = {"synth_id": f"rag_1_{i}", "language": "en", "exercise": "rag", "query": f"Question {i}?",
           "query_seed_text": "Seed text.", "synthetic_reasoning": "Some reasoning.",
           "synthetic_answer": f"Answer {i}.", "constraints": ""}
    row.update(fields)
    return row


PLANTED = {
    "missing_id": [ok_row(1, synth_id=None), ok_row(2, synth_id="  ")],
    "missing_query": [ok_row(3, query=None), ok_row(4, query=""), ok_row(5, query=" \x00 ")],
    "empty_answer": [ok_row(6, synthetic_answer=None), ok_row(7, synthetic_answer=""),
                     ok_row(8, synthetic_answer="\x00\n"), ok_row(9, synthetic_answer="   ")],
    "failed_max_attempts": [
        ok_row(10, exercise="math mcq", constraints="result:Failed after maximum attempts", synthetic_answer="A. 3"),
        ok_row(11, exercise="math exercise", constraints="result:Failed after maximum attempts", synthetic_answer="**4**"),
    ],
    "result_mismatch": [
        ok_row(12, exercise="math exercise", constraints="result:-195.45", synthetic_answer="So **Answer: $195.45**"),
        ok_row(13, exercise="math mcq", constraints="result:1", synthetic_answer="C. 2"),
    ],
    # a number is what a reader compares; an answer without one states no result (issue 8)
    "no_result_stated": [
        ok_row(14, exercise="math exercise", constraints="result:16020", synthetic_answer="No number here."),
    ],
    "too_long": [ok_row(15, synthetic_answer=LONG_ANSWER)],
}
PASSING = [
    ok_row(20, exercise="math exercise", constraints="result:16020", synthetic_answer="It weighs **16,020 pounds**."),
    ok_row(21, exercise="math exercise", constraints="result:-195.45", synthetic_answer="Net: **Answer: -$195.45**"),
    ok_row(22, exercise="math mcq", constraints="result:1", synthetic_answer="B. 1"),
    ok_row(23, exercise="math exercise", constraints="result:0.3333", synthetic_answer="**0.33**"),
    ok_row(24, exercise="mcq", constraints="domain:history, exercise:fact recall, answer_shape:standard"),
    ok_row(25, exercise="constrained writing", synthetic_reasoning="", constraints="length_constraints:number_sentences[3]"),
    ok_row(26, query="Marker <|end|> and <|start|>assistant", synthetic_answer="<|return|> literal\x00"),
    ok_row(27, language=None, query_seed_text=None),
] + [ok_row(100 + i, exercise="memorization", synth_id=f"memorization_1_{i}") for i in range(12)]

# Same query and answer as a PASSING row once normalized (case, whitespace, NFKC), later in
# read order under another id: dropped as duplicate_content; the earlier row is kept.
DUPLICATES = [
    ok_row(40, query="  QUESTION 20? ", synthetic_answer="It  weighs **16,020 pounds**.", exercise="math exercise",
           constraints="result:16020"),
    ok_row(41, query="Question\u00a024?", synthetic_answer="answer 24."),
]
PLANTED_DROPS = {**{reason: len(rows) for reason, rows in PLANTED.items()}, "duplicate_content": len(DUPLICATES)}

NO_SAMPLING = ("--global-keep", "1", "--memorization-cap", "1", "--english-frac", "0")


@pytest.fixture
def planted_dir(tmp_path):
    rows = [row for group in PLANTED.values() for row in group] + PASSING + DUPLICATES
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    return folder


def test_each_quality_drop_reason_is_counted_exactly(planted_dir, tmp_path):
    manifest = build(planted_dir, tmp_path / "out", *NO_SAMPLING)
    acc = manifest["accounting"]
    assert acc["dropped"] == PLANTED_DROPS
    assert acc["rows_read"] == len(PASSING) + sum(map(len, PLANTED.values())) + len(DUPLICATES)
    assert acc["rows_written_total"] == len(PASSING)
    assert acc["rows_read"] == acc["rows_written_total"] + acc["dropped_total"]


def test_output_rows_follow_the_contract(planted_dir, tmp_path, tokenizer):
    out = tmp_path / "out"
    manifest = build(planted_dir, out, *NO_SAMPLING, "--train-frac", "0.5")
    files = [out / f["path"] for split in ("train", "validation") for f in manifest["files"][split]]
    assert all(f["rows"] == 7 for f in manifest["files"]["train"][:-1])
    assert manifest["files"]["validation"], "train_frac 0.5 must give validation rows"
    schema = example_schema(synth.SOURCE_TYPE)
    seen = set()
    for path in files:
        table = pq.read_table(path)
        assert table.schema.remove_metadata() == schema
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
        for row in table.to_pylist():
            ids, labels, spans = row["input_ids"], row["labels"], row["spans"]
            start = spans["assistant_token_start"]
            assert len(ids) == len(labels) == len(row["attention_mask"]) <= 8192
            assert set(row["attention_mask"]) == {1}
            assert labels[:start] == [-100] * start and labels[start:] == ids[start:]
            assert start + spans["analysis_token_count"] + spans["final_token_count"] == len(ids)
            assert row["id"] == f"pleias_synth:{row['source']['synth_id']}" and row["id"] not in seen
            seen.add(row["id"])
            text = tokenizer.harmony.decode_utf8(ids)
            assert "Reasoning: high" in text and "\x00" not in text
            if row["source"]["synth_id"] == "rag_1_25":
                assert spans["analysis_token_count"] == 0
            if row["source"]["synth_id"] == "rag_1_20":
                assert "Question 20?\n\nReference:\nSeed text.<|end|>" in text
    assert len(seen) == len(PASSING)


def test_seed_text_switch_and_rag_sources(tmp_path, tokenizer):
    folder = tmp_path / "in"
    folder.mkdir()
    row = ok_row(1, constraints="<source_1>\nDoc one.\n</source_1>")
    pq.write_table(make_synth_table([row]), folder / "synth_001.parquet")
    for flags, expect in [((), "Question 1?\n\nReference:\nSeed text.<|end|>"),
                          (("--no-seed-text",), "Question 1?<|end|>"),
                          (("--append-rag-sources",), "Seed text.\n\nSources:\n<source_1>\nDoc one.\n</source_1><|end|>")]:
        out = tmp_path / f"out{len(flags)}{flags[:1]}"
        manifest = build(folder, out, *NO_SAMPLING, "--train-frac", "1", *flags)
        ids = pq.read_table(out / manifest["files"]["train"][0]["path"]).column("input_ids")[0].as_py()
        assert expect in tokenizer.harmony.decode_utf8(ids)


def test_sampling_drops_follow_the_hash_rule(tmp_path):
    rows = []
    for i in range(400):
        lang = ["en", "en", "de", None][i % 4]
        exercise = "memorization" if i % 10 < 8 else "rag"
        rows.append(ok_row(i, synth_id=f"{exercise}_{i}", language=lang, exercise=exercise))
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    manifest = build(folder, tmp_path / "out", "--global-keep", "0.5")
    plan = manifest["sampling_plan"]
    assert 0 < plan["mem_keep"] < 1
    expected = {"memorization_cap": 0, "english_target": 0, "global_keep": 0}
    for row in rows:
        key = row["synth_id"]
        if row["exercise"] == "memorization" and u(key, 1337, "mem") > plan["mem_keep"]:
            expected["memorization_cap"] += 1
        elif row["language"] != "en" and u(key, 1337, "lang") > plan["non_en_keep"]:
            expected["english_target"] += 1
        elif u(key, 1337, "global") > 0.5:
            expected["global_keep"] += 1
    assert manifest["accounting"]["dropped"] == {k: v for k, v in expected.items() if v}


@pytest.mark.parametrize("passing, cap, frac", [
    ({"memorization_english": 700, "memorization_other": 200, "other_english": 60, "other_other": 40}, 0.7, 0.75),
    ({"memorization_english": 100, "memorization_other": 500, "other_english": 300, "other_other": 900}, 0.3, 0.75),
    ({"memorization_english": 10, "memorization_other": 0, "other_english": 90, "other_other": 0}, 0.7, 0.75),
])
def test_sampling_rates_meet_both_targets_and_keep_the_most(passing, cap, frac):
    mem_keep, non_en_keep = synth_plan.solve_rates(passing, cap, frac)
    me, mo, oe, oo = (passing[k] for k in ("memorization_english", "memorization_other", "other_english", "other_other"))
    kept_mem = (me + mo * non_en_keep) * mem_keep
    kept_en = oe + me * mem_keep
    kept = kept_mem + oe + oo * non_en_keep
    assert kept_mem <= cap * kept + 1e-6
    assert kept_en >= frac * kept - 1e-6
    # maximal: each rate is 1 or its constraint binds
    assert mem_keep == 1.0 or kept_mem == pytest.approx(cap * kept, rel=1e-6)
    assert non_en_keep == 1.0 or kept_en == pytest.approx(frac * kept, rel=1e-6)


def test_encoding_error_is_counted_not_fatal(tmp_path, tokenizer):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [ok_row(1), ok_row(2, synthetic_answer="BOOM"), ok_row(3)]
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    mask, summary = synth.scan_shard(folder / "synth_001.parquet")
    pq.write_table(mask, tmp_path / "mask.parquet")
    renderer = HarmonyRenderer(tokenizer, "high", 1)
    ordinary = renderer._encode

    def failing(text):
        if text == "BOOM":
            raise ValueError("cannot encode")
        return ordinary(text)

    renderer._encode = failing
    params = synth.SynthParams(global_keep=1, memorization_cap=1, english_frac=0)
    plan = synth_plan.make_plan([summary], params)
    stats = synth.encode_shard(folder / "synth_001.parquet", tmp_path / "mask.parquet", plan,
                               ExampleEncoder(renderer, 8192, 1337, 0.99), params, tmp_path / "enc", "synth_001.parquet")
    assert dict(stats.accounting.drops) == {"encoding_error": 1}
    assert stats.accounting.rows_written == 2


def test_generated_shards_balance_and_match_the_standalone_rerun(tmp_path):
    names = ["synth_010.parquet", "synth_034.parquet"]
    write_synth_source(tmp_path / "raw", names, 400, seed=5)
    first = build(tmp_path / "raw", tmp_path / "a", "--threads", "1")
    second = build(tmp_path / "raw", tmp_path / "b", "--threads", "3", "--batch-size", "77")
    acc = first["accounting"]
    assert acc["rows_read"] == 800 == acc["rows_written_total"] + acc["dropped_total"]
    assert {"global_keep", "memorization_cap", "result_mismatch"} <= set(acc["dropped"])
    unsampled = build(tmp_path / "raw", tmp_path / "c", *NO_SAMPLING)["accounting"]["dropped"]
    assert {"too_long", "result_mismatch", "failed_max_attempts", "empty_answer"} <= set(unsampled)
    assert first == second
    for split in ("train", "validation"):
        for f in first["files"][split]:
            assert (tmp_path / "a" / f["path"]).read_bytes() == (tmp_path / "b" / f["path"]).read_bytes()


def test_unreadable_shard_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "synth_001.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(Exception) as info:
        build(folder, tmp_path / "out")
    assert "synth_001.parquet" in str(info.value) and "not a readable parquet file" in str(info.value)


def test_a_repeated_synth_id_across_shards_stops_the_build(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table([ok_row(1), ok_row(2)]), folder / "synth_001.parquet")
    # same id, other content (identical content would be a duplicate_content drop first)
    pq.write_table(make_synth_table([ok_row(3), ok_row(2, synthetic_answer="Another answer.")]),
                   folder / "synth_002.parquet")
    with pytest.raises(Exception, match=r"synth_002.parquet: pleias_synth:rag_1_2 appears in more than one row"):
        build(folder, tmp_path / "out", *NO_SAMPLING, "--train-frac", "1")
    assert not (tmp_path / "out").exists()


# --- shares by rows or by assistant tokens (issue 17, item 9) --------------------------------------

def build_synth_all(tmp_path: Path, vocab_dir: Path, name: str, *flags: str) -> dict:
    """The demo's SYNTH shards through the script's all-in-one stage; the manifest."""
    raw = tmp_path / "raw"
    if not raw.exists():
        write_synth_source(raw, ["synth_010.parquet", "synth_034.parquet"], 1500, 1337)
    out = tmp_path / name
    done = subprocess.run([sys.executable, str(PROJECT / "workflow_scripts" / "build_synth_distill.py"),
                           "--input-dir", str(raw), "--output-dir", str(out), "--tokenizer-dir", str(vocab_dir),
                           "--global-keep", "1", *flags], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


def test_the_memorization_cap_holds_by_tokens_when_asked(tmp_path, vocab_dir):
    """By rows (the seed's rule) the cap holds for rows while memorization, whose answers are
    longer, is most of the assistant tokens; `--shares-by tokens` makes the cap hold for them."""
    by_rows = build_synth_all(tmp_path, vocab_dir, "rows")
    by_tokens = build_synth_all(tmp_path, vocab_dir, "tokens", "--shares-by", "tokens")
    rows_mem = by_rows["targets"]["memorization_share"]["realised"]
    tokens_mem = by_tokens["targets"]["memorization_share"]["realised"]
    assert by_rows["targets"]["measured_by"] == "rows" and by_rows["params"]["shares_by"] == "rows"
    assert rows_mem["rows"] <= 0.70 + 0.02 and rows_mem["assistant_tokens"] > 0.75  # the reported gap
    assert by_tokens["targets"]["measured_by"] == "assistant_tokens"
    assert tokens_mem["assistant_tokens"] <= 0.70 + 0.02
    assert tokens_mem["rows"] < rows_mem["rows"]  # fewer (long) memorization rows kept
    english = by_tokens["targets"]["english_share"]["realised"]["assistant_tokens"]
    assert english >= 0.75 - 0.02
    plan = by_tokens["sampling_plan"]
    assert plan["shares_by"] == "tokens" and plan["mem_keep"] < by_rows["sampling_plan"]["mem_keep"]
    assert set(plan["passing_quality_bytes"]) == set(plan["passing_quality"])
    assert by_rows["warnings"] == [] and by_tokens["warnings"] == []


def test_a_target_missed_in_its_measure_is_a_warning():
    targets = {"measured_by": "assistant_tokens",
               "memorization_share": {"target_at_most": 0.7, "realised": {"rows": 0.69, "assistant_tokens": 0.8}},
               "english_share": {"target_at_least": 0.75, "realised": {"rows": 0.8, "assistant_tokens": 0.74}}}
    assert synth_plan.target_warnings(targets, 100_000) == [
        "memorization is 0.800 of the assistant tokens written, above synth.memorization_cap 0.7"]
    assert synth_plan.target_warnings(targets, 60) == []  # 0.1 is within chance on 60 rows
    targets["measured_by"] = "rows"
    assert synth_plan.target_warnings(targets, 100_000) == []


def test_a_plan_by_tokens_refuses_scans_that_did_not_weigh_the_rows(tmp_path):
    (shard,) = write_synth_source(tmp_path, ["synth_001.parquet"], 50, 1337)
    _, unweighed = synth.scan_shard(shard)
    _, weighed = synth.scan_shard(shard, weigh=True)
    assert "passing_bytes" in weighed and "passing_bytes" not in unweighed
    with pytest.raises(ValueError, match="synth_001.parquet did not .*rerun their scan"):
        synth_plan.make_plan([unweighed], synth.SynthParams(shares_by="tokens"))
