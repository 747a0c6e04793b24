"""The teacher stage on CPU with a tiny random model: capture, resume, validator, packing (issue 16)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch", reason="the teacher tests need torch (pip install torch==2.13.0 first)")
transformers = pytest.importorskip("transformers")

from distill_data.handoff.check import check_form
from distill_data.handoff.disk import build_disk
from distill_data.handoff.packed import build_packed
from distill_data.handoff.packing import IGNORE_INDEX, PAD_TOKEN_ID
from distill_data.handoff.source import PublishedDataset
from distill_data.teacher import format as fmt
from distill_data.teacher.backends import TransformersBackend, model_vocab_size
from distill_data.teacher.capture import capture_part
from distill_data.teacher.check import check_teacher
from distill_data.teacher.plan import make_plan
from distill_data.teacher.publish import publish

from teacher_helpers import VOCAB, manifest, small_dataset, tiny_teacher

K = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return small_dataset(tmp_path_factory.mktemp("data") / "small_mix", {"train": 10, "validation": 3}, 6)


@pytest.fixture(scope="module")
def backend(model_dir):
    return TransformersBackend(str(model_dir), K, dtype="float32", device="cpu")


def capture_all(dataset, out, backend, config, batch_tokens=1, chunk_rows=4, max_rows=None):
    summaries = []
    for split in ("train", "validation"):
        for entry in PublishedDataset(dataset).files[split]:
            summary = out.parent / "summaries" / split / f"{entry.path.name}.json"
            capture_part(dataset, split, entry.path.name, out / split / entry.path.name,
                         out / ".chunks" / split / entry.path.name, backend, config, settings={"k": config.k},
                         batch_tokens=batch_tokens, chunk_rows=chunk_rows, max_rows=max_rows, summary=summary)
            summaries.append(summary)
    publish(dataset, out, summaries, config, {"name": "tiny"}, {"max_rows": max_rows})
    return out


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, dataset, backend):
    config = fmt.default_config(VOCAB, K)
    return capture_all(dataset, tmp_path_factory.mktemp("t") / "teacher", backend, config)


def reference_top_k(model_dir, ids):
    """The model's own forward pass on one row: torch.topk of log_softmax, positions 0..L-2."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        top = torch.topk(torch.log_softmax(logits, dim=-1), K, dim=-1)
    return top.indices.numpy(), top.values.numpy()


def test_stored_top_k_equals_torch_topk_for_every_position_of_every_row(teacher, dataset, model_dir):
    config = fmt.read_config(teacher)
    assert config.k == K and config.d == model_vocab_size(model_dir) == VOCAB
    rows = positions = 0
    for split in ("train", "validation"):
        for entry, table in PublishedDataset(teacher).tables(split):
            for row in table.to_pylist():
                got_ids, got = fmt.decode(np.array(row["compressed_logprobs"], dtype=np.uint8),
                                          np.array(row["bytepacked_indices"], dtype=np.uint8), config)
                want_ids, want = reference_top_k(model_dir, row["input_ids"])
                assert got.shape == (len(row["input_ids"]) - 1, K)
                assert (got_ids == want_ids).all(), row["id"]
                assert (np.abs(got - want) <= config.max_abs_error(want)).all(), row["id"]
                rows += 1
                positions += len(got)
    assert rows == 13 and positions == sum(manifest(teacher)["positions"].values())


def test_rows_keep_the_datasets_columns_and_the_validator_passes(teacher, dataset):
    source = pq.read_table(dataset / "train" / "part-00000.parquet")
    ours = pq.read_table(teacher / "train" / "part-00000.parquet")
    assert ours.column_names == source.column_names + ["compressed_logprobs", "bytepacked_indices"]
    assert ours.drop(["compressed_logprobs", "bytepacked_indices"]).equals(source)
    report = check_teacher(teacher)
    assert report["ok"], report["checks"]
    assert report["rows"] == {"train": 10, "validation": 3}
    m = manifest(teacher)
    assert m["top_k"] == K and m["bytes_per_position"] == K * 4 + (K * 18 + 7) // 8
    assert m["source"]["manifest_sha256"] == PublishedDataset(dataset).manifest_sha256


def test_batched_capture_matches_one_row_at_a_time(tmp_path, dataset, backend, teacher):
    """Several rows per forward pass (right padding) give the same top-k, up to float noise."""
    config = fmt.default_config(VOCAB, K)
    part = "part-00000.parquet"
    capture_part(dataset, "train", part, tmp_path / part, tmp_path / "work", backend, config, settings={},
                 batch_tokens=4096, chunk_rows=6)
    one = pq.read_table(teacher / "train" / part).to_pylist()
    many = pq.read_table(tmp_path / part).to_pylist()
    for a, b in zip(one, many):
        ia, va = fmt.decode(np.array(a["compressed_logprobs"], np.uint8), np.array(a["bytepacked_indices"], np.uint8), config)
        ib, vb = fmt.decode(np.array(b["compressed_logprobs"], np.uint8), np.array(b["bytepacked_indices"], np.uint8), config)
        assert np.allclose(va, vb, atol=1e-4)
        clear = np.abs(np.diff(va, axis=1)).min(axis=1) > 1e-3   # positions without near-ties
        assert (ia[clear] == ib[clear]).all()


