"""Nemotron-Math-v2 builder (budget.py + builders/nemotron.py) on planted JSON lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from hashlib import blake2b

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data.builders import nemotron
from distill_data.demo.nemotron import OMIT, TOOL_SCHEMA, nemotron_line, write_nemotron_jsonl
from distill_data.encode import ExampleEncoder
from distill_data.hashing import split_of
from distill_data.io import SourceError
from distill_data.render import HarmonyRenderer, reference_render
from workflow_helpers import PROJECT, dataset_bytes

SCRIPT = PROJECT / "workflow_scripts" / "build_nemotron_math_distill.py"


def make_encoder(tokenizer, threads=1):
    return ExampleEncoder(HarmonyRenderer(tokenizer, "high", threads), 8192, 1337, 0.99)


def params(target=10**9, **kw):
    return nemotron.NemotronParams(target_total_tokens=target, **kw)


def line(i, **overrides) -> dict:
    return nemotron_line(problem=f"Compute ${i} + {i}$.", expected_answer=str(2 * i), **overrides)


def dumps(obj) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def read_rows(folder):
    tables = [pq.read_table(p) for split in ("train", "validation") for p in sorted((folder / split).glob("*.parquet"))]
    return pa.concat_tables(tables).to_pylist()


def user(content):
    return {"role": "user", "content": content}


def assistant(content, reasoning=None):
    return {"role": "assistant", "content": content, "reasoning_content": reasoning}


PLANTED = {  # line content -> the reason it is dropped
    "": "blank_line",
    "   \t": "blank_line",
    '{"problem": "x", "messages": [': "invalid_json",
    "[1, 2]": "not_an_object",
    '"just a string"': "not_an_object",
}


def planted_lines():
    shuffled = dict(reversed(list(line(1).items())))  # another key order
    sparse = {k: v for k, v in line(2).items() if v is not None}  # null keys left out
    return [
        line(0), shuffled, sparse,
        *PLANTED,
        line(3, messages=[assistant("$\\boxed{6}$", "r")]),        # no_user_message
        line(4, messages=OMIT),                                      # no_user_message
        line(5, messages=None),                                      # no_user_message
        line(6, messages=[user("Compute 6+6.")]),                    # no_assistant_message
        line(7, tools=[TOOL_SCHEMA]),                                # tool_row
        line(8, messages=[user(""), assistant("$\\boxed{16}$", "r")]),      # empty_prompt
        line(9, messages=[user(None), assistant("$\\boxed{18}$", "r")]),    # empty_prompt
        line(10, messages=[user("Compute 10+10."), assistant(" \x00", "thinking")]),  # empty_answer
        line(11, messages=[user("Compute 11+11."), assistant("$\\boxed{22}$", "w " * 20000)]),  # too_long
        line(12, uuid=OMIT),                                         # kept, content-hash id
        line(13, uuid=None),                                         # kept, content-hash id
        line(14, messages=[{"role": "user", "content": "Say <|end|>\x00 now."}, {"role": "assistant", "content": "<|return|>"}]),
        *(line(100 + i) for i in range(40)),
        line(101),                                                   # duplicate_content (the same row again)
        line(12, uuid=OMIT),                                         # duplicate_content (and the same content hash)
        line(102, messages=[user("Compute 102+1."), assistant("$\\boxed{103}$", "r")]),  # duplicate_id (same uuid, other content)
    ]


def test_every_drop_reason_counted_exactly(tmp_path, tokenizer):
    path = write_lines(tmp_path / "low.jsonl", planted_lines())
    manifest = nemotron.build([path], tmp_path / "out", make_encoder(tokenizer), params(max_bad_line_frac=0.1))
    acc = manifest["accounting"]
    assert acc["dropped"] == {"blank_line": 2, "invalid_json": 1, "not_an_object": 2, "no_user_message": 3,
                              "no_assistant_message": 1, "tool_row": 1, "empty_prompt": 2, "empty_answer": 1,
                              "too_long": 1, "duplicate_content": 2, "duplicate_id": 1}
    assert acc["rows_read"] == len(planted_lines()) == acc["rows_written_total"] + acc["dropped_total"]
    assert acc["rows_written_total"] == 3 + 3 + 40
    samples = manifest["drop_samples"]
    assert samples["invalid_json"][0]["line"] == 6 and samples["invalid_json"][0]["detail"]
    assert [s["line"] for s in samples["blank_line"]] == [4, 5]
    assert manifest["inputs"] == [{"path": path.name, "bytes": path.stat().st_size, "lines_read": acc["rows_read"],
                                   "read": "complete", "rows": acc["rows_read"]}]
    assert manifest["budget"]["exhausted"] and manifest["not_read"]["bytes"] == 0


def test_texts_ids_and_source_struct(tmp_path, tokenizer):
    path = write_lines(tmp_path / "low.jsonl", planted_lines())
    nemotron.build([path], tmp_path / "out", make_encoder(tokenizer), params(max_bad_line_frac=0.1))
    rows = {r["id"]: r for r in read_rows(tmp_path / "out")}
    first = line(0)
    row = rows[f"nemotron_math:{first['uuid']}"]
    problem = " ".join(first["messages"][0]["content"].split()).casefold()
    assert row["source"] == {"dataset": "nvidia/Nemotron-Math-v2", "uuid": first["uuid"], "data_source": "AoPS",
                             "split_group": blake2b(problem.encode(), digest_size=8).hexdigest()}
    msgs = first["messages"]
    want = reference_render(tokenizer, msgs[0]["content"], msgs[1]["reasoning_content"], msgs[1]["content"], "high")
    assert row["input_ids"] == want.input_ids and row["spans"]["analysis_token_count"] > 0
    # no reasoning: no analysis message; markers are text; NULs are gone
    marker = next(r for r in rows.values() if r["source"]["uuid"] == line(14)["uuid"])
    assert marker["input_ids"] == reference_render(tokenizer, "Say <|end|> now.", "", "<|return|>", "high").input_ids
    hashed = [r for r in rows.values() if r["source"]["uuid"] is None]
    assert len(hashed) == 2
    for r in hashed:
        assert re.fullmatch(r"nemotron_math:[0-9a-f]{32}", r["id"])
    assert len(rows) == 46  # ids are unique


def test_content_hash_ignores_key_order_and_null_keys():
    base = line(1, uuid=OMIT)
    reordered = dict(reversed(list(base.items())))
    reordered["messages"] = [dict(reversed(list(m.items()))) for m in base["messages"]]
    with_nulls = dict(base, messages=[dict(m, tool_calls=None, name=None) for m in base["messages"]], url=None)
    key = nemotron.row_key(base)
    assert key == nemotron.row_key(reordered) == nemotron.row_key(with_nulls)
    assert key != nemotron.row_key(line(2, uuid=OMIT))
    assert nemotron.row_key(line(1)) == line(1)["uuid"]


def test_uuidless_files_get_stable_ids_that_decide_the_split(tmp_path, tokenizer):
    ids = []
    for run in range(2):
        path = write_nemotron_jsonl(tmp_path / f"high{run}.jsonl", 60, seed=5, with_uuid=False)
        nemotron.build([path], tmp_path / f"out{run}", make_encoder(tokenizer), params())
        rows = read_rows(tmp_path / f"out{run}")
        ids.append(sorted(r["id"] for r in rows))
        val = pq.read_table(tmp_path / f"out{run}" / "validation" / "part-00000.parquet").column("id").to_pylist() \
            if (tmp_path / f"out{run}" / "validation" / "part-00000.parquet").exists() else []
        problems = {}
        for obj in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            problems[nemotron.row_key(obj)] = obj["messages"][0]["content"]
        for r in rows:
            assert r["source"]["uuid"] is None and re.fullmatch(r"nemotron_math:[0-9a-f]{32}", r["id"])
            group = " ".join(unicodedata.normalize("NFKC", problems[r["id"].split(":", 1)[1]]).split()).casefold()
            assert (split_of(group, 1337, 0.99) == "validation") == (r["id"] in val)
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0]) > 40


def test_tool_rows_kept_when_asked(tmp_path, tokenizer):
    trajectory = [user("Compute 7+7."),
                  {"role": "assistant", "content": "", "reasoning_content": "Let me run it.",
                   "tool_calls": [{"id": "c1", "type": "function",
                                   "function": {"name": "stateful_python_code_exec", "arguments": "{\"code\": \"print(14)\"}"}}]},
                  {"role": "tool", "content": "14\n", "tool_call_id": "c1", "name": "stateful_python_code_exec"},
                  assistant("$\\boxed{14}$", "The tool printed 14.")]
    path = write_lines(tmp_path / "low.jsonl", [line(7, tools=[TOOL_SCHEMA], messages=trajectory), line(8)])
    dropped = nemotron.build([path], tmp_path / "a", make_encoder(tokenizer), params())
    assert dropped["accounting"]["dropped"] == {"tool_row": 1}
    kept = nemotron.build([path], tmp_path / "b", make_encoder(tokenizer), params(drop_tool_rows=False))
    assert kept["accounting"]["rows_written_total"] == 2
    row = next(r for r in read_rows(tmp_path / "b") if r["id"].endswith(line(7)["uuid"]))
    want = reference_render(tokenizer, "Compute 7+7.", "The tool printed 14.", "$\\boxed{14}$", "high")
    assert row["input_ids"] == want.input_ids


TOOL_CALL = {"id": "c1", "type": "function",
             "function": {"name": "stateful_python_code_exec", "arguments": "{\"code\": \"print(14)\"}"}}


@pytest.mark.parametrize("tool_row", [
    lambda i: line(i, tools=[TOOL_SCHEMA]),                                        # `tools` alone
    lambda i: line(i, tools=json.dumps([TOOL_SCHEMA])),                            # `tools` as JSON text
    lambda i: line(i, tools=None, messages=[                                       # `tool_calls` alone
        user("Compute 7+7."), dict(assistant("", "Let me run it."), tool_calls=[TOOL_CALL]),
        assistant("$\\boxed{14}$", "Done.")]),
    lambda i: line(i, tools=[], messages=[                                         # role `tool` alone
        user("Compute 7+7."), {"role": "tool", "content": "14\n"}, assistant("$\\boxed{14}$", "Done.")]),
], ids=["tools", "tools_json", "tool_calls", "tool_role"])
def test_each_kind_of_tool_row_is_dropped(tmp_path, tokenizer, tool_row):
    plain = [line(8), line(9, tools=[], messages=[user("Compute 9+9."), dict(assistant("18", "r"), tool_calls=[])])]
    path = write_lines(tmp_path / "low.jsonl", [tool_row(7), *plain])
    manifest = nemotron.build([path], tmp_path / "a", make_encoder(tokenizer), params())
    assert manifest["accounting"]["dropped"] == {"tool_row": 1}
    assert manifest["drop_samples"]["tool_row"][0]["line"] == 1
    kept = nemotron.build([path], tmp_path / "b", make_encoder(tokenizer), params(drop_tool_rows=False))
    assert kept["accounting"]["rows_written_total"] == 3


def tokens_of(tokenizer, obj):
    msgs = obj["messages"]
    return len(HarmonyRenderer(tokenizer, "high").render(msgs[0]["content"], msgs[-1]["reasoning_content"],
                                                        msgs[-1]["content"]).input_ids)


def test_budget_stops_at_the_crossing_line(tmp_path, tokenizer):
    first = [line(i) for i in range(20)]
    second = [line(100 + i) for i in range(3)] + ["not json"] + [line(103 + i) for i in range(20)]
    f1 = write_lines(tmp_path / "a.jsonl", first)
    f2 = write_lines(tmp_path / "b.jsonl", second)
    f3 = write_lines(tmp_path / "c.jsonl", [line(200)])
    kept = first + second[:3] + second[4:]
    tokens = [tokens_of(tokenizer, o) for o in kept]
    target = sum(tokens[:25]) - 1  # the 25th kept row: b.jsonl line 6 (after the bad line 4)
    snapshots = []
    for batch_size in (1, 7, 4096):
        out = tmp_path / f"out{batch_size}"
        manifest = nemotron.build([f1, f2, f3], out, make_encoder(tokenizer), params(target, max_bad_line_frac=0.5),
                                  batch_size=batch_size)
        snapshots.append(dataset_bytes(out))
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert manifest["budget"] == {"target_total_tokens": target, "total_tokens": sum(tokens[:25]),
                                  "exhausted": False, "stopped_at": {"file": f2.name, "line": 6}}
    assert sorted(r["id"] for r in read_rows(out)) == sorted(f"nemotron_math:{o['uuid']}" for o in kept[:25])
    assert manifest["accounting"]["rows_read"] == 26 and manifest["accounting"]["dropped"] == {"invalid_json": 1}
    end_of_line_6 = sum(len((dumps(x) + "\n").encode()) for x in second[:6])
    unread = f2.stat().st_size - end_of_line_6
    assert manifest["not_read"]["rows"] is None
    assert manifest["not_read"]["bytes"] == unread + f3.stat().st_size
    assert manifest["not_read"]["files"] == [{"path": f2.name, "bytes": unread}, {"path": f3.name, "bytes": f3.stat().st_size}]
    assert [(i["read"], i["rows"], i["lines_read"]) for i in manifest["inputs"]] == [
        ("complete", 20, 20), ("partial", None, 6), ("not_read", None, 0)]
    assert manifest["inputs"][1]["bytes_read"] == end_of_line_6


def test_a_mostly_unreadable_file_stops_the_job(tmp_path, tokenizer):
    path = write_lines(tmp_path / "bad.jsonl", [line(i) for i in range(9)] + ["{oops"])
    with pytest.raises(SourceError, match=r"bad\.jsonl: 1 of the first 10 lines are unreadable.*line 10"):
        nemotron.build([path], tmp_path / "out", make_encoder(tokenizer), params())
    assert not (tmp_path / "out").exists()
    done = subprocess.run([sys.executable, str(SCRIPT), "--input-file", str(path), "--output-dir", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and f"{path}: 1 of the first 10 lines" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()
    # at 1% exactly the file passes
    ok = write_lines(tmp_path / "ok.jsonl", [line(i) for i in range(99)] + ["{oops"])
    assert nemotron.build([ok], tmp_path / "ok", make_encoder(tokenizer), params())["accounting"]["dropped"] == {"invalid_json": 1}


def test_large_files_are_judged_early_at_a_fixed_line(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setattr(nemotron, "EARLY_CHECK_LINES", 20)
    lines = [line(i) for i in range(30)] + ["[]"] + [line(100 + i) for i in range(200)]
    path = write_lines(tmp_path / "big.jsonl", lines)
    for batch_size in (1, 8, 4096):
        # 1 bad line in 231 is under 2% at the end, but 1 in 31 is over it when it is read
        with pytest.raises(SourceError, match=r"1 of the first 31 lines"):
            nemotron.build([path], tmp_path / "out", make_encoder(tokenizer), params(max_bad_line_frac=0.02),
                           batch_size=batch_size)
        # a budget reached before line 31 never sees it
        small = tokens_of(tokenizer, lines[0]) * 5
        manifest = nemotron.build([path], tmp_path / "out", make_encoder(tokenizer),
                                  params(small, max_bad_line_frac=0.02), batch_size=batch_size)
        assert manifest["budget"]["stopped_at"]["line"] <= 6


def test_output_does_not_depend_on_threads(tmp_path, tokenizer):
    path = write_nemotron_jsonl(tmp_path / "low.jsonl", 300, seed=9)
    outs = []
    for threads in (1, 3):
        nemotron.build([path], tmp_path / f"t{threads}", make_encoder(tokenizer, threads), params(120_000),
                       batch_size=128)
        outs.append(dataset_bytes(tmp_path / f"t{threads}"))
    assert outs[0] == outs[1]
    manifest = json.loads(outs[0]["manifest.json"])
    assert not manifest["budget"]["exhausted"]
    acc = manifest["accounting"]
    assert acc["rows_read"] == acc["rows_written_total"] + acc["dropped_total"]
    assert {"tool_row", "invalid_json", "not_an_object", "blank_line"} <= set(acc["dropped"])


def test_a_byte_order_mark_does_not_cost_the_first_row(tmp_path, tokenizer):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + f"{dumps(line(1))}\n{dumps(line(2))}\n".encode())
    manifest = nemotron.build([path], tmp_path / "out", make_encoder(tokenizer), params())
    assert manifest["accounting"]["rows_written_total"] == 2 and manifest["accounting"]["dropped_total"] == 0
