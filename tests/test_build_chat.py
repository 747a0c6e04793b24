"""oasst2 builder (budget.py + builders/oasst2.py) on planted message files."""

from __future__ import annotations

import json
from collections import Counter
import random
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


def prompt(mid, text=None, lang="en", parent=None, **kw):
    return {"message_id": mid, "role": "prompter", "text": f"Question {mid}?" if text is None else text,
            "lang": lang, "parent_id": parent, **kw}


def reply(mid, parent, lang="en", **kw):
    return {"message_id": mid, "parent_id": parent, "role": "assistant", "text": f"Answer {mid}.",
            "lang": lang, "rank": 0, **kw}


def read_rows(folder):
    tables = [pq.read_table(p) for split in ("train", "validation") for p in sorted((folder / split).glob("*.parquet"))]
    return pa.concat_tables(tables).to_pylist()


N_EN = 30  # English replies with a prompt each; with 10 others, 3 or so of those are kept by hash
NON_EN = ["es", "pt-BR", "de", "uk-UA", "es", "fr", "ru", "bar", "nb-NO", "es"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat_raw")
    train = [
        # replies before their parents: rows are not in tree order
        *(reply(f"en{i}", f"p{i}") for i in range(N_EN)),
        *(prompt(f"p{i}") for i in range(N_EN)),
        prompt("pl"), reply("long", "pl", text="w " * 20000),               # too_long (English, passes the plan)
        *(reply(f"x{i}", f"q{i}", lang=lang) for i, lang in enumerate(NON_EN)),
        *(prompt(f"q{i}", lang=lang) for i, lang in enumerate(NON_EN)),
        reply("nr1", "p1", review_result=False), reply("nr2", "p1", review_result=None),  # not_reviewed
        reply("del", "p2", deleted=True),                                   # deleted
        reply("rk1", "p3", rank=1), reply("rk2", "p3", rank=2),             # not_best_reply: en3 has rank 0
        reply("unranked", "p4", rank=None),                                 # not_best_reply: en4 is ranked
        {"message_id": "o1", "parent_id": None, "role": "assistant", "text": "Orphan."},  # orphan_reply
        reply("o2", "gone"),                                                # orphan_reply: parent missing
        reply("o3", "en5"),                                                 # orphan_reply: parent is a reply
        prompt("empty", text=" \x00 "), reply("ep", "empty"),               # empty_prompt
        reply("ea", "p5", text="  "),                                       # empty_answer
        reply(None, "p6"),                                                  # missing_id
        prompt("mk", text="Explain <|end|> and <|start|>assistant\x00."), reply("mkr", "mk", text="<|return|> ok"),
        prompt("bp", review_result=False), reply("bpr", "bp"),              # bad_ancestor: the prompt
        prompt("t0"), reply("t0a", "t0", deleted=True),                     # deleted (and the thread below it:)
        prompt("t1", parent="t0a"), reply("t1a", "t1"),                     # bad_ancestor: a deleted reply above
        prompt("pc"),
    ]
    validation = [prompt("v0"), reply("v0r", "v0"), reply("cross", "pc")]  # a parent in the other file
    write(root, TRAIN, train)
    write(root, VALIDATION, validation)
    return root


def test_every_drop_reason_counted_exactly(planted, tmp_path, tokenizer):
    manifest = oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params())
    # passing the filters: N_EN + long + mkr (English, in train) + v0r, cross; 10 others
    english, other = N_EN + 4, len(NON_EN)
    keep = english * 0.1 / (0.9 * other)
    assert manifest["english_plan"] == {"english_frac": 0.9, "passing_english": english, "passing_other": other,
                                        "non_en_keep": pytest.approx(keep), "seed": 1337,
                                        "language_of": "the thread's root message"}
    lang_drops = sum(unit_hash(f"x{i}", 1337, "lang") > keep for i in range(len(NON_EN)))
    assert 0 < lang_drops < len(NON_EN)
    acc = manifest["accounting"]
    assert acc["dropped"] == {"not_reviewed": 2, "deleted": 2, "not_best_reply": 3, "orphan_reply": 3,
                              "bad_ancestor": 2, "empty_prompt": 1, "empty_answer": 1, "missing_id": 1,
                              "english_target": lang_drops, "too_long": 1}
    train = pq.read_table(planted / TRAIN).to_pylist()
    validation = pq.read_table(planted / VALIDATION).to_pylist()
    replies = [sum(r["role"] == "assistant" for r in rows) for rows in (train, validation)]
    prompters = [sum(r["role"] == "prompter" for r in rows) for rows in (train, validation)]
    assert acc["rows_read"] == sum(replies) == acc["rows_written_total"] + acc["dropped_total"]
    assert acc["rows_written_total"] == english + other - lang_drops - 1
    assert manifest["prompter_messages"] == sum(prompters)
    assert manifest["messages"] == {"total": len(train) + len(validation), "assistant": sum(replies), "other_roles": 0}
    assert [(i["rows"], i["messages"], i["prompter_messages"]) for i in manifest["inputs"]] == [
        (replies[0], len(train), prompters[0]), (replies[1], len(validation), prompters[1])]
    assert manifest["budget"]["exhausted"] and manifest["not_read"]["rows"] == 0
    samples = {s["detail"] for s in manifest["drop_samples"]["bad_ancestor"]}
    assert samples == {"prompt bp is not reviewed or is deleted",
                       "reply t0a above t1 is not reviewed, deleted or empty"}
    assert manifest["examples_per_prompt"] == {"prompts": acc["rows_written_total"], "max": 1}
    assert manifest["turns_per_example"] == {"1": acc["rows_written_total"]}


