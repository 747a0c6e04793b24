"""DistillKit's compressed top-k logprob format: our own encoder and reader.

Matches distillkit/compression/{config,compressor,bitpack,monotonic_logprobs}.py (arcee-ai/DistillKit):
a capture directory holds compression_config.yaml (a DistributionQuantizationConfig dump) and parquet
rows with `compressed_logprobs` and `bytepacked_indices`, each a list (one per position) of uint8 lists.

Per position the k entries are sorted by logprob, descending. `bytepacked_indices` is the k token
ids, ceil(log2(d)) bits each, MSB first, zero-padded to a whole byte. `compressed_logprobs` is, in
order: exact_k values in exact_dtype (little-endian bytes), the polynomial coefficients in term_dtype,
then per residual bin a scale in scale_dtype and the bin's quantized elements, bit-packed the same way.
With delta_encoding the stored values are differences from the previous logprob (the first unchanged).

Position convention (vLLM prompt_logprobs with the first, empty, position dropped): a row of L input
ids has L-1 entries; entry j is the teacher's distribution for token j+1 given input_ids[0..j].
DistillKit's packer then cuts input_ids/labels to those L-1 positions.

Written in numpy so the reader needs no torch; the byte layout is what torch's `.view(torch.uint8)`
gives on a little-endian host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

CONFIG_NAME = "compression_config.yaml"
# The two columns of a captured row (list<list<uint8>>: per position, that many bytes).
ENTRY_COLUMNS = ("compressed_logprobs", "bytepacked_indices")
DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
# Relative rounding bound (half an ulp) for round-to-nearest into each dtype.
DTYPE_REL_ERROR = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
SPECIAL_TERMS = ("sqrt", "exp")


class FormatError(ValueError):
    pass


@dataclass
class ResidualBin:
    scale_dtype: str
    element_bits: int
    num_elements: int


@dataclass
class CompressionConfig:
    """Mirrors DistillKit's DistributionQuantizationConfig (same field names and defaults)."""

    d: int
    k: int
    exact_k: int
    exact_dtype: str = "float32"
    polynomial_terms: list | None = None
    term_dtype: str = "float32"
    residual_bins: list = field(default_factory=list)
    delta_encoding: bool = True
    error_diffusion: bool = False
    normalize_t: bool = False

    def __post_init__(self):
        self.residual_bins = [b if isinstance(b, ResidualBin) else ResidualBin(**b) for b in self.residual_bins]
        for name in ("exact_dtype", "term_dtype"):
            if getattr(self, name) not in DTYPE_BITS:
                raise FormatError(f"{name} {getattr(self, name)!r} is not one of {sorted(DTYPE_BITS)}")
        for b in self.residual_bins:
            if b.scale_dtype not in DTYPE_BITS or not 1 <= b.element_bits <= 64 or b.num_elements < 1:
                raise FormatError(f"bad residual bin {b}")
        for t in self.polynomial_terms or []:
            if not (isinstance(t, int) or t in SPECIAL_TERMS):
                raise FormatError(f"polynomial term {t!r} is neither an integer power nor one of {SPECIAL_TERMS}")
        if self.d < 1 or self.k < 1 or not 0 <= self.exact_k <= self.k:
            raise FormatError(f"need d >= 1, k >= 1 and 0 <= exact_k <= k (got d={self.d} k={self.k} exact_k={self.exact_k})")
        if self.exact_k < self.k and not self.polynomial_terms and not self.residual_bins:
            raise FormatError("exact_k < k needs polynomial_terms or residual_bins for the other values")
        if sum(b.num_elements for b in self.residual_bins) > self.k - self.exact_k:
            raise FormatError("residual_bins hold more elements than k - exact_k")

    @property
    def index_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.d)))

    @property
    def index_bytes(self) -> int:
        return (self.k * self.index_bits + 7) // 8

    @property
    def logprob_bytes(self) -> int:
        n = self.exact_k * DTYPE_BITS[self.exact_dtype] // 8
        n += len(self.polynomial_terms or []) * DTYPE_BITS[self.term_dtype] // 8
        for b in self.residual_bins:
            n += DTYPE_BITS[b.scale_dtype] // 8 + (b.num_elements * b.element_bits + 7) // 8
        return n

    @property
    def bytes_per_position(self) -> int:
        return self.logprob_bytes + self.index_bytes

    def to_dict(self) -> dict:
        # Same keys and JSON-mode values as pydantic's model_dump(mode="json") of DistillKit's class.
        return {
            "d": self.d, "k": self.k, "exact_k": self.exact_k, "exact_dtype": self.exact_dtype,
            "polynomial_terms": None if self.polynomial_terms is None else list(self.polynomial_terms),
            "term_dtype": self.term_dtype,
            "residual_bins": [{"scale_dtype": b.scale_dtype, "element_bits": b.element_bits,
                               "num_elements": b.num_elements} for b in self.residual_bins],
            "delta_encoding": self.delta_encoding, "error_diffusion": self.error_diffusion,
            "normalize_t": self.normalize_t,
        }

    def max_abs_error(self, logprobs: np.ndarray) -> np.ndarray:
        """The format's stated per-value error bound when every value is stored exactly (exact_k == k).

        Rounding each stored value (or each same-signed delta) to exact_dtype errs by at most half an
        ulp; with delta encoding the errors of the deltas add up to at most |x| times that, and the
        float32 running sum adds one more float32 rounding per step.
        """
        if self.exact_k < self.k:
            raise FormatError("approximated values (exact_k < k) have no stated bound; measure the error instead")
        x = np.abs(np.asarray(logprobs, dtype=np.float64))
        rel = DTYPE_REL_ERROR[self.exact_dtype]
        if not self.delta_encoding:
            return x * rel + 1e-300
        steps = np.arange(1, x.shape[-1] + 1)
        return x * (rel + steps * DTYPE_REL_ERROR["float32"]) * 1.0001 + 1e-30


