"""The fast paths of issue 11 give the same bytes as the plain ones, and do skip the work.

- the renderer's self-check is recorded once per vocabulary, versions and code, and a job with a
  matching record neither runs it nor loads openai-harmony; records are never written into a
  read-only vocabulary folder, and a stale or damaged record is ignored;
- the token-buffer encoder equals `encode_ordinary`, lone surrogates included;
- SYNTH finalize reads the encode jobs' rows without decoding any parquet;
- part files are the same bytes whatever the number of writer threads.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data import render_check
from distill_data.builders import synth, synth_plan
from distill_data.dataset import SplitWriters
from distill_data.demo.contract import contract_table
from distill_data.demo.synth import write_synth_source
from distill_data.encode import ExampleEncoder
from distill_data.render import HarmonyRenderer, _buffer_encoder, reference_render
from distill_data.tokenizer import load_tokenizer


@pytest.fixture
def fresh_tokenizer(vocab_dir):
    """A tokenizer object of its own, so that whether it loaded openai-harmony can be seen."""
    load_tokenizer.cache_clear()
    try:
        yield load_tokenizer(str(vocab_dir))
    finally:
        load_tokenizer.cache_clear()


@pytest.fixture
def check_dir(tmp_path, monkeypatch):
    folder = tmp_path / "render-check"
    monkeypatch.setenv(render_check.ENV_DIR, str(folder))
    return folder


PROBES = [("Say <|end|> twice.", "think <|start|>assistant", "<|return|> done"), ("q", "", "a"),
          ("中文 😀 ünï", "", "x" * 3000)]


def test_a_recorded_self_check_skips_openai_harmony(fresh_tokenizer, check_dir):
    first = HarmonyRenderer(fresh_tokenizer, "high")
    assert fresh_tokenizer._harmony is not None  # the first one checked against openai-harmony
    records = list(check_dir.glob("render-check-*.json"))
    assert len(records) == 1
    assert json.loads(records[0].read_text())["key"]["openai_harmony"]

    load_tokenizer.cache_clear()
    second_tokenizer = load_tokenizer(str(fresh_tokenizer.vocab_dir))
    second = HarmonyRenderer(second_tokenizer, "high")
    assert second_tokenizer._harmony is None  # recorded: not loaded at all
    for probe in PROBES:
        assert second.render(*probe) == first.render(*probe) == reference_render(second_tokenizer, *probe, "high")


def test_each_effort_and_each_code_version_has_its_own_record(fresh_tokenizer, check_dir, monkeypatch):
    HarmonyRenderer(fresh_tokenizer, "high")
    HarmonyRenderer(fresh_tokenizer, "low")
    assert len(list(check_dir.glob("render-check-*.json"))) == 2
    monkeypatch.setattr(render_check, "_code_sha256", lambda: "edited renderer")
    assert render_check.cached_frames(fresh_tokenizer, "high") is None


def test_a_damaged_or_foreign_record_is_ignored_and_rewritten(fresh_tokenizer, check_dir):
    HarmonyRenderer(fresh_tokenizer, "high")
    (record,) = check_dir.glob("render-check-*.json")
    data = json.loads(record.read_text())
    data["frames"]["end"] = [1, 2]
    record.write_text(json.dumps(data))
    assert render_check.cached_frames(fresh_tokenizer, "high") is None
    record.write_text("{not json")
    assert render_check.cached_frames(fresh_tokenizer, "high") is None
    renderer = HarmonyRenderer(fresh_tokenizer, "high")  # checks again, and records again
    assert render_check.cached_frames(fresh_tokenizer, "high") is not None
    assert renderer.render(*PROBES[0]) == reference_render(fresh_tokenizer, *PROBES[0], "high")


def test_a_writable_vocabulary_folder_is_never_written_either(vocab_dir, tmp_path, monkeypatch):
    """Issue 17, item 5: the vocabulary's folder may be shared; the record goes to the cache."""
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "o200k_base.tiktoken").write_bytes((Path(vocab_dir) / "o200k_base.tiktoken").read_bytes())
    monkeypatch.delenv(render_check.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_tokenizer.cache_clear()
    try:
        HarmonyRenderer(load_tokenizer(str(folder)), "high")
        assert sorted(p.name for p in folder.iterdir()) == ["o200k_base.tiktoken"]
        assert len(list((tmp_path / "cache" / "distill_data").glob("render-check-*.json"))) == 1
    finally:
        load_tokenizer.cache_clear()


def test_a_read_only_vocabulary_folder_is_never_written(vocab_dir, tmp_path, monkeypatch):
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "o200k_base.tiktoken").write_bytes((Path(vocab_dir) / "o200k_base.tiktoken").read_bytes())
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    monkeypatch.delenv(render_check.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_tokenizer.cache_clear()
    try:
        tokenizer = load_tokenizer(str(folder))
        HarmonyRenderer(tokenizer, "high")
        assert sorted(p.name for p in folder.iterdir()) == ["o200k_base.tiktoken"]
        assert len(list((tmp_path / "cache" / "distill_data").glob("render-check-*.json"))) == 1
        # nowhere to write at all: the check simply runs every time
        monkeypatch.setenv(render_check.ENV_DIR, "off")
        assert render_check.store_frames(tokenizer, "high", {}) is None
        assert render_check.cached_frames(tokenizer, "high") is None
        assert HarmonyRenderer(tokenizer, "high").render("q", "", "a") == reference_render(tokenizer, "q", "", "a", "high")
    finally:
        folder.chmod(stat.S_IRWXU)
        load_tokenizer.cache_clear()


def test_the_buffer_encoder_equals_encode_ordinary(tokenizer):
    encode = _buffer_encoder(tokenizer.tiktoken)
    texts = ["", " ", "hello world", "<|end|><|start|>assistant<|message|>", "<|endoftext|>x", "ünïcödé 中文 😀",
             "lone \ud800 surrogate", "\x00\r\n\t", "a" * 20_000, " ".join(f"w{i} ∴" for i in range(2000))]
    for text in texts:
        assert np.frombuffer(encode(text), np.uint32).tolist() == tokenizer.tiktoken.encode_ordinary(text), text


def test_synth_finalize_decodes_no_parquet(tmp_path, tokenizer, monkeypatch):
    shards = write_synth_source(tmp_path / "raw", ["synth_010.parquet", "synth_034.parquet"], 300, seed=3)
    params = synth.SynthParams(global_keep=1.0, memorization_cap=1.0, english_frac=0.0, rows_per_file=50)
    summaries, stats = [], []
    for shard in shards:
        synth.write_scan(shard, tmp_path / f"{shard.stem}.mask.parquet", tmp_path / f"{shard.stem}.json", 64)
        summaries.append(synth_plan.load_json(tmp_path / f"{shard.stem}.json"))
    plan = synth_plan.make_plan(summaries, params)
    encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high", 1), 8192, params.seed, params.train_frac)
    for shard in shards:
        stats.append(synth.encode_shard(shard, tmp_path / f"{shard.stem}.mask.parquet", plan, encoder, params,
                                        tmp_path / "encoded", shard.name, batch_size=64))
    assert sorted(p.name for p in (tmp_path / "encoded").iterdir()) == [
        "synth_010.train.arrow", "synth_010.validation.arrow", "synth_034.train.arrow", "synth_034.validation.arrow"]

    encoded = str(tmp_path / "encoded")

    def guarded(original):
        def call(source, *args, **kwargs):
            if str(source).startswith(encoded):
                raise AssertionError(f"finalize decoded the encode job's {source} as parquet")
            return original(source, *args, **kwargs)
        return call

    monkeypatch.setattr(pq, "ParquetFile", guarded(pq.ParquetFile))
    monkeypatch.setattr(pq, "read_table", guarded(pq.read_table))
    manifest = synth.finalize(dataset="d", dataset_dir=tmp_path / "out", shard_names=[s.name for s in shards],
                              encoded_dir=tmp_path / "encoded", scan_summaries=summaries, shard_stats=stats, plan=plan,
                              params=params, tokenizer=tokenizer, input_paths=shards, threads=2)
    monkeypatch.undo()
    written = pa.concat_tables([pq.read_table(tmp_path / "out" / f["path"]) for f in manifest["files"]["train"]])
    assert [f["rows"] for f in manifest["files"]["train"]][:-1] == [50] * (len(manifest["files"]["train"]) - 1)
    assert written.num_rows == manifest["accounting"]["rows_written"]["train"] > 300
    for row in written.slice(0, 40).to_pylist():  # labels and mask rebuilt as the contract says
        start = row["spans"]["assistant_token_start"]
        assert row["labels"] == [-100] * start + row["input_ids"][start:]
        assert row["attention_mask"] == [1] * len(row["input_ids"])


def test_part_files_do_not_depend_on_writer_threads(tmp_path):
    rng = np.random.default_rng(0)
    n = 700
    table = contract_table(id_prefix="t", dataset_hf="T", keys=[str(i) for i in range(n)], source_fields={"lang": ["en"] * n},
                           prompt=rng.integers(5, 50, n), analysis=rng.integers(0, 80, n), final=rng.integers(1, 60, n),
                           rng=rng)
    listings = []
    for threads in (1, 3):
        writers = SplitWriters(tmp_path / f"t{threads}", table.schema, 64, threads=threads)
        for start in range(0, n, 97):
            writers.write("train", table.slice(start, 97))
        listings.append(writers.close())
    assert listings[0] == listings[1]
    for entry in listings[0]["train"]:
        assert (tmp_path / "t1" / entry["path"]).read_bytes() == (tmp_path / "t3" / entry["path"]).read_bytes()
    assert os.path.getsize(tmp_path / "t1" / listings[0]["train"][0]["path"]) == listings[0]["train"][0]["bytes"]


def test_fast_whitespace_collapse_equals_the_regex_for_every_code_point():
    import re
    import sys

    from distill_data.text import normalize_text

    whitespace = re.compile(r"\s+")
    for code in range(sys.maxunicode + 1):
        text = f" a{chr(code)}{chr(code)}b\t\n"
        assert " ".join(text.split()) == whitespace.sub(" ", text).strip(), hex(code)
    assert normalize_text("  Ｈｅｌｌｏ\u00a0\u2003 World\n\x00 ") == "hello world"


def test_earlier_turns_render_as_openai_harmony_does(tokenizer, renderer):
    import random

    rng = random.Random(11)
    words = ["a", "<|end|>", "中文", "<|start|>assistant", "  x  ", "😀", "final", "line\nbreak"]
    text = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))).strip() or "t"  # noqa: E731
    rows = []
    for _ in range(120):
        history = tuple((text(), text()) for _ in range(rng.choice([0, 0, 1, 2, 5])))
        rows.append((text(), text() if rng.random() < 0.5 else "", text(), history))
    got = renderer.render_batch(*zip(*rows))
    for (prompt, reasoning, final, history), item in zip(rows, got):
        assert item == reference_render(tokenizer, prompt, reasoning, final, "high", history)
    assert renderer.render("p", "", "f", (("u", "a"),)) == reference_render(tokenizer, "p", "", "f", "high", (("u", "a"),))


@pytest.mark.parametrize("with_edge_rows", [False, True])
def test_labels_are_minus_100_exactly_on_each_prompt(with_edge_rows):
    from distill_data.encode import token_columns

    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 40, 300)
    starts = rng.integers(0, lengths)  # 0 <= start < length
    if with_edge_rows:  # a row that is all prompt, and an empty one: the general path
        lengths[7], starts[7] = 5, 5
        lengths[8], starts[8] = 0, 0
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = rng.integers(0, 200_000, int(offsets[-1])).astype(np.int32)
    columns = token_columns(ids, offsets, starts.astype(np.int64))
    for i, (labels, row_ids) in enumerate(zip(columns["labels"].to_pylist(), columns["input_ids"].to_pylist())):
        assert labels == [-100] * int(starts[i]) + row_ids[int(starts[i]):]
        assert columns["attention_mask"][i].as_py() == [1] * len(row_ids)