def test_rows_and_texts(planted, tmp_path, tokenizer):
    oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params())
    rows = {r["id"]: r for r in read_rows(tmp_path / "out")}
    assert {"oasst2:cross", "oasst2:v0r", "oasst2:en3", "oasst2:en4"} <= set(rows)
    row = rows["oasst2:mkr"]
    assert row["source"] == {"dataset": "OpenAssistant/oasst2", "message_id": "mkr", "parent_id": "mk",
                             "message_tree_id": "mk", "lang": "en",
                             "split_group": blake2b(b"mk", digest_size=8).hexdigest()}  # the tree decides the split
    want = reference_render(tokenizer, "Explain <|end|> and <|start|>assistant.", "", "<|return|> ok", "high")
    assert row["input_ids"] == want.input_ids and row["spans"]["analysis_token_count"] == 0
    langs = {r["source"]["lang"] for r in rows.values()}
    assert "en" in langs and langs - {"en"}  # some non-English kept, by hash


def test_every_acceptable_reply_kept_when_rank_zero_is_not_required(planted, tmp_path, tokenizer):
    manifest = oasst2.build(planted, tmp_path / "out", make_encoder(tokenizer), params(require_rank_zero=False))
    assert "not_best_reply" not in manifest["accounting"]["dropped"]
    assert manifest["english_plan"]["passing_english"] == N_EN + 4 + 3
    assert {"oasst2:rk1", "oasst2:rk2", "oasst2:unranked"} <= {r["id"] for r in read_rows(tmp_path / "out")}
    assert manifest["examples_per_prompt"]["max"] == 3  # p3: en3, rk1, rk2


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
    assert manifest["budget"]["stopped_at"] == {"file": VALIDATION.rsplit("/", 1)[-1], "row": 6}
    assert manifest["budget"]["total_tokens"] == sum(tokens[:14]) and not manifest["budget"]["exhausted"]
    assert manifest["accounting"]["rows_read"] == 14 and manifest["accounting"]["dropped_total"] == 0
    assert manifest["not_read"]["rows"] == 6
    assert manifest["not_read"]["files"] == [{"path": VALIDATION.rsplit("/", 1)[-1], "rows": 6}]
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


