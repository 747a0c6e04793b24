"""Issue 8 for SYNTH: the result check judged as a reader would, drops by reason x category
with their warnings, duplicate_content across shards, the split by group, and the sampling
targets next to what was realised."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data.builders import synth, synth_plan
from distill_data.builders.synth_check import check_result
from distill_data.dataset import split_group_report
from distill_data.demo.synth import make_synth_table, write_synth_source
from test_synth_builder import NO_SAMPLING, build, ok_row

MCQ_QUERY = "Solve for x: 3x + 4 = 19\n\nA. 3\nB. -5\nC. 5\nD. 7"


# --- the result check, layout by layout ---------------------------------------------------------

@pytest.mark.parametrize("result, answer, query, verdict", [
    # math mcq: the chosen option wherever it stands, and that option's value
    ("5", "3x = 15, so x = 5.\n\nC. 5", MCQ_QUERY, None),                       # the demo's last line
    ("5", "3x = 15, so x = 5.\n\nD. 7", MCQ_QUERY, "result_mismatch"),
    ("5", "C) 5\n\nBecause 3 · 5 + 4 = 19.", MCQ_QUERY, None),                   # X) value, first line
    ("5", "D) 7\n\nBecause 3 · 5 + 4 = 19.", MCQ_QUERY, "result_mismatch"),
    ("-5", "Checking each option …\n\n**B. -5**", MCQ_QUERY, None),              # **X. value**
    ("-5", "Checking each option …\n\n**A. 3**", MCQ_QUERY, "result_mismatch"),
    ("5", "3x = 15.\n\nAnswer: C", MCQ_QUERY, None),                            # letter only: value from the query
    ("5", "3x = 15.\n\nAnswer: B", MCQ_QUERY, "result_mismatch"),
    ("5", "The answer is (C).", MCQ_QUERY, None),
    ("-5", "Options:\nA. 3\nB. -5\nC. 7\n\n**Answer: B**", "Solve.", None),       # value from the answer's list
    ("-5", "Options:\nA. 3\nB. -5\nC. 7\n\n**Answer: C**", "Solve.", "result_mismatch"),
    ("5", "C. 5\n\nOption A, which gives 3, is wrong.", MCQ_QUERY, None),          # discussion is no choice
    ("5", "Réponse : C", MCQ_QUERY, None),                                        # a translated label
    ("5", "Réponse : D", MCQ_QUERY, "result_mismatch"),
    ("1", "B. 1", "", None),                                                       # SOURCES.md's example
    ("1", "C. 2", "", "result_mismatch"),
    ("5", "Let me think about it; option three looks right.", MCQ_QUERY, "no_result_stated"),
])
def test_math_mcq_layouts(result, answer, query, verdict):
    assert check_result(result, answer, exercise="math mcq", query=query) == verdict


@pytest.mark.parametrize("result, answer, verdict", [
    # equal at the precision of the less precise number, half away from zero
    ("0.33", "So each part is **0.3333**.", None),
    ("2.5", "About **3** hours.", None),
    ("0.125", "**0.13** kg per serving", None),      # Python's round(0.125, 2) gives 0.12
    ("0.125", "**0.12** kg per serving", "result_mismatch"),
    ("-2.5", "**-3 °C**", None),
    ("-2.5", "**-2 °C**", "result_mismatch"),
    ("0.3333", "**0.33**", None),
    # the final stated result, not any number
    ("16020", "The shipment weighs **16,020 pounds**, so it needs **2 trucks**.", None),
    ("16020", "The shipment weighs **16,200 pounds**, so it needs **2 trucks**.", "result_mismatch"),
    ("-195.45", "Balance:\n\n**Answer: -$195.45**", None),
    ("-195.45", "Balance:\n\n**Answer: $195.45**", "result_mismatch"),           # a lost sign
    ("-5", "**Answer**\n\n12 − 17 = -5\n\nThe temperature at dawn is **5 °C**.", "result_mismatch"),
    ("-5", "**Answer**\n\n12 − 17 = -5\n\nThe temperature at dawn is **-5 °C**.", None),
    ("0.75", "so x = \\boxed{\\frac{3}{4}}", None),
    ("0.75", "so x = \\boxed{\\frac{2}{3}}", "result_mismatch"),
    ("16020", "16020 pounds in all.", None),
    ("16020", "First we add.\n\nThen 400 × 40 + 20 = 16020", None),
    ("16020", "First we add.\n\nThen 400 × 40 + 20 = 16000", "result_mismatch"),
    ("16020", "No number here.", "no_result_stated"),
    ("Failed", "anything", None),                                                  # nothing numeric to check
])
def test_math_exercise_layouts(result, answer, verdict):
    assert check_result(result, answer, exercise="math exercise") == verdict


def test_the_result_check_can_be_turned_off(tmp_path):
    rows = [ok_row(1, exercise="math exercise", constraints="result:5", synthetic_answer="**6**"),
            ok_row(2, exercise="math mcq", constraints="result:5", synthetic_answer="No choice."),
            ok_row(3, exercise="math mcq", constraints="result:Failed after maximum attempts"), ok_row(4)]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    on = build(folder, tmp_path / "on", *NO_SAMPLING, "--train-frac", "1")
    off = build(folder, tmp_path / "off", *NO_SAMPLING, "--train-frac", "1", "--no-result-check")
    assert on["accounting"]["dropped"] == {"result_mismatch": 1, "no_result_stated": 1, "failed_max_attempts": 1}
    assert off["accounting"]["dropped"] == {"failed_max_attempts": 1}
    assert off["params"]["result_check"] is False and on["params"]["result_check"] is True


# --- the demo: the check against what the generator wrote -----------------------------------------

def demo_truth(row: dict) -> str | None:
    """Independent reading of the demo generator's layouts (demo/synth.py): the math mcq
    answer ends in `X. value`, the math exercise answer in a paragraph with one bold value."""
    result = float(row["constraints"].split(":", 1)[1])
    last = row["synthetic_answer"].strip().split("\n\n")[-1]
    if row["exercise"] == "math mcq":
        shown = float(re.sub(r"[^\d.\-]", "", last.split(". ", 1)[1]))
    else:
        bold = re.findall(r"\*\*(.+?)\*\*", last)[-1]
        shown = float(re.sub(r"[^\d.\-]", "", bold.split(":")[-1].replace(",", "")))
    return None if abs(shown - result) < 1e-9 else "result_mismatch"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_synth")
    names = ["synth_010.parquet", "synth_034.parquet", "synth_056.parquet"]
    paths = write_synth_source(root / "raw", names, 1500, seed=1337)
    (root / "list.txt").write_text("".join(f"{n}\n" for n in names))
    manifest = build(root / "raw", root / "out", "--shard-list", str(root / "list.txt"))
    rows = [r for p in paths for r in pq.read_table(p).to_pylist()]
    return {"root": root, "manifest": manifest, "rows": rows}


def test_demo_per_exercise_table_matches_the_answers(demo):
    reached = {"math mcq": Counter(), "math exercise": Counter()}
    def text(value):
        return (value or "").replace("\x00", "").strip()

    for row in demo["rows"]:
        if row["exercise"] not in reached or not all(text(row[c]) for c in ("synth_id", "query", "synthetic_answer")):
            continue
        if "Failed after" in row["constraints"]:
            continue
        reached[row["exercise"]][demo_truth(row) or "ok"] += 1
    table = demo["manifest"]["drops_by_category"]["exercise"]
    for exercise, truth in reached.items():
        reasons = table[exercise]["reasons"]
        assert reasons["result_mismatch"] == {"reached": sum(truth.values()), "dropped": truth["result_mismatch"]}
        assert reasons["no_result_stated"] == {"reached": sum(truth.values()), "dropped": 0}
        # math mcq is kept at the rate its correct answers imply (the generator errs on ~12%)
        assert truth["ok"] / sum(truth.values()) > 0.8
    assert demo["manifest"]["warnings"] == []  # no false alarm on the demo


def test_drops_by_category_add_up(demo):
    manifest = demo["manifest"]
    for name in ("exercise", "language"):
        table = manifest["drops_by_category"][name]
        assert sum(v["rows"] for v in table.values()) == manifest["accounting"]["rows_read"]
        assert sum(v["written"] for v in table.values()) == manifest["accounting"]["rows_written_total"]
        for value in table.values():
            assert value["rows"] == value["written"] + value["dropped_total"]
            dropped = sum(r["dropped"] for r in value["reasons"].values())
            assert dropped == value["dropped_total"]
    by_reason = Counter()
    for value in manifest["drops_by_category"]["exercise"].values():
        by_reason.update({k: r["dropped"] for k, r in value["reasons"].items() if r["dropped"]})
    assert dict(by_reason) == manifest["accounting"]["dropped"]


def test_a_layout_the_check_cannot_read_is_a_warning(tmp_path, caplog):
    """30 math mcq rows give their choice in words: every one is no_result_stated, and the
    manifest and the log say so; a sampling reason dropping most rows does not warn."""
    rows = [ok_row(i, synth_id=f"mcq_math_1_{i}", exercise="math mcq", constraints="result:5", query=MCQ_QUERY,
                   synthetic_answer="3x = 15, so the third option is right.") for i in range(30)]
    rows += [ok_row(100 + i, synth_id=f"mcq_math_1_{100 + i}", exercise="math mcq", constraints="result:5",
                    query=MCQ_QUERY, synthetic_answer="3x = 15.\n\nC. 5") for i in range(10)]
    rows += [ok_row(200 + i, synth_id=f"memorization_1_{i}", exercise="memorization") for i in range(100)]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    with caplog.at_level(logging.WARNING, logger="distill_data"):
        manifest = build(folder, tmp_path / "out", "--global-keep", "1", "--english-frac", "0",
                         "--memorization-cap", "0.5", "--train-frac", "1")
    assert manifest["drops_by_category"]["exercise"]["math mcq"]["reasons"]["no_result_stated"] == \
        {"reached": 40, "dropped": 30}
    assert manifest["accounting"]["dropped"]["memorization_cap"] > 50  # by design: no warning
    warnings = manifest["warnings"]
    # language=en: 30 of the 140 English rows that reached the check, under half: no warning
    assert len(warnings) == 1 and warnings[0].startswith("exercise=math mcq: no_result_stated dropped 30 of the 40")
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("exercise=math mcq: no_result_stated dropped 30" in line for line in logged)


def test_too_few_rows_never_warn(tmp_path):
    rows = [ok_row(i, exercise="math mcq", constraints="result:5", query=MCQ_QUERY,
                   synthetic_answer="the third one") for i in range(5)] + [ok_row(10 + i) for i in range(30)]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    manifest = build(folder, tmp_path / "out", *NO_SAMPLING, "--train-frac", "1")
    assert manifest["accounting"]["dropped"] == {"no_result_stated": 5}
    assert manifest["warnings"] == []


# --- duplicates and the split by group --------------------------------------------------------------

def test_duplicates_across_shards_follow_the_shard_list(tmp_path):
    """The first in shard-list order (not in name order) is kept, whichever shard it is in."""
    folder = tmp_path / "in"
    folder.mkdir()
    same = dict(query="What is a Hanseatic kontor?", synthetic_answer="A trading post.")
    pq.write_table(make_synth_table([ok_row(1, **same), ok_row(2)]), folder / "synth_001.parquet")
    pq.write_table(make_synth_table([ok_row(3), ok_row(4, query="what is  a HANSEATIC kontor?", 
                                                        synthetic_answer=" A trading post. ")]),
                   folder / "synth_002.parquet")
    for order, kept in ((["synth_001.parquet", "synth_002.parquet"], "rag_1_1"),
                        (["synth_002.parquet", "synth_001.parquet"], "rag_1_4")):
        listing = tmp_path / f"{kept}.txt"
        listing.write_text("\n".join(order) + "\n")
        out = tmp_path / kept
        manifest = build(folder, out, "--shard-list", str(listing), *NO_SAMPLING, "--train-frac", "1")
        assert manifest["accounting"]["dropped"] == {"duplicate_content": 1}
        assert manifest["split_groups"]["duplicates_removed"] == 1
        ids = {r["source"]["synth_id"] for f in manifest["files"]["train"] for r in pq.read_table(out / f["path"]).to_pylist()}
        assert ids == {"rag_1_1", "rag_1_2", "rag_1_3", "rag_1_4"} - ({"rag_1_4"} if kept == "rag_1_1" else {"rag_1_1"})


def test_plan_rates_are_computed_without_the_duplicates(tmp_path):
    """40 memorization rows of which 30 repeat 10 others, and 10 other rows: with a cap of
    0.5 the plan must see 10 + 10 passing rows, not 40 + 10."""
    rows = [ok_row(i, synth_id=f"memorization_1_{i}", exercise="memorization", query=f"Q{i % 10}",
                   synthetic_answer=f"A{i % 10}") for i in range(40)]
    rows += [ok_row(100 + i) for i in range(10)]
    path = tmp_path / "synth_001.parquet"
    pq.write_table(make_synth_table(rows), path)
    mask, summary = synth.scan_shard(path)
    pq.write_table(mask, tmp_path / "mask.parquet")
    per_shard, removed, _ = synth_plan.find_duplicates([tmp_path / "mask.parquet"])
    assert per_shard == [list(range(10, 40))]
    plan = synth_plan.make_plan([summary], synth.SynthParams(memorization_cap=0.5, english_frac=0), removed)
    assert plan["passing_quality"] == {"memorization_english": 10, "memorization_other": 0,
                                       "other_english": 10, "other_other": 0}
    assert plan["mem_keep"] == pytest.approx(1.0) and plan["duplicate_content"] == 30


def test_one_query_stays_on_one_side_of_the_split(tmp_path):
    """Five queries, ten different answers each: every query's rows share one split."""
    rows = [ok_row(i, query=f"  Question {i % 5}? ".upper() if i % 2 else f"question {i % 5}?",
                   synthetic_answer=f"Answer number {i}.") for i in range(50)]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    out = tmp_path / "out"
    manifest = build(folder, out, *NO_SAMPLING, "--train-frac", "0.5")
    sides: dict[str, set] = {}
    for split in ("train", "validation"):
        for f in manifest["files"][split]:
            for row in pq.read_table(out / f["path"]).to_pylist():
                query = next(r["query"] for r in rows if r["synth_id"] == row["source"]["synth_id"])
                sides.setdefault(" ".join(query.split()).casefold(), set()).add(split)
                sides.setdefault(row["source"]["split_group"], set()).add(split)
    assert len(sides) == 10 and all(len(s) == 1 for s in sides.values())
    assert {k for k, s in sides.items() if len(k) == 16 and s == {"validation"}}, "train_frac 0.5 gives validation"
    report = manifest["split_groups"]
    assert report["in_both_splits"] == 0 and sum(report["groups"].values()) == 5


