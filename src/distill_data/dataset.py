"""Assembling a published dataset: `train/`, `validation/`, `manifest.json`, `build_info.json`."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from pathlib import Path

import pyarrow as pa

from .schema import SPLITS
from .stats import DatasetStats
from .tokenizer import HarmonyTokenizer
from .writer import PartWriter, write_json

MANIFEST_VERSION = 1


def params_sha256(params: dict) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SplitWriters:
    """One PartWriter per split inside a (scratch) dataset folder."""

    def __init__(self, dataset_dir: Path, schema: pa.Schema, rows_per_file: int, threads: int = 1):
        self.writers = {split: PartWriter(Path(dataset_dir) / split, schema, rows_per_file, threads) for split in SPLITS}

    def write(self, split: str, table: pa.Table) -> None:
        self.writers[split].write(table)

    def close(self) -> dict:
        return {split: [dict(f, path=f"{split}/{f['path']}") for f in w.close()] for split, w in self.writers.items()}


def build_manifest(*, dataset: str, builder: str, params: dict, tokenizer: HarmonyTokenizer,
                   inputs: list[dict], stats: DatasetStats, files: dict, extra: dict | None = None) -> dict:
    """The deterministic manifest of CONTRACT.md: no times, no hosts."""
    stats.accounting.check(dataset)
    for split in SPLITS:
        in_files = sum(f["rows"] for f in files[split])
        if in_files != stats.accounting.written[split]:
            raise RuntimeError(f"{dataset}: {split} files hold {in_files} rows, accounting says "
                               f"{stats.accounting.written[split]}")
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset,
        "builder": builder,
        "params": params,
        "params_sha256": params_sha256(params),
        "tokenizer": tokenizer.describe(),
        "inputs": inputs,
        **stats.to_dict(),
        "files": files,
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_build_info(dataset_dir: Path, started: float, argv: list[str]) -> None:
    """Time and host of a build: kept out of the manifest so that it stays deterministic."""
    write_json(Path(dataset_dir) / "build_info.json", {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - started, 3),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "pid": os.getpid(),
        "argv": argv,
    })