def _capture_command(dataset, out, model_dir, summary):
    return [sys.executable, "-m", "distill_data.teacher", "capture", "--input-dir", str(dataset), "--split", "train",
            "--part", "part-00000.parquet", "--output-dir", str(out), "--model", str(model_dir), "--dtype", "float32",
            "--top-k", str(K), "--chunk-rows", "1", "--batch-tokens", "1", "--device", "cpu", "--summary", str(summary)]


def test_a_killed_capture_resumes_to_byte_identical_output(tmp_path, dataset, model_dir):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    whole = tmp_path / "whole"
    subprocess.run(_capture_command(dataset, whole, model_dir, tmp_path / "whole.json"), check=True, env=env,
                   capture_output=True)
    killed = tmp_path / "killed"
    chunks = killed / ".chunks" / "train" / "part-00000.parquet"
    job = subprocess.Popen(_capture_command(dataset, killed, model_dir, tmp_path / "killed.json"), env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(chunks.glob("chunk-*.parquet"))) < 2:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done_before = len(list(chunks.glob("chunk-*.parquet")))
    assert 2 <= done_before < 6, "the job was not killed mid-part"
    assert not (killed / "train" / "part-00000.parquet").exists()
    subprocess.run(_capture_command(dataset, killed, model_dir, tmp_path / "killed.json"), check=True, env=env,
                   capture_output=True)
    assert (killed / "train" / "part-00000.parquet").read_bytes() == (whole / "train" / "part-00000.parquet").read_bytes()
    summary = json.loads((tmp_path / "killed.json").read_text())
    assert summary["resumed_chunks"] >= done_before - 1 and summary["chunks"] == 6
    assert not chunks.exists()


