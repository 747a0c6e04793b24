"""Assembling a published dataset: `train/`, `validation/`, `manifest.json`, `build_info.json`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import time
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .encode import DROP_DUPLICATE_CONTENT
from .schema import SPLITS
from .stats import DatasetStats, SplitGroups, Stage
from .tokenizer import HarmonyTokenizer
from .writer import PartWriter, write_json

MANIFEST_VERSION = 1

log = logging.getLogger("distill_data")


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
                   inputs: list[dict], stats: DatasetStats, files: dict, extra: dict | None = None,
                   dataset_dir: Path | None = None, drop_stages: Sequence[Stage] = (),
                   sampling_reasons: Sequence[str] = (), warnings: Sequence[str] = ()) -> dict:
    """The deterministic manifest of CONTRACT.md: no times, no hosts.

    With `dataset_dir` (the folder `files` are relative to) it reports `split_groups`, read from
    the written rows; with `drop_stages` (the order the drop reasons are tested in) the drops by
    reason x category and their `warnings` (sampling reasons excepted), which also go to the log.
    """
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
        **{k: v for k, v in stats.to_dict().items() if k != "category_counts"},
        "files": files,
    }
    found = list(warnings)
    if drop_stages and stats.categories.cells:
        manifest["drops_by_category"] = stats.categories.report(drop_stages)
        found += stats.categories.warnings(drop_stages, sampling_reasons)
    if dataset_dir is not None:
        manifest["split_groups"] = split_group_report(dataset, Path(dataset_dir), files,
                                                      stats.accounting.drops.get(DROP_DUPLICATE_CONTENT, 0))
    if extra:
        manifest.update(extra)
    manifest["warnings"] = found
    for line in found:
        log.warning("%s: %s", dataset, line)
    return manifest


def split_group_report(dataset: str, dataset_dir: Path, files: dict, duplicates_removed: int) -> dict:
    """Groups (``source.split_group``) of the written rows per split, and how many sit in both
    splits: 0, or the build stops (one problem on one side is what the split promises)."""
    groups = SplitGroups()
    for split in SPLITS:
        for f in files[split]:
            column = pq.read_table(Path(dataset_dir) / f["path"], columns=["source.split_group"]).column(0)
            groups.add(split, column.to_pylist())
    report = groups.report(duplicates_removed)
    if report["in_both_splits"]:
        raise RuntimeError(f"{dataset}: {report['in_both_splits']} split groups have rows in both train and "
                           "validation; the split must keep each group on one side (a bug)")
    return report


def require_train_rows(dataset: str, stats: DatasetStats, hint: str) -> None:
    """A dataset with no train row is useless to a trainer: stop, with the numbers and `hint`
    (which settings to change)."""
    if stats.accounting.written.get("train", 0):
        return
    acc = stats.accounting
    drops = ", ".join(f"{reason} {n}" for reason, n in sorted(acc.drops.items(), key=lambda kv: -kv[1])) or "none"
    raise ValueError(f"{dataset}: 0 train rows ({acc.rows_read} rows read, {acc.written.get('validation', 0)} "
                     f"validation rows written; dropped: {drops}). {hint}")


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
