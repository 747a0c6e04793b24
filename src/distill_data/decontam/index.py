"""The benchmark index: every normalised word n-gram of every benchmark text, as sorted 64-bit
hashes with the benchmark they come from.

Stored as one parquet file (columns `hash` uint64 and `benchmark` uint8, sorted by hash then
benchmark; a hash present in two benchmarks has two rows), its metadata holding the n-gram size
and the benchmark names in config order. 9 bytes per (n-gram, benchmark) in memory; every listed
public benchmark together is below 10^7 n-grams, i.e. under 90 MB (HumanEval: about 3·10^4).

False matches: two different n-grams share a 64-bit hash with probability 2^-64, so a build
checking C n-grams against an index of I n-grams expects about C·I / 2^64 false matches
(10^10 checked × 10^7 indexed ≈ 5·10^-3). A benchmark text with fewer words than the n-gram size
has no n-gram: it is counted in the summary (`texts_too_short`) and cannot match.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..writer import write_json, write_parquet
from .humaneval import DecontamError, expand
from .ngrams import text_ngram_hashes

INDEX_SCHEMA = pa.schema([("hash", pa.uint64()), ("benchmark", pa.uint8())])
MAX_BENCHMARKS = 255
CHUNK_TEXTS = 20_000  # texts hashed at a time (bounds the temporary arrays)
FALSE_MATCHES = "expected false matches ≈ checked n-grams × indexed n-grams / 2^64 (64-bit hashes)"


def reason(name: str) -> str:
    """The drop reason of a benchmark."""
    return f"benchmark_{name}"


# --- reading benchmark files ------------------------------------------------------------------

def read_rows(path: Path, fields: Sequence[str]) -> list[dict]:
    """The rows of a jsonl, jsonl.gz, json (a list, or {"data": [...]}) or parquet file, each
    reduced to `fields`; a field no row has is an error naming the file."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        schema = pq.read_schema(path)
        missing = [f for f in fields if f not in schema.names]
        if missing:
            raise DecontamError(f"{path}: no field {', '.join(missing)} (it has {', '.join(schema.names)})")
        return pq.read_table(path, columns=list(fields)).to_pylist()
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        rows = []
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise DecontamError(f"{path}: line {line_no}: not JSON ({exc})") from None
    elif name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DecontamError(f"{path}: not JSON ({exc})") from None
        rows = data.get("data") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise DecontamError(f"{path}: expected a list of objects or {{\"data\": [...]}}")
    else:
        raise DecontamError(f"{path}: unknown format (use .jsonl, .jsonl.gz, .json or .parquet)")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DecontamError(f"{path}: row {i} is not an object")
    missing = [f for f in fields if not any(f in row for row in rows)]
    if rows and missing:
        raise DecontamError(f"{path}: no row has field {', '.join(missing)}")
    return rows


def row_texts(path: Path, row: int, record: dict, fields: Sequence[str]) -> Iterator[str]:
    """The texts of one row: each field a string, a list of strings, or null (no text)."""
    for field in fields:
        value = record.get(field)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            if not isinstance(v, str):
                raise DecontamError(f"{path}: row {row} field {field}: expected text or a list of texts, "
                                    f"got {type(v).__name__}")
            yield v


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- building ---------------------------------------------------------------------------------

def build_index(benchmarks: Sequence[dict], n: int, out: Path, summary_out: Path) -> dict:
    """Hash every benchmark's texts, write the index parquet and its JSON summary."""
    specs = [expand(b) for b in benchmarks]
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names):
        raise DecontamError(f"decontam.benchmarks: a name is listed twice ({', '.join(names)})")
    if not 0 < len(specs) <= MAX_BENCHMARKS:
        raise DecontamError(f"decontam.benchmarks: 1 to {MAX_BENCHMARKS} benchmarks, got {len(specs)}")
    hashes, ids, described = [], [], []
    for bench_id, spec in enumerate(specs):
        unique, info = benchmark_ngrams(spec, n)
        hashes.append(unique)
        ids.append(np.full(len(unique), bench_id, np.uint8))
        described.append(info)
    h, b = np.concatenate(hashes), np.concatenate(ids)
    order = np.lexsort((b, h))
    table = pa.table([pa.array(h[order], pa.uint64()), pa.array(b[order], pa.uint8())], schema=INDEX_SCHEMA)
    table = table.replace_schema_metadata({"ngram": str(n), "benchmarks": json.dumps(names)})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    written = write_parquet(table, Path(out))
    summary = {"ngram": n, "index_sha256": written["sha256"], "indexed_ngrams": int(len(h)),
               "bytes_in_memory": int(len(h) * 9), "false_match_rate": FALSE_MATCHES,
               "short_texts": f"texts with fewer than {n} words have no n-gram (texts_too_short): never matched",
               "benchmarks": described}
    write_json(Path(summary_out), summary)
    return summary


def benchmark_ngrams(spec: dict, n: int) -> tuple[np.ndarray, dict]:
    """The sorted unique n-gram hashes of one benchmark, and its summary entry."""
    parts, files = [], []
    texts_total = too_short = ngrams_total = rows_total = 0
    for file in spec["files"]:
        path = Path(file)
        if not path.is_file():
            raise DecontamError(f"benchmark {spec['name']}: {path}: no such file")
        rows = read_rows(path, spec["fields"])
        texts = [t for i, r in enumerate(rows) for t in row_texts(path, i, r, spec["fields"])]
        for start in range(0, len(texts), CHUNK_TEXTS):
            h, text, _, _ = text_ngram_hashes(texts[start:start + CHUNK_TEXTS], n)
            parts.append(np.unique(h))
            ngrams_total += len(h)
            too_short += len(texts[start:start + CHUNK_TEXTS]) - len(np.unique(text))
        files.append({"file": path.name, "sha256": file_sha256(path), "rows": len(rows), "texts": len(texts)})
        rows_total += len(rows)
        texts_total += len(texts)
    unique = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)
    info = {"name": spec["name"], "reason": reason(spec["name"]), "fields": spec["fields"], "files": files,
            "rows": rows_total, "texts": texts_total, "texts_too_short": too_short,
            "ngrams": ngrams_total, "unique_ngrams": int(len(unique))}
    return unique, info


# --- loading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Index:
    hashes: np.ndarray      # uint64, sorted
    benchmark: np.ndarray   # uint8, per hash (sorted within equal hashes)
    names: tuple[str, ...]  # benchmark names, config order
    ngram: int
    sha256: str

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(reason(name) for name in self.names)


def load_index(path: Path) -> Index:
    path = Path(path)
    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        names = tuple(json.loads(meta[b"benchmarks"]))
        ngram = int(meta[b"ngram"])
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise DecontamError(f"{path}: not a decontamination index ({exc}); rebuild it (decontam_index)") from None
    return Index(table.column("hash").to_numpy(), table.column("benchmark").to_numpy(), names, ngram,
                 file_sha256(path))
