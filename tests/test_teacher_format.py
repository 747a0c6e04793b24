"""Round trips of DistillKit's compressed top-k format (src/distill_data/teacher/format.py)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from distill_data.teacher import format as fmt

VOCAB = 201088  # o200k_harmony's padded vocabulary: 18 index bits
MIRROR = Path("/work/.mirror/arcee-ai+DistillKit/repo")


def top_k(rng, positions, k, vocab=VOCAB):
    logits = rng.normal(0, 4, size=(positions, 4096)).astype(np.float32)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    order = np.argsort(-logp, axis=-1)[:, :k]
    values = np.take_along_axis(logp, order, -1).astype(np.float32)
    ids = rng.choice(vocab, size=4096, replace=False)[order]  # spread the ids over the whole vocabulary
    return ids.astype(np.int64), values


@pytest.mark.parametrize("k", [1, 8, 32, 64])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("delta", [False, True])
def test_exact_round_trip_within_stated_error(k, dtype, delta):
    rng = np.random.default_rng(k)
    ids, values = top_k(rng, 50, k)
    cfg = fmt.CompressionConfig(d=VOCAB, k=k, exact_k=k, exact_dtype=dtype, delta_encoding=delta)
    lp, ix = fmt.encode(ids, values, cfg)
    assert lp.shape == (50, cfg.logprob_bytes) and ix.shape == (50, cfg.index_bytes)
    got_ids, got = fmt.decode(lp, ix, cfg)
    assert (got_ids == ids).all()
    assert (np.abs(got - values) <= cfg.max_abs_error(values)).all()


def test_sizes_follow_the_config():
    cfg = fmt.default_config(VOCAB, 32)
    assert cfg.index_bits == 18 and cfg.index_bytes == 72 and cfg.logprob_bytes == 128
    assert fmt.default_config(VOCAB, 32, "bfloat16").bytes_per_position == 64 + 72


def test_unsorted_input_is_sorted_and_ties_keep_order():
    cfg = fmt.default_config(VOCAB, 4)
    ids = np.array([[5, 9, 7, 200000]])
    vals = np.array([[-3.0, -0.5, -3.0, -1.0]], dtype=np.float32)
    got_ids, got = fmt.decode(*fmt.encode(ids, vals, cfg), cfg)
    assert got_ids.tolist() == [[9, 200000, 5, 7]] and got.tolist() == [[-0.5, -1.0, -3.0, -3.0]]


def test_lossy_config_round_trip_is_close():
    # DistillKit's "budget pick": one exact value, the rest a 3-term curve.
    rng = np.random.default_rng(0)
    ids, values = top_k(rng, 40, 50)
    cfg = fmt.CompressionConfig(d=VOCAB, k=50, exact_k=1, exact_dtype="bfloat16", polynomial_terms=[0, 1, "sqrt"],
                                residual_bins=[{"scale_dtype": "float16", "element_bits": 4, "num_elements": 16}],
                                delta_encoding=False)
    got_ids, got = fmt.decode(*fmt.encode(ids, values, cfg), cfg)
    assert (got_ids == ids).all()
    assert np.abs(got - values).max() < 0.5
    with pytest.raises(fmt.FormatError):
        cfg.max_abs_error(values)


def test_bitpack_is_msb_first():
    assert fmt.pack_bits(np.array([[1, 2]]), 3).tolist() == [[0b00101000]]
    assert fmt.unpack_bits(np.array([[0b00101000]], dtype=np.uint8), 3, 2).tolist() == [[1, 2]]


def test_config_yaml_round_trip(tmp_path):
    cfg = fmt.CompressionConfig(d=VOCAB, k=8, exact_k=2, polynomial_terms=[0, 1, "sqrt"])
    fmt.write_config(tmp_path, cfg)
    assert fmt.read_config(tmp_path) == cfg
    assert set(yaml.safe_load((tmp_path / fmt.CONFIG_NAME).read_text())) == set(cfg.to_dict())


def test_bad_configs_fail_with_one_line(tmp_path):
    with pytest.raises(fmt.FormatError, match="exact_k < k"):
        fmt.CompressionConfig(d=VOCAB, k=8, exact_k=2)
    (tmp_path / fmt.CONFIG_NAME).write_text("d: 10\nk: 2\nexact_k: 2\nexact_dtype: float8\n")
    with pytest.raises(fmt.FormatError, match="compression_config.yaml.*exact_dtype"):
        fmt.read_config(tmp_path)
    with pytest.raises(fmt.FormatError, match="out of range"):
        fmt.encode(np.array([[VOCAB]]), np.array([[-1.0]]), fmt.default_config(VOCAB, 1))


def _distillkit(tmp_path):
    """DistillKit's own compression package, taken from the mirror, to check we read and write its bytes."""
    pytest.importorskip("pydantic")
    torch = pytest.importorskip("torch")
    if not MIRROR.exists():
        pytest.skip(f"no DistillKit mirror at {MIRROR}")
    pkg = tmp_path / "dk" / "distillkit"
    (pkg / "compression").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "missing_probability.py").write_text("from enum import Enum\nclass MissingProbabilityHandling(Enum):\n    ZERO = 'zero'\n")
    for name in ("__init__", "bitpack", "config", "compressor", "legacy", "monotonic_logprobs", "densify"):
        src = subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:distillkit/compression/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        (pkg / "compression" / f"{name}.py").write_text(src)
    sys.path.insert(0, str(tmp_path / "dk"))
    try:
        from distillkit.compression import DistributionQuantizationConfig, LogprobCompressor
    finally:
        sys.path.pop(0)
    return torch, DistributionQuantizationConfig, LogprobCompressor


