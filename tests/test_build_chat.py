"""oasst2 builder (budget.py + builders/oasst2.py) on planted message files."""

from __future__ import annotations

import json
import subprocess
import sys

from hashlib import blake2b

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data.builders import oasst2
from distill_data.demo.oasst2 import make_oasst2_table, write_oasst2_source
from distill_data.encode import ExampleEncoder
from distill_data.hashing import unit_hash
from distill_data.io import SourceError
from distill_data.render import HarmonyRenderer, reference_render
from workflow_helpers import PROJECT, dataset_bytes

SCRIPT = PROJECT / "workflow_scripts" / "build_oasst2_distill.py"
TRAIN = "data/train-00000-of-00001-aaaa.parquet"
VALIDATION = "data/validation-00000-of-00001-bbbb.parquet"


def make_encoder(tokenizer, threads=1):
    return ExampleEncoder(HarmonyRenderer(tokenizer, "high", threads), 8192, 1337, 0.99)


def params(target=10**9, **kw):
    return oasst2.Oasst2Params(target_total_tokens=target, **kw)


def write(root, name, rows):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(make_oasst2_table(rows), path)
    return path


def prompt(mid, text=None, lang="en", parent=None):
    return {"message_id": mid, "role": "prompter", "text": f"Question {mid}?" if text is None else text,
            "lang": lang, "parent_id": parent}


def reply(mid, parent, lang="en", **kw):
    return {"message_id": mid, "parent_id": parent, "role": "assistant", "text": f"Answer {mid}.",
            "lang": lang, "rank": 0, **kw}


def read_rows(folder):
    tables = [pq.read_table(p) for split in ("train", "validation") for p in sorted((folder / split).glob("*.parquet"))]
    return pa.concat_tables(tables).to_pylist()


N_EN = 30  # English replies with a prompt each; with 10 others, 3 of those are kept by hash
NON_EN = ["es", "pt-BR", "de", "uk-UA", "es", "fr", "ru", "bar", "nb-NO", "es"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat_raw")
    train = [
        # replies before their parents: rows are not in tree order
        *(reply(f"en{i}", f"p{i}") for i in range(N_EN)),
        *(prompt(f"p{i}") for i in range(N_EN)),
        reply("long", "p0", text="w " * 20000),                           # too_long (English, passes the plan)
        *(reply(f"x{i}", f"q{i}", lang=lang) for i, lang in enumerate(NON_EN)),
        *(prompt(f"q{i}", lang=lang) for i, lang in enumerate(NON_EN)),
        reply("nr1", "p1", review_result=False), reply("nr2", "p1", review_result=None),  # not_reviewed
        reply("del", "p2", deleted=True),                                   # deleted
        reply("rk1", "p3", rank=1), reply("rk2", "p3", rank=2),             # not_best_rank
        reply("unranked", "p4", rank=None),                                 # kept: null rank
        {"message_id": "o1", "parent_id": None, "role": "assistant", "text": "Orphan."},  # orphan_reply
        reply("o2", "gone"),                                                # orphan_reply: parent missing
        reply("o3", "en5"),                                                 # orphan_reply: parent is a reply
        prompt("empty", text=" \x00 "), reply("ep", "empty"),               # empty_prompt
        reply("ea", "p5", text="  "),                                       # empty_answer
        reply(None, "p6"),                                                  # missing_id
        prompt("mk", text="Explain <|end|> and <|start|>assistant\x00."), reply("mkr", "mk", text="<|return|> ok"),
    ]
    validation = [prompt("v0"), reply("v0r", "v0"), reply("cross", "p7")]  # a parent in the other file
    write(root, TRAIN, train)
    write(root, VALIDATION, validation)
    return root


def test_every_drop_reason_counted_exactly(planted, tmp_path, tokenizer):
    manifest = oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params())
    # passing the filters: N_EN + long + unranked + mkr (English, in train) + v0r, cross; 10 others
    english, other = N_EN + 3 + 2, len(NON_EN)
    keep = english * 0.1 / (0.9 * other)
    assert manifest["english_plan"] == {"english_frac": 0.9, "passing_english": english, "passing_other": other,
                                        "non_en_keep": pytest.approx(keep), "seed": 1337}
    lang_drops = sum(unit_hash(f"x{i}", 1337, "lang") > keep for i in range(len(NON_EN)))
    assert 0 < lang_drops < len(NON_EN)
    acc = manifest["accounting"]
    assert acc["dropped"] == {"not_reviewed": 2, "deleted": 1, "not_best_rank": 2, "orphan_reply": 3,
                              "empty_prompt": 1, "empty_answer": 1, "missing_id": 1, "english_target": lang_drops,
                              "too_long": 1}
    replies = N_EN + 1 + 10 + 2 + 1 + 2 + 1 + 3 + 1 + 1 + 1 + 1 + 2
    assert acc["rows_read"] == replies == acc["rows_written_total"] + acc["dropped_total"]
    assert manifest["prompter_messages"] == N_EN + 10 + 1 + 1 + 1
    assert manifest["messages"] == {"total": replies + N_EN + 13, "assistant": replies, "other_roles": 0}
    prompters = N_EN + 12
    assert [(i["rows"], i["messages"], i["prompter_messages"]) for i in manifest["inputs"]] == [
        (replies - 2, replies - 2 + prompters, prompters), (2, 3, 1)]
    assert manifest["budget"]["exhausted"] and manifest["not_read"]["rows"] == 0