# --- multi-turn rendering (chat threads) -------------------------------------------------------

MARKERS = ["<|end|>", "<|start|>assistant", "<|channel|>final<|message|>", "<|return|>", "<|start|>user",
           "<|message|>", "<|channel|>", "<|call|>", "<|endoftext|>"]
PIECES = ["Hello world.", "Can you make it shorter?", "  padded  ", "line\nbreaks\n\n", "emoji 😀👩‍👩‍👧",
          "中文文本。", "مرحبا", "**bold** `code`", "```python\nprint('x')\n```", "NUL\x00inside", "\x00",
          "'s 're", "\r\n", "ünïcödé", "  "]


def random_text(rng: random.Random, max_pieces: int = 8) -> str:
    parts = []
    for _ in range(rng.randint(0, max_pieces)):
        roll = rng.random()
        parts.append(rng.choice(MARKERS) if roll < 0.3 else
                     chr(rng.randint(0x20, 0x2FFF)) * rng.randint(1, 20) if roll < 0.35 else rng.choice(PIECES))
        if rng.random() < 0.5:
            parts.append(" ")
    return "".join(parts)


def generated_threads(n: int, seed: int = 11):
    """Random threads of 0-6 earlier turns with marker strings, NULs (cleaned as builders do),
    unicode and empty reasoning, as (history, prompt, reasoning, final)."""
    from distill_data.text import clean_text

    rng = random.Random(seed)
    for _ in range(n):
        history = tuple((clean_text(random_text(rng)) or "u", clean_text(random_text(rng)) or "a")
                        for _ in range(rng.randint(0, 6)))
        prompt = clean_text(random_text(rng)) or "p"
        reasoning = clean_text(random_text(rng)) if rng.random() < 0.4 else ""
        yield history, prompt, reasoning, clean_text(random_text(rng)) or "f"


def test_multi_turn_render_equals_harmony(tokenizer):
    """Earlier replies end in <|end|>, the last in <|return|>, and only the last reply is
    labelled: assistant_token_start = openai-harmony's completion render of all before it."""
    renderer = HarmonyRenderer(tokenizer, "high", num_threads=2)
    threads = list(generated_threads(400))
    assert sum(len(t[0]) >= 5 for t in threads) > 50 and sum(not t[0] for t in threads) > 20
    fast = renderer.render_batch_with_history(*zip(*threads))
    for (history, prompt, reasoning, final), got in zip(threads, fast):
        want = reference_render(tokenizer, prompt, reasoning, final, "high", history)
        assert got == want, (history, prompt, reasoning, final)
        assert got == renderer.render_with_history(history, prompt, reasoning, final)
    # an empty history is the single-turn render
    single = [t for t in threads if not t[0]]
    assert [r for r, t in zip(fast, threads) if not t[0]] == renderer.render_batch(*zip(*(t[1:] for t in single)))


def test_multi_turn_render_layout(tokenizer):
    renderer = HarmonyRenderer(tokenizer, "high")
    history = (("Hi <|end|>", "Hello."), ("Shorter?", "Hi."))
    got = renderer.render_with_history(history, "Thanks\x00".replace("\x00", ""), "", "You're welcome.")
    text = tokenizer.harmony.decode(got.input_ids)
    assert text.split("<|end|>", 1)[1] == (
        "<|start|>user<|message|>Hi <|end|><|end|><|start|>assistant<|channel|>final<|message|>Hello.<|end|>"
        "<|start|>user<|message|>Shorter?<|end|><|start|>assistant<|channel|>final<|message|>Hi.<|end|>"
        "<|start|>user<|message|>Thanks<|end|><|start|>assistant<|channel|>final<|message|>You're welcome.<|return|>")
    labelled = tokenizer.harmony.decode(got.input_ids[got.assistant_token_start:])
    assert labelled == "<|channel|>final<|message|>You're welcome.<|return|>"
    # the literal marker in the user text is ordinary text, not the special token
    end_id = tokenizer.harmony.encode("<|end|>", allowed_special={"<|end|>"})[0]
    assert got.input_ids.count(end_id) == 1 + 2 * 2 + 1