def test_a_group_in_both_splits_stops_the_build(tmp_path):
    schema = pa.schema([("source", pa.struct([("dataset", pa.string()), ("split_group", pa.string())]))])
    for split, groups in (("train", ["00000000000000aa", "00000000000000bb"]), ("validation", ["00000000000000bb"])):
        (tmp_path / split).mkdir()
        pq.write_table(pa.table({"source": [{"dataset": "x", "split_group": g} for g in groups]}, schema=schema),
                       tmp_path / split / "part-00000.parquet")
    files = {s: [{"path": f"{s}/part-00000.parquet"}] for s in ("train", "validation")}
    with pytest.raises(RuntimeError, match="1 split groups have rows in both train and validation"):
        split_group_report("x", tmp_path, files, 0)


# --- targets --------------------------------------------------------------------------------------

def test_targets_are_reported_next_to_what_was_realised(demo):
    manifest, root = demo["manifest"], demo["root"]
    written = [r for split in ("train", "validation") for f in manifest["files"][split]
               for r in pq.read_table(root / "out" / f["path"], columns=["source", "input_ids"]).to_pylist()]
    tokens = sum(len(r["input_ids"]) for r in written)
    mem = [r for r in written if r["source"]["exercise"] == "memorization"]
    en = [r for r in written if r["source"]["language"] == "en"]
    targets = manifest["targets"]
    mem_share = targets["memorization_share"]
    assert mem_share["target_at_most"] == 0.7 and mem_share["planned_rows"] == pytest.approx(0.7)
    assert mem_share["realised"]["rows"] == pytest.approx(len(mem) / len(written), abs=1e-6)
    assert mem_share["realised"]["total_tokens"] == pytest.approx(sum(len(r["input_ids"]) for r in mem) / tokens, abs=1e-6)
    assert targets["english_share"]["realised"]["rows"] == pytest.approx(len(en) / len(written), abs=1e-6)
    assert targets["english_share"]["realised"]["rows"] >= 0.75 - 0.05  # holds on average