@pytest.mark.parametrize("cfg_kwargs", [
    dict(k=32, exact_k=32, exact_dtype="float32", delta_encoding=False),
    dict(k=16, exact_k=16, exact_dtype="bfloat16", delta_encoding=True),
    dict(k=50, exact_k=1, exact_dtype="bfloat16", polynomial_terms=[0, 1, "sqrt"], delta_encoding=False,
         residual_bins=[{"scale_dtype": "float16", "element_bits": 4, "num_elements": 20},
                        {"scale_dtype": "float32", "element_bits": 1, "num_elements": 9}]),
])
def test_matches_distillkit_both_ways(tmp_path, cfg_kwargs):
    torch, DKConfig, DKCompressor = _distillkit(tmp_path)
    cfg = fmt.CompressionConfig(d=VOCAB, **cfg_kwargs)
    fmt.write_config(tmp_path, cfg)
    dk = DKCompressor(config=DKConfig.model_validate(yaml.safe_load((tmp_path / fmt.CONFIG_NAME).read_text())))
    ids, values = top_k(np.random.default_rng(1), 30, cfg.k)
    ours_lp, ours_ix = fmt.encode(ids, values, cfg)
    theirs = dk.compress_from_sparse(torch.from_numpy(ids)[None], torch.from_numpy(values)[None])
    assert (theirs["bytepacked_indices"][0].numpy() == ours_ix).all()
    if cfg.exact_k == cfg.k:  # no fitted curve: the bytes are identical
        assert (theirs["compressed_logprobs"][0].numpy() == ours_lp).all()
    # each reader decodes the other's bytes to the same values
    dk_ids, dk_vals = dk.decompress_to_sparse({"compressed_logprobs": torch.from_numpy(ours_lp)[None],
                                               "bytepacked_indices": torch.from_numpy(ours_ix)[None]})
    our_ids, our_vals = fmt.decode(theirs["compressed_logprobs"][0].numpy(), theirs["bytepacked_indices"][0].numpy(), cfg)
    assert (dk_ids[0].numpy() == ids).all() and (our_ids == ids).all()
    ours_decoded = fmt.decode(ours_lp, ours_ix, cfg)[1]
    tol = 1e-2 if cfg.exact_k == cfg.k else 5e-2  # DistillKit returns exact_dtype (bf16) values
    assert np.allclose(dk_vals[0].float().numpy(), ours_decoded, atol=tol, rtol=1e-2)
    theirs_decoded = dk.decompress_to_sparse(theirs)[1][0].float().numpy()
    assert np.allclose(our_vals, theirs_decoded, atol=tol, rtol=1e-2)


def test_entry_columns_round_trip_and_refuse_mixed_widths():
    import pyarrow as pa
    values = np.arange(5 * 3, dtype=np.uint8).reshape(5, 3)
    column = fmt.entries_column(values, np.array([2, 0, 3]))
    assert column.type == pa.list_(pa.list_(pa.uint8())) and len(column) == 3
    back, counts = fmt.entry_matrix(column.slice(1))   # a slice's offsets are honoured
    assert counts.tolist() == [0, 3] and back.tolist() == values[2:].tolist()
    mixed = pa.array([[[1, 2], [3]]], type=pa.list_(pa.list_(pa.uint8())))
    with pytest.raises(fmt.FormatError, match="not 2 bytes wide"):
        fmt.entry_matrix(mixed)