# --- threads: best reply, ancestors, history ---------------------------------------------------

def build_planted(tmp_path, tokenizer, train, validation=(), **kw):
    root = tmp_path / "raw"
    write(root, TRAIN, train)
    if validation:
        write(root, VALIDATION, validation)
    manifest = oasst2.build(root, tmp_path / "out", make_encoder(tokenizer), params(**kw))
    return manifest, {r["id"]: r for r in read_rows(tmp_path / "out")}


def test_null_rank_siblings_give_one_example_chosen_by_hash(tmp_path, tokenizer):
    ids = [f"n{i}" for i in range(6)]
    manifest, rows = build_planted(tmp_path, tokenizer, [prompt("p"), *(reply(m, "p", rank=None) for m in ids)])
    best = min(ids, key=lambda m: unit_hash(m, 1337, "best"))
    assert list(rows) == [f"oasst2:{best}"]
    assert manifest["accounting"]["dropped"] == {"not_best_reply": 5}
    assert manifest["examples_per_prompt"] == {"prompts": 1, "max": 1}


def test_ranked_siblings_lowest_acceptable_rank_wins(tmp_path, tokenizer):
    train = [
        prompt("a"), reply("a2", "a", rank=2), reply("a0", "a", rank=0), reply("a1", "a", rank=1),
        # the rank-0 reply is deleted: the next rank is the example
        prompt("b"), reply("b0", "b", rank=0, deleted=True), reply("b1", "b", rank=1), reply("b2", "b", rank=2),
        # a ranked sibling beats unranked ones, whatever the hash
        prompt("c"), *(reply(f"c{i}", "c", rank=None) for i in range(4)), reply("cr", "c", rank=3),
        # a ranked sibling that failed review does not make the unranked ones lose
        prompt("d"), reply("d0", "d", rank=0, review_result=False), reply("du", "d", rank=None),
    ]
    manifest, rows = build_planted(tmp_path, tokenizer, train)
    assert sorted(rows) == ["oasst2:a0", "oasst2:b1", "oasst2:cr", "oasst2:du"]
    assert manifest["accounting"]["dropped"] == {"not_best_reply": 2 + 1 + 4, "deleted": 1, "not_reviewed": 1}


def test_a_bad_ancestor_drops_the_replies_below_it(tmp_path, tokenizer):
    train = [
        prompt("r"), reply("ra", "r"),                                   # kept
        prompt("f1", parent="ra", deleted=True), reply("f1a", "f1"),     # the prompt itself is deleted
        prompt("f2", parent="f1a"), reply("f2a", "f2"),                  # two levels below it
        prompt("g1", parent="ra"), reply("g1a", "g1", review_result=None),  # not reviewed: itself dropped...
        prompt("g2", parent="g1a"), reply("g2a", "g2"),                  # ...and what follows it
        prompt("h1", parent="ra"), reply("h1a", "h1"),                   # a good sibling branch: kept
        prompt("m1", parent="missing"), reply("m1a", "m1"),              # the thread above is lost
    ]
    manifest, rows = build_planted(tmp_path, tokenizer, train)
    assert sorted(rows) == ["oasst2:h1a", "oasst2:ra"]
    assert manifest["accounting"]["dropped"] == {"bad_ancestor": 4, "not_reviewed": 1}
    details = {s["detail"] for s in manifest["drop_samples"]["bad_ancestor"]}
    assert details == {"prompt f1 is not reviewed or is deleted", "reply g1a above g2 is not reviewed, deleted or empty",
                       "reply missing above m1 is missing"}
    assert rows["oasst2:h1a"]["source"]["message_tree_id"] == "r"