@pytest.mark.parametrize("rows, key", [
    ([ok_row(i, synth_id=f"memorization_1_{i}", exercise="memorization") for i in range(20)], "synth.memorization_cap"),
    ([ok_row(i, language="de") for i in range(20)], "synth.english_frac"),
])
def test_targets_that_cannot_both_be_met_stop_the_build(tmp_path, rows, key):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    script = Path(__file__).resolve().parent.parent / "workflow_scripts" / "build_synth_distill.py"
    done = subprocess.run([sys.executable, str(script), "--input-dir", str(folder), "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "cannot both be met" in done.stderr and key in done.stderr and "20" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_zero_train_rows_stop_the_build(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(make_synth_table([ok_row(i) for i in range(5)]), folder / "synth_001.parquet")
    with pytest.raises(ValueError, match=r"0 train rows \(5 rows read, 5 validation rows written.*global_keep"):
        build(folder, tmp_path / "out", *NO_SAMPLING, "--train-frac", "1e-9")  # 0 is out of the schema's bounds
    assert not (tmp_path / "out").exists()


def test_no_row_passing_quality_stops_the_plan(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [ok_row(i, exercise="math exercise", constraints="result:5", synthetic_answer="**6**") for i in range(3)]
    pq.write_table(make_synth_table(rows), folder / "synth_001.parquet")
    with pytest.raises(ValueError, match=r"no row passes the quality filters \(dropped: result_mismatch 3\).*"
                                         r"synth.result_check"):
        build(folder, tmp_path / "out")


# --- the same accounting in the budgeted driver -----------------------------------------------------

def test_budgeted_builder_reports_drops_by_category_warnings_and_split_groups(tmp_path, tokenizer):
    from distill_data.builders import opencode
    from test_build_code import good, make_encoder, write_shard

    rows = [good(i, domain="algorithmic") for i in range(6)]
    rows += [good(100 + i, domain="algorithmic", input=good(i % 6)["input"], output=good(i % 6)["output"])
             for i in range(24)]  # 24 repeats of those 6 under other ids
    rows += [good(200 + i, domain="generic") for i in range(25)]
    write_shard(tmp_path / "raw" / "train-00000-of-00001.parquet", rows, score_as_string=False)
    params = opencode.OpenCodeParams(target_total_tokens=10**9, shuffle_shards=False, train_frac=0.5)
    encoder = make_encoder(tokenizer)
    encoder.train_frac = 0.5
    manifest = opencode.build(tmp_path / "raw", tmp_path / "out", encoder, params)
    assert manifest["accounting"]["dropped"] == {"duplicate_content": 24}
    table = manifest["drops_by_category"]["domain"]
    assert table["algorithmic"]["reasons"]["duplicate_content"] == {"reached": 30, "dropped": 24}
    assert table["generic"]["reasons"]["duplicate_content"] == {"reached": 25, "dropped": 0}
    assert [w.split(":")[0] for w in manifest["warnings"]] == ["domain=algorithmic"]
    groups = {}
    for split in ("train", "validation"):
        for f in manifest["files"][split]:
            for g in pq.read_table(tmp_path / "out" / f["path"], columns=["source"]).column("source").to_pylist():
                groups.setdefault(split, set()).add(g["split_group"])
    assert manifest["split_groups"] == {"groups": {s: len(groups.get(s, ())) for s in ("train", "validation")},
                                        "in_both_splits": 0, "duplicates_removed": 24}
    assert groups["validation"] and not groups["train"] & groups["validation"]


def test_budgeted_builders_own_drops_are_in_the_table_and_by_design_drops_never_warn(tmp_path, tokenizer):
    """A source filter that empties one category (an unparsable score on every `algorithmic`
    row) is loud; `imperfect_tests`, the code builder's purpose, removes most rows silently."""
    from distill_data.builders import opencode
    from test_build_code import good, make_encoder, write_shard

    rows = [good(i, domain="algorithmic", average_test_score="n/a") for i in range(25)]
    rows += [good(100 + i, domain="generic", average_test_score="0.7" if i < 20 else "1.0") for i in range(30)]
    write_shard(tmp_path / "raw" / "train-00000-of-00001.parquet", rows, score_as_string=True)
    params = opencode.OpenCodeParams(target_total_tokens=10**9, shuffle_shards=False, train_frac=0.5)
    encoder = make_encoder(tokenizer)
    encoder.train_frac = 0.5
    manifest = opencode.build(tmp_path / "raw", tmp_path / "out", encoder, params)
    assert manifest["accounting"]["dropped"] == {"no_test_score": 25, "imperfect_tests": 20}
    table = manifest["drops_by_category"]["domain"]
    assert table["algorithmic"]["reasons"]["no_test_score"] == {"reached": 25, "dropped": 25}
    assert table["generic"]["reasons"]["imperfect_tests"] == {"reached": 30, "dropped": 20}
    assert table["generic"]["written"] == 10
    # 25 of the 55 self-instruct rows (45%) is not a majority: no warning for that category
    assert [w.split(" dropped")[0] for w in manifest["warnings"]] == ["domain=algorithmic: no_test_score"]


def test_normalized_text_collapses_exactly_the_regex_whitespace():
    """CONTRACT.md's normalization (NFKC, whitespace runs collapsed, stripped, case-folded),
    written out with a regex, agrees with the fast form on every whitespace code point."""
    import sys
    import unicodedata

    from distill_data.text import normalize_text

    def by_regex(text):
        return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).strip()).strip().casefold()

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(r"\s", chr(c)) or chr(c).isspace()]
    assert len(spaces) > 20
    for ch in spaces:
        text = f"{ch}Ab{ch}{ch}Ç\u00a0D{ch}"
        assert normalize_text(text) == by_regex(text), repr(ch)
