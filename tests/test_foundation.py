"""Hashing, configuration, shard list, tokenizer loading and the parquet writer."""

from __future__ import annotations

import shutil
from hashlib import blake2b
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from distill_data.config import ConfigError, load_schema, validate_config
from distill_data.hashing import split_of, unit_hash
from distill_data.shardlist import ShardListError, read_shard_list
from distill_data.tokenizer import TokenizerError, load_tokenizer, resolve_vocab_dir
from distill_data.writer import PartWriter, assembled_aside

PROJECT = Path(__file__).resolve().parent.parent
SCHEMA = load_schema(PROJECT / "schemas" / "config.schema.yaml")


def test_unit_hash_is_the_contract_formula():
    digest = blake2b(b"1337:split:synth_math_21_14314", digest_size=8).digest()
    assert unit_hash("synth_math_21_14314", 1337, "split") == int.from_bytes(digest, "big") / 2**64
    assert unit_hash("a", 1, "x") != unit_hash("a", 2, "x") != unit_hash("a", 1, "y")


def test_split_share_is_close_to_train_frac():
    splits = [split_of(f"row{i}", 1337, 0.9) for i in range(20_000)]
    assert 0.085 < splits.count("validation") / len(splits) < 0.115


def test_shipped_config_is_valid_and_complete():
    config = validate_config(yaml.safe_load((PROJECT / "config.yaml").read_text()), SCHEMA)
    assert config["common"]["max_seq_len"] == 8192 and config["synth"]["global_keep"] == 0.2


def test_every_schema_key_has_description_and_default():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            assert "default" in sub, f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")
    walk(SCHEMA, "")


def test_defaults_fill_missing_keys():
    config = validate_config({"synth": {"global_keep": 0.5}}, SCHEMA)
    assert config["synth"]["global_keep"] == 0.5
    assert config["synth"]["memorization_cap"] == 0.7
    assert config["common"]["seed"] == 1337


@pytest.mark.parametrize("bad, words", [
    ({"synth": {"global_kep": 0.5}}, ["synth", "global_kep"]),
    ({"synth": {"global_keep": 1.5}}, ["synth.global_keep", "1.5"]),
    ({"common": {"reasoning_level": "extreme"}}, ["common.reasoning_level", "extreme"]),
    ({"code": {"target_total_tokens": "lots"}}, ["code.target_total_tokens"]),
])
def test_bad_config_names_the_key(bad, words):
    with pytest.raises(ConfigError) as info:
        validate_config(bad, SCHEMA)
    for word in words:
        assert word in str(info.value)


def test_shard_list_resolves_names_and_keeps_absolute_paths(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# phase 1\nsynth_010.parquet\n\n/elsewhere/synth_034.parquet  # moved\n")
    shards = read_shard_list(listing, tmp_path / "raw")
    assert shards == {"synth_010": str(tmp_path / "raw" / "synth_010.parquet"),
                      "synth_034": "/elsewhere/synth_034.parquet"}


def test_shipped_shard_list_has_the_54_phase1_shards():
    shards = read_shard_list(PROJECT / "data/distillation_1/synth_phase1_shards.txt", "/raw")
    assert len(shards) == 54 and list(shards)[0] == "synth_010" and list(shards)[-1] == "synth_491"


@pytest.mark.parametrize("text, message", [
    ("synth_010.parquet\nsynth_010.parquet\n", "listed twice"),
    ("synth_010.csv\n", "not a .parquet"),
    ("# nothing\n", "names no shard"),
])
def test_bad_shard_list_is_a_clear_error(tmp_path, text, message):
    listing = tmp_path / "list.txt"
    listing.write_text(text)
    with pytest.raises(ShardListError, match=message):
        read_shard_list(listing, tmp_path)


def test_missing_or_corrupt_vocabulary_is_one_clear_error(tmp_path, vocab_dir, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE", raising=False)
    with pytest.raises(TokenizerError, match="TIKTOKEN_ENCODINGS_BASE"):
        resolve_vocab_dir(None)
    with pytest.raises(TokenizerError, match="does not exist"):
        resolve_vocab_dir(tmp_path)
    corrupt = tmp_path / "o200k_base.tiktoken"
    shutil.copy(vocab_dir / "o200k_base.tiktoken", corrupt)
    with open(corrupt, "ab") as handle:
        handle.write(b"x")
    with pytest.raises(TokenizerError, match="sha256"):
        resolve_vocab_dir(tmp_path)


def test_tokenizer_loads_from_a_plain_folder(tmp_path, vocab_dir):
    shutil.copy(vocab_dir / "o200k_base.tiktoken", tmp_path / "o200k_base.tiktoken")
    tok = load_tokenizer(str(tmp_path))
    assert tok.tiktoken.encode_ordinary("hello world") == tok.harmony.encode("hello world", allowed_special=set())


def test_part_writer_cuts_exact_files_whatever_the_batches(tmp_path):
    schema = pa.schema([("x", pa.int32())])
    outputs = []
    for chunks in ([7, 7, 7], [1] * 21, [21]):
        folder = tmp_path / f"w{len(chunks)}"
        writer = PartWriter(folder, schema, rows_per_file=5)
        start = 0
        for size in chunks:
            writer.write(pa.table({"x": pa.array(range(start, start + size), pa.int32())}))
            start += size
        files = writer.close()
        assert [f["rows"] for f in files] == [5, 5, 5, 5, 1]
        assert pq.read_table(folder / "part-00004.parquet").column("x").to_pylist() == [20]
        outputs.append([(folder / f["path"]).read_bytes() for f in files])
    assert outputs[0] == outputs[1] == outputs[2]


def test_assembled_aside_keeps_the_old_dataset_on_failure(tmp_path):
    final = tmp_path / "ds"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with assembled_aside(final) as scratch:
            (scratch / "new.txt").write_text("half")
            raise RuntimeError("crash")
    assert (final / "old.txt").exists() and not list(tmp_path.glob(".ds.*"))
    with assembled_aside(final) as scratch:
        (scratch / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]


def test_download_verifies_the_vocabulary_and_moves_it_into_place(tmp_path, vocab_dir):
    from distill_data.tokenizer import download_vocabulary

    source = (vocab_dir / "o200k_base.tiktoken").resolve()
    dest = download_vocabulary(tmp_path / "tok", url=source.as_uri())
    assert dest.read_bytes() == source.read_bytes()
    resolve_vocab_dir(tmp_path / "tok")
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"not the vocabulary")
    with pytest.raises(TokenizerError, match="sha256"):
        download_vocabulary(tmp_path / "tok2", url=bad.as_uri())
    assert not (tmp_path / "tok2" / "o200k_base.tiktoken").exists()
    with pytest.raises(TokenizerError, match="TIKTOKEN_ENCODINGS_BASE"):
        download_vocabulary(tmp_path / "tok3", url=(tmp_path / "missing").as_uri())
