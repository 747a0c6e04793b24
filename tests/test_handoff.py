"""Issue 15, "train on it as it is": the handoff forms built by `snakemake handoff` from a small
mix, read by the real consumers (datasets, transformers, TRL, megatron-core), never mocked.

One build per module: generated sources -> the mix -> every handoff form, checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from workflow_helpers import copy_project, dataset_bytes, small_mix_config, snakemake, write_config

datasets = pytest.importorskip("datasets", reason="the handoff tests need the test extra (datasets)")
torch = pytest.importorskip("torch", reason="the handoff tests need torch (pip install torch==2.13.0 first)")

MIX = "phase1_mix_8k_665m"
SEQ_LEN = 2048


@pytest.fixture(scope="module")
def built(tmp_path_factory, vocab_dir):
    root = tmp_path_factory.mktemp("handoff")
    project = copy_project(root / "project")
    config = small_mix_config(root, seed=31)
    config["common"]["train_frac"] = 0.9   # validation packs into several rows
    # a short row so that the model tests stay small; rows longer than it are counted out
    config["handoff"] = {"max_seq_len": SEQ_LEN, "window_tokens": 20_000, "rows_per_file": 16}
    cfg = write_config(root / "config.yaml", config)
    snakemake(project, "handoff", "-j", "2", "--configfile", str(cfg))
    out = root / "out"
    return {"root": root, "project": project, "cfg": cfg, "mix": out / MIX, "handoff": out / "handoff" / MIX,
            "checks": out / "_work" / "validate" / "handoff" / MIX}


def mix_rows(mix: Path, split: str) -> dict[str, list]:
    manifest = json.loads((mix / "manifest.json").read_text())
    tables = [pq.read_table(mix / f["path"]) for f in manifest["files"][split]]
    out = {name: [] for name in ("id", "input_ids", "labels", "spans")}
    for table in tables:
        for name in out:
            out[name] += table.column(name).to_pylist()
    return out


def form_manifest(built, folder: str) -> dict:
    return json.loads((built["handoff"] / folder / "manifest.json").read_text())


# --- 1. disk_path: load_from_disk gives the mix's rows --------------------------------------------

def test_load_from_disk_gives_the_mix_rows_and_ids(built):
    loaded = datasets.load_from_disk(str(built["handoff"] / "disk"))
    assert sorted(loaded.keys()) == ["train", "validation"]
    for split in ("train", "validation"):
        mine, theirs = loaded[split], mix_rows(built["mix"], split)
        assert mine["id"] == theirs["id"]
        assert mine["input_ids"] == theirs["input_ids"] and mine["labels"] == theirs["labels"]
        assert mine["completion_mask"] == [[int(x != -100) for x in row] for row in theirs["labels"]]
        assert {"source", "spans", "attention_mask"} <= set(mine.column_names)
    # DistillKit's LocalDataset without a split stops on a DatasetDict: docs/training.md sets it
    assert isinstance(loaded, datasets.DatasetDict)


def test_every_form_is_checked_and_in_the_report(built):
    for folder in ("disk", "packed", "packed_disk", "megatron"):
        report = json.loads((built["checks"] / f"{folder}.json").read_text())
        assert report["ok"], report["checks"]
    page = (built["root"] / "out" / "_work" / "report" / "handoff" / f"{MIX}.html").read_text()
    assert "packed_disk" in page and "megatron" in page and "FAILED" not in page


# --- 2. packed: whole examples, labels kept, segments, efficiency ---------------------------------

def test_packed_rows_hold_every_example_once_whole(built):
    manifest = form_manifest(built, "packed")
    for split in ("train", "validation"):
        rows = mix_rows(built["mix"], split)
        by_id = dict(zip(rows["id"], zip(rows["input_ids"], rows["labels"])))
        seen = []
        for entry in manifest["files"][split]:
            table = pq.read_table(built["handoff"] / "packed" / entry["path"]).to_pylist()
            for row in table:
                assert len(row["input_ids"]) == SEQ_LEN
                at = 0
                for k, (example_id, n) in enumerate(zip(row["example_ids"], row["example_lengths"]), 1):
                    ids, labels = by_id[example_id]
                    assert row["input_ids"][at:at + n] == ids and row["labels"][at:at + n] == labels
                    assert row["attention_mask"][at:at + n] == [k] * n
                    assert row["position_ids"][at:at + n] == list(range(n))
                    at += n
                    seen.append(example_id)
                assert row["labels"][at:] == [-100] * (SEQ_LEN - at) and set(row["attention_mask"][at:]) <= {0}
        too_long = [i for i, ids in zip(rows["id"], rows["input_ids"]) if len(ids) > SEQ_LEN]
        assert sorted(seen) == sorted(set(rows["id"]) - set(too_long))
        assert manifest["packing"][split]["dropped_too_long"] == len(too_long)
    # windows of 20k tokens (several here) leave their last rows part-filled; the real 16M-token
    # windows fill >= 0.99 of the slots on the demo mix (docs/training.md)
    assert manifest["packing"]["train"]["tokens"] > 3 * manifest["params"]["window_tokens"]
    assert manifest["packing"]["train"]["efficiency"] >= 0.9, manifest["packing"]


def test_distillkit_prepacked_keeps_every_row_and_stacks_every_column(built):
    loaded = datasets.load_from_disk(str(built["handoff"] / "packed_disk"))
    train = loaded["train"]
    # DistillKit's prepacked loader keeps the rows as long as row 0; its collator stacks each column
    assert all(len(ids) == len(train[0]["input_ids"]) for ids in train["input_ids"])
    batch = [train[i] for i in range(min(3, len(train)))]
    stacked = {key: torch.tensor([example[key] for example in batch]) for key in batch[0]}
    assert set(stacked) == {"input_ids", "labels", "attention_mask", "position_ids", "completion_mask"}
    assert all(t.shape == (len(batch), SEQ_LEN) for t in stacked.values())


# --- a tiny random causal LM on CPU ---------------------------------------------------------------

def tiny_model(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ_LEN)
    return LlamaForCausalLM(config).eval()


def compact(*arrays):
    """The token ids renumbered 0..k-1 (labels' -100 kept): the model's vocabulary stays tiny
    (201,088 logits per position would need GBs on CPU) and attention and loss are unchanged."""
    values = np.unique(np.concatenate([np.asarray(a).ravel() for a in arrays]))
    values = values[values >= 0]
    out = []
    for a in arrays:
        a = np.asarray(a)
        mapped = np.searchsorted(values, np.where(a >= 0, a, values[0]))
        out.append(torch.tensor(np.where(a >= 0, mapped, a)))
    return len(values), out


def test_training_step_loss_counts_exactly_the_labelled_tokens(built):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    loaded = datasets.load_from_disk(str(built["handoff"] / "disk"))["train"]
    examples = [loaded[i] for i in range(4)]
    batch = DataCollatorForLanguageModeling(pad_token_id=199999)(examples)   # TRL's own collator
    vocab, (input_ids, labels) = compact(batch["input_ids"], batch["labels"])
    model = tiny_model(vocab)
    model.train()
    out = model(input_ids=input_ids, attention_mask=batch["attention_mask"], labels=labels)
    out.loss.backward()
    shifted = labels[:, 1:]
    counted = shifted != -100
    expected_count = sum(sum(1 for x in e["labels"][1:] if x != -100) for e in examples)
    assert int(counted.sum()) == expected_count
    per_token = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, vocab).float(),
                                                  shifted.reshape(-1), ignore_index=-100, reduction="sum")
    assert torch.allclose(out.loss * expected_count, per_token, rtol=1e-5)


def test_packed_row_logits_equal_each_example_alone(built):
    from distill_data.handoff.segments import segment_attention_mask
    packed = datasets.load_from_disk(str(built["handoff"] / "packed_disk"))["train"]
    row = max((packed[i] for i in range(len(packed))), key=lambda r: max(r["attention_mask"]))
    vocab, (ids, labels) = compact([row["input_ids"]], [row["labels"]])
    model = tiny_model(vocab)
    segments = torch.tensor([row["attention_mask"]])
    with torch.no_grad():
        whole = model(input_ids=ids, attention_mask=segment_attention_mask(segments),
                      position_ids=torch.tensor([row["position_ids"]])).logits[0]
        assert int(segments.max()) >= 2
        for k in range(1, int(segments.max()) + 1):
            where = (segments[0] == k).nonzero().flatten()
            alone = model(input_ids=ids[:, where]).logits[0]
            assert torch.allclose(whole[where], alone, atol=1e-5), f"example {k} attends across the boundary"


# --- TRL: its packing drops `labels`; the completion_mask keeps our loss mask ---------------------

def test_trl_packing_keeps_our_mask_through_completion_mask(built):
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    train = datasets.load_from_disk(str(built["handoff"] / "disk"))["train"].select(range(12))
    # what SFTTrainer does with packing=True: keep input_ids (+ completion_mask), pack by BFD
    kept = train.select_columns(["input_ids", "completion_mask"])
    packed = pack_dataset(kept, seq_length=SEQ_LEN, strategy="bfd")
    batch = DataCollatorForLanguageModeling(pad_token_id=199999, padding_free=True)(list(packed))
    by_ids = {tuple(r["input_ids"]): r["labels"] for r in train}
    trained = int((batch["labels"] != -100).sum())
    # the collator also masks each example's first token; none of ours is labelled there
    assert trained == sum(sum(1 for x in labels if x != -100) for labels in by_ids.values())
    # without completion_mask the same packing trains on prompts too (the reported problem)
    bare = pack_dataset(train.select_columns(["input_ids"]), seq_length=SEQ_LEN, strategy="bfd")
    unmasked = DataCollatorForLanguageModeling(pad_token_id=199999, padding_free=True)(list(bare))
    prompts_too = sum(len(ids) - 1 for ids in by_ids)   # every token but each example's first
    assert int((unmasked["labels"] != -100).sum()) == prompts_too > trained


def test_trl_padding_free_collator_reads_the_packed_form(built):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    manifest = form_manifest(built, "packed")
    table = pq.read_table(built["handoff"] / "packed" / manifest["files"]["train"][0]["path"]).to_pylist()[:2]
    batch = DataCollatorForLanguageModeling(pad_token_id=199999, padding_free=True)(table)
    position = torch.tensor([p for row in table for p in row["position_ids"]])
    assert torch.equal(batch["position_ids"][0], position)
    ours = torch.tensor([x for row in table for x in row["labels"]])
    assert torch.equal(batch["labels"][0], ours)


# --- 3. megatron: megatron-core reads back every example ------------------------------------------

def test_megatron_reads_back_tokens_eod_loss_mask_and_spans(built):
    from distill_data.handoff.megatron import indexed_dataset_classes
    IndexedDataset = indexed_dataset_classes()[1]
    folder = built["handoff"] / "megatron"
    for split in ("train", "validation"):
        rows = mix_rows(built["mix"], split)
        sources = []
        manifest = json.loads((built["mix"] / "manifest.json").read_text())
        for f in manifest["files"][split]:
            sources += pq.read_table(built["mix"] / f["path"], columns=["source"]).column("source").to_pylist()
        cursor, readers = {}, {}   # a reader must outlive the arrays it returns (they map its file)
        for i, source in enumerate(sources):
            name = source["dataset"]
            doc = cursor.get(name, 0)
            cursor[name] = doc + 1
            if name not in readers:
                readers[name] = {s: IndexedDataset(str(folder / split / f"{name}_{s}"))
                                 for s in ("tokens", "loss_mask", "span_ids")}
            read = {s: np.array(reader[doc]) for s, reader in readers[name].items()}
            ids, labels, spans = rows["input_ids"][i], rows["labels"][i], rows["spans"][i]
            assert read["tokens"].tolist() == ids + [199999]
            assert read["loss_mask"].tolist() == [int(x != -100) for x in labels] + [0]
            start, analysis = spans["assistant_token_start"], spans["analysis_token_count"]
            want = [0] * start + [1] * analysis + [2] * (len(ids) - start - analysis) + [0]
            assert read["span_ids"].tolist() == want
        assert {name: len(r["tokens"]) for name, r in readers.items()} == cursor
        data_path = (folder / f"data_path_{split}.txt").read_text().split()
        weights = [float(w) for w in data_path[0::2]]
        assert abs(sum(weights) - 1) < 1e-5 and {p.split("/")[1] for p in data_path[1::2]} == {
            f"{name}_tokens" for name in cursor}


# --- rebuilds and damage ----------------------------------------------------------------------------

def written_files(folder: Path) -> dict[str, bytes]:
    """The form's own files: not build_info.json (its times), not the `cache-*.arrow` files that
    `datasets` writes beside the shards when a test maps them."""
    return {name: data for name, data in dataset_bytes(folder).items()
            if not Path(name).name.startswith("cache-") and name != "build_info.json"}


def test_rebuilt_handoffs_are_byte_identical(built):
    before = {folder: written_files(built["handoff"] / folder) for folder in ("disk", "packed", "megatron")}
    snakemake(built["project"], "handoff", "-j", "2", "--configfile", str(built["cfg"]),
              "--forcerun", "handoff_disk", "handoff_packed", "handoff_megatron")
    for folder, files in before.items():
        after = written_files(built["handoff"] / folder)
        assert after.keys() == files.keys() and all(after[k] == files[k] for k in files), folder


def test_a_damaged_source_part_is_named_not_packed(built, tmp_path):
    from distill_data.handoff.packed import build_packed
    from distill_data.handoff.source import HandoffError
    copy = tmp_path / MIX
    shutil.copytree(built["mix"], copy)
    part = sorted((copy / "train").glob("part-*.parquet"))[1]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(HandoffError, match=rf"{part.name}: .* sha256 differs from the manifest"):
        build_packed(copy, tmp_path / "packed", seq_len=SEQ_LEN)
    assert not (tmp_path / "packed").exists()   # nothing half-written


def test_an_empty_split_is_a_warning_in_the_manifest_and_the_log(built, tmp_path, caplog):
    from distill_data.handoff.disk import build_disk
    copy = tmp_path / MIX
    shutil.copytree(built["mix"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["validation"] = []
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="distill_data"):
        written = build_disk(copy, tmp_path / "disk")
    assert written["warnings"] == ["validation: no rows (the source has 0)"]
    assert "validation: no rows" in caplog.text
    assert len(datasets.load_from_disk(str(tmp_path / "disk"))["validation"]) == 0


# --- 4. the tokenizer check ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_tokenizers(tmp_path_factory, tokenizer, vocab_dir):
    pytest.importorskip("transformers")
    from hf_tokenizers import make_hf_tokenizer
    root = tmp_path_factory.mktemp("hf_tokenizers")
    return {kind: make_hf_tokenizer(tokenizer.tiktoken, Path(vocab_dir) / "o200k_base.tiktoken", root / kind, kind)
            for kind in ("right", "two_names", "other_pattern")}


def tokenizer_check(built, folder: Path):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "distill_data.handoff.tokenizer_check", "--tokenizer", str(folder),
                           "--dataset", str(built["mix"]), "--rows", "60"], capture_output=True, text=True, timeout=300)


def test_tokenizer_check_passes_the_right_tokenizer(built, hf_tokenizers):
    done = tokenizer_check(built, hf_tokenizers["right"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": OK against phase1_mix_8k_665m (1090 special ids, 0 differ; 60 rows" in done.stdout


def test_tokenizer_check_names_the_mismatch_of_a_wrong_tokenizer(built, hf_tokenizers):
    done = tokenizer_check(built, hf_tokenizers["two_names"])
    assert done.returncode == 1
    shown = [line for line in done.stdout.splitlines() if line.startswith("  special token ")]
    assert "MISMATCH" in done.stdout and shown and all(": ours " in line for line in shown), done.stdout
    done = tokenizer_check(built, hf_tokenizers["other_pattern"])
    assert done.returncode == 1
    first = [line for line in done.stdout.splitlines() if line.startswith("  round trip:")][0]
    assert ", token " in first and ": ours " in first and "the tokenizer's " in first
    done = tokenizer_check(built, built["root"] / "no_such_tokenizer")
    assert done.returncode == 2 and "no_such_tokenizer: not a Hugging Face tokenizer folder" in done.stderr