def deep_thread(turns=5, tag="t"):
    """root prompt → reply → follow-up → … : `turns` prompter messages, each with one reply."""
    rows, parent = [], None
    for k in range(turns):
        rows.append(prompt(f"{tag}p{k}", text=f"Turn {k} question <|end|>?", parent=parent))
        rows.append(reply(f"{tag}a{k}", f"{tag}p{k}", text=f"Turn {k} answer."))
        parent = f"{tag}a{k}"
    return rows


def test_depth_five_thread_prompt_holds_every_earlier_turn(tmp_path, tokenizer):
    rows_in = deep_thread(5)
    rows_in.reverse()  # children before parents
    manifest, rows = build_planted(tmp_path, tokenizer, rows_in)
    assert sorted(rows) == [f"oasst2:ta{k}" for k in range(5)]
    assert manifest["examples_per_prompt"] == {"prompts": 5, "max": 1}
    assert manifest["turns_per_example"] == {str(k): 1 for k in range(1, 6)}
    for k in range(5):
        row = rows[f"oasst2:ta{k}"]
        history = tuple((f"Turn {j} question <|end|>?", f"Turn {j} answer.") for j in range(k))
        want = reference_render(tokenizer, f"Turn {k} question <|end|>?", "", f"Turn {k} answer.", "high", history)
        assert row["input_ids"] == want.input_ids
        assert row["spans"]["assistant_token_start"] == want.assistant_token_start
        assert row["labels"][:want.assistant_token_start] == [-100] * want.assistant_token_start
        text = tokenizer.harmony.decode(row["input_ids"])
        assert all(f"Turn {j} question" in text and f"Turn {j} answer" in text for j in range(k + 1))
        # only the last reply is labelled
        labelled = tokenizer.harmony.decode(row["input_ids"][want.assistant_token_start:])
        assert labelled == f"<|channel|>final<|message|>Turn {k} answer.<|return|>"
        assert row["source"]["split_group"] == blake2b(b"tp0", digest_size=8).hexdigest()


def test_single_turn_form_when_history_is_off(tmp_path, tokenizer):
    manifest, rows = build_planted(tmp_path, tokenizer, deep_thread(3), include_history=False)
    assert len(rows) == 3 and manifest["turns_per_example"] == {"1": 3}
    want = reference_render(tokenizer, "Turn 2 question <|end|>?", "", "Turn 2 answer.", "high")
    assert rows["oasst2:ta2"]["input_ids"] == want.input_ids
    assert manifest["params"]["include_history"] is False


def test_duplicate_content_covers_the_whole_thread(tmp_path, tokenizer):
    # the same follow-up and reply after different earlier turns: different examples
    a = deep_thread(2, "a")
    b = deep_thread(2, "b")
    b[0]["text"] = "Another first question?"
    # an exact copy of thread a under other ids: duplicates
    c = deep_thread(2, "c")
    manifest, rows = build_planted(tmp_path, tokenizer, a + b + c)
    assert sorted(rows) == ["oasst2:aa0", "oasst2:aa1", "oasst2:ba0", "oasst2:ba1"]
    assert manifest["accounting"]["dropped"] == {"duplicate_content": 2}
    manifest, rows = build_planted(tmp_path / "single", tokenizer, a + b + c, include_history=False)
    assert manifest["accounting"]["dropped"] == {"duplicate_content": 3}  # single-turn: b1, c0, c1 repeat a


def test_english_is_the_thread_root_language(tmp_path, tokenizer):
    train = [prompt("es", lang="es"), reply("esa", "es", lang="en"),       # an English reply in a Spanish thread
             prompt("en", lang="en"), reply("ena", "en", lang="es")]
    manifest, rows = build_planted(tmp_path, tokenizer, train, english_frac=0.5)
    assert manifest["english_plan"]["passing_english"] == 1 and manifest["english_plan"]["passing_other"] == 1
    realised = manifest["english_target"]["realised"]
    assert realised["rows"] == {"english": 1, "total": 2, "english_share": 0.5}
    assert realised["total_tokens"]["english"] == len(rows["oasst2:ena"]["input_ids"])
    assert realised["total_tokens"]["total"] == manifest["total_tokens"]
    assert manifest["english_target"]["target_english_frac"] == 0.5


