"""The demo generators must imitate the real raw files (/work/shared/SOURCES.md) exactly.

Expected schemas are written out here from SOURCES.md rather than imported from the generators,
so a change to a generator's schema constant cannot silently pass.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data.demo.__main__ import main as demo_main
from distill_data.demo.nemotron import INSTRUCTION, OMIT, nemotron_line, write_nemotron_jsonl
from distill_data.demo.oasst2 import make_oasst2_table, write_oasst2_source
from distill_data.demo.opencode import make_opencode_table, write_opencode_source
from distill_data.demo.synth import make_synth_table, write_synth_source

MARKERS = ("<|end|>", "<|start|>assistant", "<|channel|>final<|message|>", "<|return|>")
SEED = 7

SYNTH_EXPECTED = pa.schema(
    [(n, pa.string()) for n in (
        "synth_id", "language", "exercise", "model", "query", "query_seed_url", "query_seed_text",
        "additional_seed_url", "seed_license", "constraints", "script", "synthetic_reasoning",
        "synthetic_answer")]
    + [("words", pa.int64())]
)
EXERCISES = {"memorization", "mcq", "constrained writing", "math exercise", "rag", "math mcq",
             "creative writing", "editing", "cooking"}
OPENCODE_NAMES = ["id", "input", "output", "domain", "generation_algorithm", "llm_judgement",
                  "unit_tests", "tests_execution_status", "average_test_score"]
NEMOTRON_KEYS = {"problem", "expected_answer", "original_expected_answer",
                 "changed_answer_to_majority", "data_source", "messages", "tools", "metadata",
                 "license", "used_in", "uuid", "url", "user_url", "user_name"}
OASST2_EXPECTED = pa.schema([
    ("message_id", pa.string()), ("parent_id", pa.string()), ("user_id", pa.string()),
    ("created_date", pa.string()), ("text", pa.string()), ("role", pa.string()),
    ("lang", pa.string()), ("review_count", pa.int32()), ("review_result", pa.bool_()),
    ("deleted", pa.bool_()), ("rank", pa.int32()), ("synthetic", pa.bool_()),
    ("model_name", pa.string()),
    ("detoxify", pa.struct([(n, pa.float64()) for n in (
        "toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
        "sexual_explicit")])),
    ("message_tree_id", pa.string()), ("tree_state", pa.string()),
    ("emojis", pa.struct([("name", pa.list_(pa.string())), ("count", pa.list_(pa.int32()))])),
    ("labels", pa.struct([("name", pa.list_(pa.string())), ("value", pa.list_(pa.float64())),
                          ("count", pa.list_(pa.int32()))])),
])


def _texts(rows: list[dict], fields: tuple[str, ...]) -> list[str]:
    return [r[f] for r in rows for f in fields if isinstance(r[f], str)]


# --------------------------------------------------------------------------------------------
# PleIAs/SYNTH
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth_paths(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    return write_synth_source(out, ["synth_010.parquet", "synth_034.parquet"], 220, SEED)


@pytest.fixture(scope="module")
def synth_shards(synth_paths) -> list[list[dict]]:
    return [pq.read_table(p).to_pylist() for p in synth_paths]


def test_synth_files_and_schema(synth_paths):
    assert [p.name for p in synth_paths] == ["synth_010.parquet", "synth_034.parquet"]
    for path in synth_paths:
        schema = pq.read_schema(path)
        assert schema.names == SYNTH_EXPECTED.names
        assert [f.type for f in schema] == [f.type for f in SYNTH_EXPECTED]
        assert all(f.nullable for f in schema)
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 1 and meta.num_rows == 220


def test_synth_exercises_languages_ids(synth_shards):
    all_ids = []
    for index, rows in zip((10, 34), synth_shards):
        exercises = Counter(r["exercise"] for r in rows)
        assert set(exercises) == EXERCISES
        assert 0.8 < exercises["memorization"] / len(rows) < 0.95
        langs = Counter(r["language"] for r in rows)
        assert 0.7 < langs["en"] / len(rows) < 0.9
        assert None in langs
        for r in rows:
            assert re.fullmatch(rf"[a-z_]+_{index}_\d+", r["synth_id"]), r["synth_id"]
        all_ids += [r["synth_id"] for r in rows]
    assert len(all_ids) == len(set(all_ids))
    for pattern in (r"memorization_\d+_\d+", r"memorization_[a-z]+_\d+_\d+", r"mcq_math_\d+_\d+",
                    r"synth_math_\d+_\d+", r"rag_\d+_\d+", r"creative_writing_\d+_\d+"):
        assert any(re.fullmatch(pattern, i) for i in all_ids), pattern


def test_synth_non_english_text(synth_shards):
    rows = [r for shard in synth_shards for r in shard]
    german = [r for r in rows if r["language"] == "de" and r["exercise"] == "memorization"]
    assert german and all(r["synth_id"].startswith("memorization_german_") for r in german)
    assert any(re.search(r"\b(der|die|das|und|wurde)\b", r["synthetic_answer"] or "") for r in german)


def test_synth_constraints_by_exercise(synth_shards):
    rows = [r for shard in synth_shards for r in shard]
    by_ex = {e: [r for r in rows if r["exercise"] == e] for e in EXERCISES}
    assert all(r["constraints"] == "" for r in by_ex["memorization"])
    assert 0.85 < sum(r["constraints"] == "" for r in rows) / len(rows) < 0.95

    math_values = [r["constraints"] for r in by_ex["math exercise"]]
    assert all(re.fullmatch(r"result:-?\d+(\.\d+)?", c) for c in math_values)
    assert any(c.startswith("result:-") for c in math_values)
    assert all(r["query_seed_url"] is None for r in by_ex["math exercise"])

    mcq_math = by_ex["math mcq"]
    assert any(r["constraints"] == "result:Failed after maximum attempts" for r in mcq_math)
    assert any(re.fullmatch(r"result:-?\d+", r["constraints"]) for r in mcq_math)
    assert all(re.fullmatch(r"[A-D]\. -?\d+", r["synthetic_answer"].splitlines()[-1])
               for r in mcq_math if r["synthetic_answer"])

    assert all(re.fullmatch(r"domain:[^,]+, exercise:[^,]+, answer_shape:\S+", r["constraints"])
               for r in by_ex["mcq"])
    for r in by_ex["rag"]:
        assert r["constraints"].startswith("<source_1>\n") and "\n</source_1>" in r["constraints"]
    assert any('<ref name="source_' in (r["synthetic_answer"] or "") for r in by_ex["rag"])
    assert max(len(r["constraints"]) for r in by_ex["rag"]) > 13_000
    for e in ("constrained writing", "editing", "creative writing"):
        assert all(re.match(r"[a-z_]+:[a-z_]+", r["constraints"]) for r in by_ex[e])


def test_synth_decorated_results_sometimes_disagree(synth_shards):
    """A lost sign is planted in every shard: result:-N but the answer shows N."""
    for rows in synth_shards:
        lost = [r for r in rows if r["exercise"] == "math exercise"
                and r["constraints"].startswith("result:-") and r["synthetic_answer"]
                and f"**{r['constraints'][8:]} °C**" in r["synthetic_answer"]]
        assert lost
    answers = [r["synthetic_answer"] for s in synth_shards for r in s
               if r["exercise"] == "math exercise" and r["synthetic_answer"]]
    assert any(re.search(r"\*\*[^*]*\d,\d{3}[^*]*\*\*", a) for a in answers)


def test_synth_missing_values_and_empty_reasoning(synth_shards):
    for rows in synth_shards:
        for field in ("query", "synthetic_reasoning", "synthetic_answer", "script",
                      "additional_seed_url"):
            values = [r[field] for r in rows]
            assert None in values and "" in values, field
        assert any(r["words"] is None for r in rows)
        assert all(r["synthetic_reasoning"] == "" for r in rows
                   if r["exercise"] in ("constrained writing", "editing"))
        assert sum((r["script"] or "") == "" for r in rows) / len(rows) > 0.9


def test_synth_hostile_text(synth_shards):
    for rows in synth_shards:
        texts = _texts(rows, ("query", "synthetic_reasoning", "synthetic_answer"))
        joined = "\n".join(texts)
        assert "\x00" in joined
        for marker in MARKERS:
            assert marker in joined, marker
        for ch in ("→", "∴", "●", "⚠", "✓", "🚀", "中文", "مرحبا"):
            assert ch in joined, ch
        longest = max(rows, key=lambda r: len(r["synthetic_answer"] or ""))
        assert len(longest["synthetic_answer"]) >= 50_000
        assert len(set(longest["synthetic_answer"].split())) > 300  # varied, not one repeated word
        assert longest["words"] == len(longest["synthetic_answer"].split())


def test_make_synth_table_defaults():
    table = make_synth_table([{"synthetic_answer": "one two three"},
                              {"synth_id": "x_1_2", "language": None, "query": None}])
    assert table.schema.equals(SYNTH_EXPECTED)
    rows = table.to_pylist()
    assert rows[0]["words"] == 3 and rows[0]["exercise"] == "memorization"
    assert rows[0]["synth_id"] != rows[1]["synth_id"]
    assert rows[1]["language"] is None and rows[1]["query"] is None
    with pytest.raises(ValueError):
        make_synth_table([{"answer": "typo"}])


# --------------------------------------------------------------------------------------------
# nvidia/OpenCodeInstruct
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opencode_paths(tmp_path_factory) -> list[Path]:
    return write_opencode_source(tmp_path_factory.mktemp("code"), 2, 200, SEED)


def test_opencode_files_and_schema(opencode_paths):
    assert [p.name for p in opencode_paths] == ["train-00000-of-00002.parquet",
                                                "train-00001-of-00002.parquet"]
    score_types = []
    for path in opencode_paths:
        schema = pq.read_schema(path)
        assert schema.names == OPENCODE_NAMES
        assert all(f.type == pa.string() for f in schema if f.name != "average_test_score")
        score_types.append(schema.field("average_test_score").type)
        assert pq.ParquetFile(path).metadata.num_row_groups == 1
    assert score_types == [pa.float64(), pa.string()]


def test_opencode_content(opencode_paths):
    doubles = pq.read_table(opencode_paths[0]).to_pylist()
    strings = pq.read_table(opencode_paths[1]).to_pylist()
    rows = doubles + strings
    assert {r["domain"] for r in rows} == {"generic", "algorithmic"}
    assert {r["generation_algorithm"] for r in rows} == {"self-instruct", "evol-instruct"}
    for r in rows:
        if r["output"]:
            assert r["output"].startswith("```python\n") and r["output"].endswith("```")
            assert r["output"].count("```") == 2
        assert isinstance(json.loads(r["llm_judgement"]), dict)
        tests = json.loads(r["unit_tests"])
        assert len(tests) == 10 and all(t.startswith("assert ") for t in tests)
        status = json.loads(r["tests_execution_status"])
        assert len(status) == 10 and set(status) <= {"pass", "fail"}
        score = r["average_test_score"]
        try:
            value = float(score)
        except (TypeError, ValueError):
            continue
        if not math.isnan(value):
            assert status.count("pass") / 10 == pytest.approx(value)
    perfect = sum(json.loads(r["tests_execution_status"]).count("pass") == 10 for r in rows)
    assert 0.25 < perfect / len(rows) < 0.5

    scores_d = [r["average_test_score"] for r in doubles]
    assert None in scores_d and any(isinstance(s, float) and math.isnan(s) for s in scores_d)
    scores_s = set(r["average_test_score"] for r in strings)
    assert {"1", "1.0", "0.9", None, "n/a"} <= scores_s

    for shard in (doubles, strings):
        ids = [r["id"] for r in shard]
        assert None in ids and "" in ids
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids if i)
        assert None in [r["input"] for r in shard] and "" in [r["input"] for r in shard]
        assert None in [r["output"] for r in shard] and "" in [r["output"] for r in shard]
        joined = "\n".join(_texts(shard, ("input", "output")))
        assert "\x00" in joined and all(m in joined for m in MARKERS)
        assert max(len(r["output"] or "") for r in shard) >= 50_000


def test_make_opencode_table_picks_score_type():
    assert make_opencode_table([{"average_test_score": "0.9"}]).schema.field(
        "average_test_score").type == pa.string()
    table = make_opencode_table([{"input": "x"}, {"average_test_score": None}])
    assert table.schema.names == OPENCODE_NAMES
    assert table.schema.field("average_test_score").type == pa.float64()
    with pytest.raises(ValueError):
        make_opencode_table([{"score": 1.0}])


# --------------------------------------------------------------------------------------------
# nvidia/Nemotron-Math-v2
# --------------------------------------------------------------------------------------------


def _parse_jsonl(path: Path) -> tuple[list[dict], Counter, list[str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # newline-terminated
    records, kinds = [], Counter()
    for line in lines[:-1]:
        if not line.strip():
            kinds["blank"] += 1
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            kinds["invalid"] += 1
            continue
        kinds[type(value).__name__] += 1
        if isinstance(value, dict):
            records.append(value)
    return records, kinds, lines[:-1]


@pytest.fixture(scope="module")
def low_jsonl(tmp_path_factory) -> Path:
    return write_nemotron_jsonl(tmp_path_factory.mktemp("math") / "low.jsonl", 300, SEED)


def test_nemotron_lines_and_keys(low_jsonl):
    records, kinds, lines = _parse_jsonl(low_jsonl)
    assert kinds == Counter(dict=300, invalid=1, list=1, blank=1)
    assert all(set(r) <= NEMOTRON_KEYS for r in records)
    assert len({tuple(r) for r in records}) > 5  # key order varies
    assert any("original_expected_answer" not in r for r in records)  # null-only key left out
    assert any(r.get("original_expected_answer", 1) is None for r in records)
    assert all(isinstance(r["expected_answer"], str) for r in records)
    assert {r["data_source"] for r in records} == {"AoPS", "StackExchange-Math"}
    assert {type(r["changed_answer_to_majority"]) for r in records} == {bool}
    assert all(r.get("uuid") for r in records)
    assert any("\\u0000" in line for line in lines)  # NUL escaped inside JSON strings
    assert any(isinstance(r["metadata"], str) for r in records)
    for r in records:
        meta = json.loads(r["metadata"]) if isinstance(r["metadata"], str) else r["metadata"]
        assert set(meta) == {f"reason_{e}_{t}_tool" for e in ("low", "medium", "high")
                             for t in ("with", "no")}
        assert set(meta["reason_low_no_tool"]) == {"count", "pass", "accuracy"}


def test_nemotron_messages(low_jsonl):
    records, _, _ = _parse_jsonl(low_jsonl)
    messages = [m for r in records for m in r["messages"]]
    assert any("reasoning_content" not in m for m in messages if m["role"] == "assistant")
    assert any("tool_calls" in m and m["tool_calls"] is None for m in messages)  # null variant
    assert any("tool_calls" not in m for m in messages)  # missing variant
    roles = [[m["role"] for m in r["messages"]] for r in records]
    assert ["user"] in roles and any("user" not in rs for rs in roles)
    plain = [r for r in records if not r.get("tools")]
    for r in plain:
        if [m["role"] for m in r["messages"]] == ["user", "assistant"]:
            user, assistant = r["messages"]
            assert user["content"] == f"{INSTRUCTION}\n\n{r['problem']}"
            assert "\\boxed{" in assistant["content"]
    reasoning = [m.get("reasoning_content") for m in messages if m["role"] == "assistant"]
    assert "" in reasoning and None in reasoning
    joined = "\n".join(x for x in reasoning if x) + "".join(
        m["content"] or "" for m in messages)
    assert all(marker in joined for marker in MARKERS) and "\x00" in joined
    assert max(len(x or "") for x in reasoning) >= 50_000


def test_nemotron_tool_rows(low_jsonl):
    records, _, _ = _parse_jsonl(low_jsonl)
    tool_rows = [r for r in records if r.get("tools")]
    assert 0.04 < len(tool_rows) / len(records) < 0.2
    assert any(r.get("tools", 0) is None or "tools" not in r for r in records)
    assert any(r.get("tools") == [] for r in records)
    for r in tool_rows:
        (tool,) = r["tools"]
        assert tool["function"]["name"] == "stateful_python_code_exec"
        assert list(tool["function"]["parameters"]["properties"]) == ["code"]
        msgs = r["messages"]
        assert msgs[0]["role"] == "user" and msgs[-1]["role"] == "assistant"
        call_msg = msgs[1]
        assert call_msg["role"] == "assistant" and call_msg["content"] == ""
        assert call_msg["reasoning_content"]
        (call,) = call_msg["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "stateful_python_code_exec"
        assert "code" in json.loads(call["function"]["arguments"])
        assert msgs[2]["role"] == "tool" and msgs[2]["tool_call_id"] == call["id"]
        assert "\\boxed{" in msgs[-1]["content"]


def test_nemotron_high_mode_has_no_uuid(tmp_path):
    path = write_nemotron_jsonl(tmp_path / "high.part_00.jsonl", 50, SEED, with_uuid=False)
    records, kinds, _ = _parse_jsonl(path)
    assert kinds == Counter(dict=50)  # below the planting threshold: no junk lines
    assert all("uuid" not in r for r in records)
    assert all(r.get(k) is None for r in records for k in ("url", "user_url", "user_name"))


def test_nemotron_line_overrides():
    line = nemotron_line(problem="Compute $1+1$.", expected_answer="2", uuid=OMIT, tools=None)
    assert "uuid" not in line and line["tools"] is None
    assert line["messages"][0]["content"].endswith("Compute $1+1$.")
    assert "\\boxed{2}" in line["messages"][1]["content"]
    assert set(nemotron_line()) == NEMOTRON_KEYS
    json.dumps(nemotron_line())


# --------------------------------------------------------------------------------------------
# OpenAssistant/oasst2
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oasst2_paths(tmp_path_factory) -> list[Path]:
    return write_oasst2_source(tmp_path_factory.mktemp("chat"), 80, SEED)


def test_oasst2_files_and_schema(oasst2_paths):
    names = [p.name for p in oasst2_paths]
    assert re.fullmatch(r"train-00000-of-00001-[0-9a-f]+\.parquet", names[0])
    assert re.fullmatch(r"validation-00000-of-00001-[0-9a-f]+\.parquet", names[1])
    assert all(p.parent.name == "data" for p in oasst2_paths)
    for path in oasst2_paths:
        assert pq.read_schema(path).remove_metadata().equals(OASST2_EXPECTED)
        assert pq.read_table(path).num_rows > 0


def test_oasst2_trees_and_quirks(oasst2_paths):
    train = pq.read_table(oasst2_paths[0]).to_pylist()
    validation = pq.read_table(oasst2_paths[1]).to_pylist()
    rows = train + validation
    by_id = {r["message_id"]: r for r in rows}
    assert len(by_id) == len(rows)
    assert {r["role"] for r in rows} == {"prompter", "assistant"}
    assert {r["tree_state"] for r in rows} == {"ready_for_export"}
    for r in rows:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            r["message_id"])
        if r["role"] == "prompter":
            assert r["rank"] is None
        if r["parent_id"] is None:
            assert r["role"] == "prompter" and r["message_tree_id"] == r["message_id"]
    # orphans: replies whose parent row is absent
    assert any(r["parent_id"] and r["parent_id"] not in by_id for r in train)
    # multiple ranked replies, unranked replies, multi-turn depth
    siblings = Counter(r["parent_id"] for r in rows if r["role"] == "assistant")
    assert max(siblings.values()) >= 2
    assert {0, 1} <= {r["rank"] for r in rows}
    assert any(r["role"] == "assistant" and r["rank"] is None for r in rows)

    def depth(r):
        d = 0
        while r["parent_id"] in by_id:
            r, d = by_id[r["parent_id"]], d + 1
        return d
    assert max(depth(r) for r in rows) >= 3
    # long threads: 5+ prompter turns (a prompt at depth 8 or more)
    assert max(depth(r) for r in rows if r["role"] == "prompter") >= 8
    # deleted / unreviewed messages in the middle of a thread, above acceptable replies
    parents = {r["parent_id"] for r in rows}
    spoiled = [r for r in rows if r["parent_id"] and r["message_id"] in parents
               and (r["deleted"] or r["review_result"] is not True)]
    assert {True, False} <= {r["deleted"] for r in spoiled}

    def below(mid):
        return [r for r in rows if r["parent_id"] == mid]
    assert any(r["review_result"] and not r["deleted"] for s in spoiled for c in below(s["message_id"])
               for r in below(c["message_id"]))
    # not in tree order: some child precedes its parent in the file
    position = {r["message_id"]: i for i, r in enumerate(train)}
    assert any(position.get(r["parent_id"], -1) > i for i, r in enumerate(train))
    # review and deletion states
    assert {True, False, None} <= {r["review_result"] for r in rows}
    assert {True, False} <= {r["deleted"] for r in rows}
    assert sum(r["model_name"] is None for r in rows) / len(rows) > 0.95
    assert any(r["synthetic"] for r in rows)
    assert any(r["detoxify"] is None for r in rows) and any(r["detoxify"] for r in rows)
    assert any(r["emojis"] is None for r in rows) and any(r["labels"] is None for r in rows)
    # languages
    langs = Counter(r["lang"] for r in rows)
    assert {"pt-BR", "uk-UA", "nb-NO", "bar", "swg"} <= set(langs)
    assert langs["en"] / len(rows) < 0.5
    assert {lang for lang, _ in langs.most_common(2)} == {"en", "es"}
    tree_langs = Counter(r["lang"] for r in rows if r["parent_id"] is None)
    assert [lang for lang, _ in tree_langs.most_common(2)] == ["en", "es"]
    # hostile text
    joined = "\n".join(r["text"] for r in train)
    assert "\x00" in joined and all(m in joined for m in MARKERS)
    assert max(len(r["text"]) for r in train if r["role"] == "assistant") >= 50_000


def test_make_oasst2_table_defaults():
    table = make_oasst2_table([
        {"message_id": "root", "text": "Hi?"},
        {"message_id": "a", "parent_id": "root", "text": "Hello.", "rank": 0},
        {"message_id": "b", "parent_id": "a", "text": "And then?"},
    ])
    assert table.schema.equals(OASST2_EXPECTED)
    rows = table.to_pylist()
    assert [r["role"] for r in rows] == ["prompter", "assistant", "assistant"]
    assert {r["message_tree_id"] for r in rows} == {"root"}
    with pytest.raises(ValueError):
        make_oasst2_table([{"msg": "typo"}])


# --------------------------------------------------------------------------------------------
# Determinism and the CLI
# --------------------------------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("write", [
    lambda d, s: write_synth_source(d, ["synth_001.parquet"], 60, s),
    lambda d, s: write_opencode_source(d, 2, 60, s),
    lambda d, s: [write_nemotron_jsonl(d / "low.jsonl", 220, s)],
    lambda d, s: write_oasst2_source(d, 25, s),
], ids=["synth", "code", "math", "chat"])
def test_generators_are_deterministic(tmp_path, write):
    a, b, c = (tmp_path / x for x in "abc")
    write(a, 1)
    write(b, 1)
    write(c, 2)
    assert _tree_bytes(a) == _tree_bytes(b)
    assert _tree_bytes(a).keys() == _tree_bytes(c).keys()
    assert all(_tree_bytes(a)[k] != _tree_bytes(c)[k] for k in _tree_bytes(a))


def test_cli_layout_and_determinism(tmp_path, capsys):
    args = ["--seed", "3", "--scale", "0.02"]
    assert demo_main(["--out", str(tmp_path / "one"), *args]) == 0
    printed = capsys.readouterr().out
    assert demo_main(["--out", str(tmp_path / "two"), *args]) == 0
    one = _tree_bytes(tmp_path / "one")
    assert one == _tree_bytes(tmp_path / "two")
    shards = ["synth_010.parquet", "synth_034.parquet", "synth_056.parquet", "synth_061.parquet",
              "synth_085.parquet", "synth_088.parquet"]
    assert one["synth_phase1_shards.txt"].decode().splitlines() == shards
    expected = {f"pleias_synth/{s}" for s in shards} | {
        "synth_phase1_shards.txt",
        *(f"nvidia__OpenCodeInstruct/data/train-0000{i}-of-00004.parquet" for i in range(4)),
        "nvidia__Nemotron-Math-v2/data/low.jsonl",
    }
    assert expected <= set(one)
    assert sum(k.startswith("OpenAssistant__oasst2/data/") for k in one) == 2
    assert pq.read_table(tmp_path / "one/pleias_synth/synth_010.parquet").num_rows == 30
    types = [pq.read_schema(tmp_path / "one" / f"nvidia__OpenCodeInstruct/data/train-0000{i}-of-00004.parquet")
             .field("average_test_score").type for i in range(4)]
    assert types == [pa.float64(), pa.string(), pa.float64(), pa.float64()]
    assert "synth_010.parquet" in printed and "low.jsonl" in printed


def test_cli_source_subset(tmp_path):
    assert demo_main(["--out", str(tmp_path), "--scale", "0.01", "--sources", "math"]) == 0
    assert sorted(_tree_bytes(tmp_path)) == ["nvidia__Nemotron-Math-v2/data/low.jsonl"]
    with pytest.raises(SystemExit):
        demo_main(["--out", str(tmp_path), "--sources", "synth,video"])