def test_rows_and_texts(planted, tmp_path, tokenizer):
    oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params())
    rows = {r["id"]: r for r in read_rows(tmp_path / "out")}
    assert {"oasst2:unranked", "oasst2:cross", "oasst2:v0r"} <= set(rows)
    row = rows["oasst2:mkr"]
    assert row["source"] == {"dataset": "OpenAssistant/oasst2", "message_id": "mkr", "parent_id": "mk",
                             "message_tree_id": "mk", "lang": "en",
                             "split_group": blake2b(b"mk", digest_size=8).hexdigest()}  # the tree decides the split
    want = reference_render(tokenizer, "Explain <|end|> and <|start|>assistant.", "", "<|return|> ok", "high")
    assert row["input_ids"] == want.input_ids and row["spans"]["analysis_token_count"] == 0
    langs = {r["source"]["lang"] for r in rows.values()}
    assert "en" in langs and langs - {"en"}  # some non-English kept, by hash


def test_every_rank_kept_when_rank_zero_is_not_required(planted, tmp_path, tokenizer):
    manifest = oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params(require_rank_zero=False))
    assert "not_best_rank" not in manifest["accounting"]["dropped"]
    assert manifest["english_plan"]["passing_english"] == N_EN + 5 + 2
    assert {"oasst2:rk1", "oasst2:rk2"} <= {r["id"] for r in read_rows(tmp_path / "out")}


def test_english_keep_rate():
    assert oasst2.english_keep_rate(90, 10, 0.9) == pytest.approx(1.0)
    assert oasst2.english_keep_rate(90, 20, 0.9) == pytest.approx(0.5)
    assert oasst2.english_keep_rate(10, 1, 0.5) == 1.0
    assert oasst2.english_keep_rate(0, 5, 0.9) == 0.0 and oasst2.english_keep_rate(5, 0, 0.9) == 1.0


@pytest.fixture(scope="module")
def ordered(tmp_path_factory):
    """Two files of 10 English replies each, every reply in the row before its prompt."""
    root = tmp_path_factory.mktemp("chat_budget")
    for name, tag in ((TRAIN, "a"), (VALIDATION, "b")):
        write(root, name, [m for i in range(10) for m in (reply(f"{tag}{i}", f"{tag}p{i}"), prompt(f"{tag}p{i}"))])
    return root


def test_the_row_that_crosses_the_budget_is_the_last_one_taken(ordered, tmp_path, tokenizer):
    renderer = HarmonyRenderer(tokenizer, "high")
    order = [f"{t}{i}" for t in "ab" for i in range(10)]
    tokens = [len(renderer.render(f"Question {m[0]}p{m[1:]}?", "", f"Answer {m}.").input_ids) for m in order]
    target = sum(tokens[:14]) - 1  # b3, at row 6 of the validation file, crosses
    snapshots = []
    for batch_size in (1, 3, 4096):
        out = tmp_path / f"b{batch_size}"
        manifest = oasst2.build(ordered, out, make_encoder(tokenizer), params(target), batch_size=batch_size)
        snapshots.append(dataset_bytes(out))
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert sorted(r["id"] for r in read_rows(out)) == sorted(f"oasst2:{m}" for m in order[:14])
    assert manifest["budget"]["stopped_at"] == {"file": str(ordered / VALIDATION), "row": 6}
    assert manifest["budget"]["total_tokens"] == sum(tokens[:14]) and not manifest["budget"]["exhausted"]
    assert manifest["accounting"]["rows_read"] == 14 and manifest["accounting"]["dropped_total"] == 0
    assert manifest["not_read"]["rows"] == 6
    assert manifest["not_read"]["files"] == [{"path": str(ordered / VALIDATION), "rows": 6}]
    assert [i["read"] for i in manifest["inputs"]] == ["complete", "partial"]


def test_demo_source_runs_out_and_threads_do_not_matter(tmp_path):
    raw = tmp_path / "raw"
    write_oasst2_source(raw, 120, seed=4)
    outs = []
    for threads in (1, 3):
        out = tmp_path / f"t{threads}"
        subprocess.run([sys.executable, str(SCRIPT), "--input-dir", str(raw), "--output-dir", str(out),
                        "--threads", str(threads), "--rows-per-file", "50"], check=True, capture_output=True)
        outs.append(dataset_bytes(out))
    assert outs[0] == outs[1]
    manifest = json.loads(outs[0]["manifest.json"])
    assert manifest["budget"]["exhausted"] and manifest["budget"]["stopped_at"] is None
    assert manifest["budget"]["target_total_tokens"] == 15_000_000 and manifest["not_read"]["rows"] == 0
    acc = manifest["accounting"]
    assert acc["rows_read"] == acc["rows_written_total"] + acc["dropped_total"] == manifest["messages"]["assistant"]
    assert acc["dropped"]["orphan_reply"] >= 1  # the demo plants a tree whose follow-up prompt is missing
    written = manifest["distributions"]["lang"]
    assert written["en"] / sum(written.values()) >= 0.85


def test_wrong_columns_fail_with_the_file_named(tmp_path, tokenizer):
    path = write(tmp_path / "raw", TRAIN, [prompt("p"), reply("r", "p")])
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("review_result"), "review_result", pa.array(["true", "true"]))
    pq.write_table(table, path)
    with pytest.raises(SourceError, match=r"train-00000-of-00001-aaaa.parquet: column review_result has type string"):
        oasst2.build(tmp_path / "raw", tmp_path / "out", make_encoder(tokenizer), params())
    pq.write_table(table.drop_columns(["text"]), path)
    with pytest.raises(SourceError, match=r"aaaa.parquet: missing column\(s\) text"):
        oasst2.build(tmp_path / "raw", tmp_path / "out", make_encoder(tokenizer), params())