def test_an_unreachable_english_target_stops_the_build(tmp_path, tokenizer):
    train = [prompt("es", lang="es"), reply("esa", "es", lang="es")]
    with pytest.raises(oasst2.budget.TargetError, match=r"english_frac is 0.9, but none of the 1 examples .*chat.english_frac"):
        build_planted(tmp_path, tokenizer, train)
    assert not (tmp_path / "out").exists()
    # the script: one clear line, exit 2
    out = subprocess.run([sys.executable, str(SCRIPT), "--input-dir", str(tmp_path / "raw"), "--output-dir",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 2 and "chat.english_frac" in out.stderr and "Traceback" not in out.stderr


def test_no_train_rows_stops_the_build(tmp_path, tokenizer):
    train = [prompt("p"), reply("a", "p", deleted=True), prompt("q"), reply("b", "q")]
    with pytest.raises(oasst2.budget.TargetError, match=r"0 train rows \(rows read 2, written: train 0, "
                                                        r"validation 1; dropped: deleted 1\)"):
        root = tmp_path / "raw"
        write(root, TRAIN, train)
        encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high"), 8192, 1337, 0.0)
        oasst2.build(root, tmp_path / "out", encoder, params(train_frac=0.0))
    assert not (tmp_path / "out").exists()


def test_examples_per_prompter_at_most_one_on_the_demo(tmp_path, tokenizer):
    raw = tmp_path / "raw"
    write_oasst2_source(raw, 300, seed=5)
    manifest = oasst2.build(raw, tmp_path / "out", make_encoder(tokenizer), params())
    rows = read_rows(tmp_path / "out")
    per_prompt = Counter(r["source"]["parent_id"] for r in rows)
    assert max(per_prompt.values()) == 1 == manifest["examples_per_prompt"]["max"]
    dropped = manifest["accounting"]["dropped"]
    assert dropped["not_best_reply"] > 0 and dropped["bad_ancestor"] > 0
    turns = {int(k): v for k, v in manifest["turns_per_example"].items()}
    assert max(turns) >= 5 and sum(v for k, v in turns.items() if k > 1) > 0.2 * len(rows)
    # no follow-up without its context: an example holds one user turn per prompt on its path
    messages = {m["message_id"]: m for path in sorted(raw.rglob("*.parquet")) for m in pq.read_table(path).to_pylist()}
    user_id = tokenizer.harmony.encode("<|start|>user", allowed_special="all")
    for row in rows:
        depth, node = 0, messages[row["source"]["parent_id"]]
        while node["parent_id"]:
            node, depth = messages[node["parent_id"]], depth + 1
        ids = row["input_ids"]
        users = sum(ids[i:i + len(user_id)] == user_id for i in range(len(ids)))
        assert users == depth // 2 + 1, row["id"]
        assert row["source"]["message_tree_id"] == node["message_id"]


def test_a_thread_too_long_with_its_history_is_dropped_not_cut(tmp_path, tokenizer):
    rows = deep_thread(3)
    rows[1]["text"] = "long " * 5000  # the first reply (ta0): fits alone, and is history of ta1, ta2
    rows[3]["text"] = "more " * 4000  # ta1: with the history above it, past 8192 tokens
    manifest, kept = build_planted(tmp_path, tokenizer, rows)
    assert sorted(kept) == ["oasst2:ta0"] and manifest["accounting"]["dropped"] == {"too_long": 2}
    assert len(kept["oasst2:ta0"]["input_ids"]) > 5000
    # single-turn, every reply fits
    manifest, kept = build_planted(tmp_path / "single", tokenizer, rows, include_history=False)
    assert len(kept) == 3 and manifest["accounting"]["dropped"] == {}