def default_config(d: int, k: int, exact_dtype: str = "float32") -> CompressionConfig:
    """Every top-k value stored exactly: the error is only exact_dtype's rounding."""
    return CompressionConfig(d=d, k=k, exact_k=k, exact_dtype=exact_dtype, polynomial_terms=None,
                             residual_bins=[], delta_encoding=False, error_diffusion=False)


def write_config(directory: Path, config: CompressionConfig) -> Path:
    path = Path(directory) / CONFIG_NAME
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    tmp.replace(path)
    return path


def read_config(directory: Path) -> CompressionConfig:
    path = Path(directory) / CONFIG_NAME
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CompressionConfig(**data)
    except FileNotFoundError:
        raise FormatError(f"{path}: missing") from None
    except (TypeError, yaml.YAMLError, FormatError) as exc:
        raise FormatError(f"{path}: {exc}") from None


# ---- bit packing (MSB first, zero padded to whole bytes; same as distillkit bitpack) ----

def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    values = np.asarray(values).astype(np.uint64) & np.uint64((1 << bits) - 1 if bits < 64 else 2**64 - 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    stream = ((values[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)
    stream = stream.reshape(*values.shape[:-1], -1)
    return np.packbits(stream, axis=-1)  # packbits is MSB first and zero pads the last byte


def unpack_bits(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    data = np.asarray(data, dtype=np.uint8)
    if count * bits > data.shape[-1] * 8:
        raise FormatError(f"{data.shape[-1]} bytes cannot hold {count} values of {bits} bits")
    stream = np.unpackbits(data, axis=-1)[..., : count * bits].reshape(*data.shape[:-1], count, bits)
    weights = np.uint64(1) << np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return (stream.astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64).astype(np.int64)


# ---- float <-> bytes in each dtype ----

def _to_bytes(values: np.ndarray, dtype: str) -> np.ndarray:
    values = np.asarray(values)
    if dtype == "bfloat16":
        # Round to nearest even on the float32 bit pattern, as torch's .to(torch.bfloat16) does.
        u = values.astype("<f4").view("<u4").astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
        out = u
    else:
        out = values.astype({"float16": "<f2", "float32": "<f4", "float64": "<f8"}[dtype])
    return np.ascontiguousarray(out).view(np.uint8).reshape(*values.shape[:-1], -1)


def _from_bytes(data: np.ndarray, dtype: str, count: int) -> np.ndarray:
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if dtype == "bfloat16":
        u = data.view("<u2").astype(np.uint32) << 16
        vals = u.view("<f4")
    else:
        vals = data.view({"float16": "<f2", "float32": "<f4", "float64": "<f8"}[dtype])
    return vals.reshape(*data.shape[:-1], count).astype(np.float64 if dtype == "float64" else np.float32)


# ---- logprob compression ----

def _work_dtype(x: np.ndarray):
    return np.float64 if x.dtype == np.float64 else np.float32


def _poly_design(terms, t: int, dtype, normalize_t: bool) -> np.ndarray:
    pts = np.linspace(0, 1, t, dtype=dtype) if normalize_t else np.arange(t, dtype=dtype)
    with np.errstate(divide="ignore", over="ignore"):
        cols = [pts**i if isinstance(i, int) else getattr(np, i)(pts) for i in terms]
    return np.stack(cols, axis=-1).astype(dtype)


def _fit(values: np.ndarray, config: CompressionConfig):
    work = _work_dtype(values)
    X = _poly_design(config.polynomial_terms, values.shape[-1], work, config.normalize_t)
    # Pseudo-inverse by SVD with the same 1e-5 singular value cut-off as DistillKit, so rank-deficient
    # designs (e.g. t=0 rows of sqrt and power terms) solve the same way.
    U, S, Vh = np.linalg.svd(X.astype(work), full_matrices=False)
    s_inv = np.where(S > 1e-5, 1.0 / np.where(S > 1e-5, S, 1.0), 0.0).astype(work)
    coeffs = (values.astype(work) @ U) * s_inv @ Vh  # (..., terms)
    term = {"float16": np.float16, "float32": np.float32, "float64": np.float64}.get(config.term_dtype)
    if config.term_dtype == "bfloat16":
        coeffs_q = _from_bytes(_to_bytes(coeffs, "bfloat16"), "bfloat16", coeffs.shape[-1])
    else:
        coeffs_q = coeffs.astype(term)
    approx = (X.astype(coeffs_q.dtype) * coeffs_q[..., None, :]).sum(axis=-1).astype(work)
    return coeffs_q, values.astype(work) - approx


def _quant_range(bits: int):
    return (0, 1) if bits == 1 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _quantize(values: np.ndarray, b: ResidualBin):
    max_abs = np.abs(values).max(axis=-1, keepdims=True)
    top = 1.0 if b.element_bits == 1 else float(2 ** (b.element_bits - 1))
    scale = np.where(max_abs == 0, 1.0, max_abs / top).astype(values.dtype)
    scale = _from_bytes(_to_bytes(scale, b.scale_dtype), b.scale_dtype, 1).astype(values.dtype)
    lo, hi = _quant_range(b.element_bits)
    q = (np.clip(np.round(values / scale), lo, hi) - lo).astype(np.int64)
    return scale, q


def _dequantize(q: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    if bits == 1:  # DistillKit maps 1-bit codes to -scale/+scale
        return (q.astype(np.float32) * 2.0 - 1.0) * scale
    lo, _ = _quant_range(bits)
    return (q + lo).astype(np.float32) * scale


def compress_logprobs(sorted_logprobs: np.ndarray, config: CompressionConfig) -> np.ndarray:
    """(..., k) logprobs, descending along the last axis -> (..., logprob_bytes) uint8."""
    if config.error_diffusion:
        raise FormatError("error_diffusion is not supported by this encoder; set it false")
    x = np.asarray(sorted_logprobs)
    if x.shape[-1] != config.k:
        raise FormatError(f"expected {config.k} logprobs per position, got {x.shape[-1]}")
    if config.delta_encoding:
        work = x.astype(_work_dtype(x))
        x = np.concatenate([x[..., :1], np.diff(work, axis=-1)], axis=-1).astype(x.dtype)
    chunks = []
    if config.exact_k:
        chunks.append(_to_bytes(x[..., : config.exact_k], config.exact_dtype))
    rest = x[..., config.exact_k : config.k]
    if config.polynomial_terms:
        coeffs, rest = _fit(rest, config)
        chunks.append(_to_bytes(coeffs, config.term_dtype))
    at = 0
    for b in config.residual_bins:
        scale, q = _quantize(rest[..., at : at + b.num_elements].astype(_work_dtype(rest)), b)
        chunks.append(_to_bytes(scale, b.scale_dtype))
        chunks.append(pack_bits(q, b.element_bits))
        at += b.num_elements
    return np.concatenate(chunks, axis=-1)


def decompress_logprobs(data: np.ndarray, config: CompressionConfig) -> np.ndarray:
    """(..., logprob_bytes) uint8 -> (..., k) float32 logprobs."""
    data = np.asarray(data, dtype=np.uint8)
    if data.shape[-1] != config.logprob_bytes:
        raise FormatError(f"compressed_logprobs has {data.shape[-1]} bytes per position, config says {config.logprob_bytes}")
    lead, at = data.shape[:-1], 0

    def take(n):
        nonlocal at
        at += n
        return data[..., at - n : at]

    exact = _from_bytes(take(config.exact_k * DTYPE_BITS[config.exact_dtype] // 8), config.exact_dtype, config.exact_k)
    n_approx = config.k - config.exact_k
    approx = np.zeros((*lead, n_approx), dtype=np.float32)
    if config.polynomial_terms:
        n = len(config.polynomial_terms)
        coeffs = _from_bytes(take(n * DTYPE_BITS[config.term_dtype] // 8), config.term_dtype, n)
        X = _poly_design(config.polynomial_terms, n_approx, np.float32, config.normalize_t)
        approx += (X.astype(coeffs.dtype) * coeffs[..., None, :]).sum(axis=-1).astype(np.float32)
    col = 0
    for b in config.residual_bins:
        scale = _from_bytes(take(DTYPE_BITS[b.scale_dtype] // 8), b.scale_dtype, 1)
        q = unpack_bits(take((b.num_elements * b.element_bits + 7) // 8), b.element_bits, b.num_elements)
        approx[..., col : col + b.num_elements] += _dequantize(q, scale, b.element_bits)
        col += b.num_elements
    out = np.concatenate([exact.astype(np.float32), approx], axis=-1)
    return np.cumsum(out, axis=-1, dtype=np.float32) if config.delta_encoding else out


def encode(indices: np.ndarray, logprobs: np.ndarray, config: CompressionConfig):
    """Top-k (indices, logprobs), (..., k) -> (compressed_logprobs, bytepacked_indices) uint8 arrays.

    The entries are put in descending logprob order first (the format relies on it); a stable sort
    keeps tied entries in their given order so the bytes are deterministic.
    """
    indices, logprobs = np.asarray(indices), np.asarray(logprobs)
    if indices.shape != logprobs.shape:
        raise FormatError(f"indices {indices.shape} and logprobs {logprobs.shape} differ in shape")
    if indices.size and (indices.min() < 0 or indices.max() >= config.d):
        raise FormatError(f"token index out of range [0, {config.d})")
    order = np.argsort(-logprobs.astype(np.float64), axis=-1, kind="stable")
    values = np.take_along_axis(logprobs, order, axis=-1)
    ids = np.take_along_axis(indices, order, axis=-1)
    return compress_logprobs(values, config), pack_bits(ids, config.index_bits)


def decode(compressed_logprobs: np.ndarray, bytepacked_indices: np.ndarray, config: CompressionConfig):
    """Inverse of encode: (indices int64, logprobs float32), each (..., k)."""
    packed = np.asarray(bytepacked_indices, dtype=np.uint8)
    if packed.shape[-1] != config.index_bytes:
        raise FormatError(f"bytepacked_indices has {packed.shape[-1]} bytes per position, config says {config.index_bytes}")
    return unpack_bits(packed, config.index_bits, config.k), decompress_logprobs(compressed_logprobs, config)


# ---- the entry columns in Arrow ----

def entries_column(values: np.ndarray, counts: np.ndarray) -> pa.ListArray:
    """(entries, width) uint8 and each row's entry count -> list<list<uint8>> (DistillKit's type)."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    width = values.shape[1] if values.ndim == 2 else 0
    if len(values) * width >= 2**31:   # list<uint8> offsets are int32, as DistillKit's schema has them
        raise FormatError(f"{len(values) * width:,} entry bytes in one table: write fewer rows per file")
    inner = pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32) * width),
                                     pa.array(values.reshape(-1), type=pa.uint8()))
    outer = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer), inner)


def entry_matrix(column) -> tuple[np.ndarray, np.ndarray]:
    """A list<list<uint8>> column -> ((entries, width) uint8, each row's entry count).

    FormatError if the entries are not all of one width."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = np.diff(array.offsets.to_numpy()).astype(np.int64)
    inner = pc.list_flatten(array)
    widths = np.diff(inner.offsets.to_numpy())
    width = int(widths[0]) if widths.size else 0
    bad = np.flatnonzero(widths != width)
    if bad.size:
        raise FormatError(f"{bad.size} entries are not {width} bytes wide (entry {int(bad[0])}: {int(widths[bad[0]])})")
    return pc.list_flatten(inner).to_numpy(zero_copy_only=False).reshape(-1, width), counts