def test_cli_errors_name_the_file_and_the_vocab_size_setting_is_used(tmp_path, dataset, model_dir):
    base = _capture_command(dataset, tmp_path / "out", model_dir, tmp_path / "s.json") + ["--max-rows", "1"]
    missing = [a if a != str(model_dir) else str(tmp_path / "nowhere") for a in base]
    done = subprocess.run(missing, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'nowhere' / 'config.json'}: not found" in done.stderr
    # teacher.vocab_size (the format's d) reaches the capture: 300,000 needs 19 index bits, not 18
    subprocess.run(base + ["--vocab-size", "300000"], check=True, capture_output=True)
    row = pq.read_table(tmp_path / "out" / "train" / "part-00000.parquet").to_pylist()[0]
    assert {len(e) for e in row["bytepacked_indices"]} == {(K * 19 + 7) // 8}


def test_chunks_from_other_settings_are_not_reused(tmp_path, dataset, backend):
    part = "part-00000.parquet"
    work = tmp_path / "work"
    first = fmt.default_config(VOCAB, K)
    capture_part(dataset, "train", part, tmp_path / "a.parquet", work, backend, first, settings={"k": K},
                 batch_tokens=1, chunk_rows=2, max_rows=4)
    work.mkdir()   # chunks left from a k=4 run must not be taken for a k=8 run
    (work / "settings.json").write_text(json.dumps({"key": "other"}))
    pq.write_table(pq.read_table(tmp_path / "a.parquet").slice(0, 2), work / "chunk-000000.parquet")
    result = capture_part(dataset, "train", part, tmp_path / "b.parquet", work, backend, first, settings={"k": K},
                          batch_tokens=1, chunk_rows=2, max_rows=4)
    assert result["resumed_chunks"] == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_trial_run_is_a_warning_and_the_validator_accepts_the_prefix(tmp_path, dataset, backend):
    config = fmt.default_config(VOCAB, K, "bfloat16")
    out = capture_all(dataset, tmp_path / "teacher", backend, config, batch_tokens=2048, max_rows=2)
    m = manifest(out)
    assert m["rows"] == {"train": 4, "validation": 2}
    assert any("trial" in w for w in m["warnings"])
    assert check_teacher(out)["ok"]


def test_an_empty_split_is_a_warning(tmp_path, backend):
    data = small_dataset(tmp_path / "only_train", {"train": 2, "validation": 0}, 6)
    out = capture_all(data, tmp_path / "teacher", backend, fmt.default_config(VOCAB, K), batch_tokens=2048)
    assert manifest(out)["warnings"] == ["validation: no rows (the dataset has 0)"]
    assert check_teacher(out)["ok"]


def _rewrite(teacher: Path, out: Path, change) -> Path:
    """A copy of the teacher dataset with one file's rows changed (and its manifest entry updated)."""
    import shutil
    from distill_data.writer import write_json, write_parquet
    shutil.copytree(teacher, out, ignore=shutil.ignore_patterns(".chunks"))
    m = manifest(out)
    entry = m["files"]["train"][0]
    table = change(pq.read_table(out / entry["path"]))
    entry.update(write_parquet(table, out / entry["path"]))
    write_json(out / "manifest.json", m)
    return out


def test_the_validator_names_misaligned_and_impossible_logprobs(tmp_path, teacher):
    import pyarrow as pa
    config = fmt.read_config(teacher)

    def drop_last_entry(table):
        rows = table.column("compressed_logprobs").to_pylist()
        rows[1] = rows[1][:-1]
        return table.set_column(table.column_names.index("compressed_logprobs"), "compressed_logprobs",
                                pa.array(rows, type=table.schema.field("compressed_logprobs").type))

    report = check_teacher(_rewrite(teacher, tmp_path / "short", drop_last_entry))
    assert not report["ok"] and "row 1 (train-1)" in report["checks"]["alignment"]["failures"][0]

    def impossible(table):
        rows = table.column("compressed_logprobs").to_pylist()
        n = len(rows[0])
        values = np.tile(np.array([0.5] + [-1.0] * (K - 1), dtype=np.float32), (n, 1))   # p > 1, unsorted later
        values[:, 2] = -0.1
        rows[0] = fmt.compress_logprobs(values, config).tolist()
        return table.set_column(table.column_names.index("compressed_logprobs"), "compressed_logprobs",
                                pa.array(rows, type=table.schema.field("compressed_logprobs").type))

    report = check_teacher(_rewrite(teacher, tmp_path / "bad", impossible))
    failed = {name for name, entry in report["checks"].items() if not entry["ok"]}
    assert failed == {"at_most_zero", "sorted", "mass_at_most_one"}
    assert "row 0 (train-0), position 1" in report["checks"]["at_most_zero"]["failures"][0]


def test_plan_lists_the_parts_and_estimates_the_size(dataset, teacher):
    config = fmt.default_config(VOCAB, K)
    plan = make_plan(dataset, config, expected_tokens_per_second=1000.0, max_rows=None)
    assert plan["parts"] == {"train": ["part-00000.parquet", "part-00001.parquet"], "validation": ["part-00000.parquet"]}
    m = manifest(teacher)
    est = plan["estimate"]
    assert est["positions"] == sum(m["positions"].values())
    assert est["logit_bytes"] == est["positions"] * config.bytes_per_position
    assert est["gpu_hours"] == round(manifest(dataset)["total_tokens"] / 1000 / 3600, 2)
    # the files are within a quarter of the estimate (parquet's per-file overhead weighs on 13 rows)
    assert 0.75 * est["total_bytes"] <= m["bytes"] <= 1.25 * est["total_bytes"]


def test_packed_logits_line_up_with_the_packed_tokens(tmp_path, teacher):
    packed = tmp_path / "packed"
    m = build_packed(teacher, packed, seq_len=128, window_tokens=256)
    assert m["teacher"]["top_k"] == K and (packed / fmt.CONFIG_NAME).exists()
    assert check_form(packed)["ok"]
    config = fmt.read_config(packed)
    examples = {row["id"]: row for split in ("train", "validation")
                for _, t in PublishedDataset(teacher).tables(split) for row in t.to_pylist()}
    seen = 0
    for split in ("train", "validation"):
        for _, table in PublishedDataset(packed).tables(split):
            for row in table.to_pylist():
                lp = np.array(row["compressed_logprobs"], dtype=np.uint8)
                ix = np.array(row["bytepacked_indices"], dtype=np.uint8)
                assert lp.shape == (128, config.logprob_bytes) and ix.shape == (128, config.index_bytes)
                at = 0
                for example_id, size in zip(row["example_ids"], row["example_lengths"]):
                    ex = examples[example_id]
                    assert size == len(ex["input_ids"]) - 1
                    assert row["input_ids"][at:at + size] == ex["input_ids"][:-1]
                    assert row["labels"][at:at + size] == ex["labels"][:-1]
                    assert lp[at:at + size].tolist() == ex["compressed_logprobs"]
                    assert ix[at:at + size].tolist() == ex["bytepacked_indices"]
                    at += size
                    seen += 1
                assert not lp[at:].any() and set(row["input_ids"][at:]) <= {PAD_TOKEN_ID}
                assert set(row["labels"][at:]) <= {IGNORE_INDEX}
    assert seen == len(examples)
    disk = build_disk(packed, tmp_path / "packed_disk")
    assert disk["teacher"]["top_k"] == K and (tmp_path / "packed_disk" / fmt.CONFIG_NAME).exists()
    assert check_form(tmp_path / "packed_disk")["ok"]
