"""The teacher stage's plan: which part files of a dataset are captured, and what the pass costs.

Written once the dataset is built (a Snakemake checkpoint), so the capture jobs (one per part)
are known; the estimate is printed and recorded first, before any GPU time is spent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..handoff.source import HandoffError, PublishedDataset
from ..schema import SPLITS
from ..writer import write_json
from . import format as fmt
from .backends import TeacherError
from .estimate import describe, estimate

log = logging.getLogger("distill_data")


def measured_throughput(build_info: Path) -> float | None:
    """Tokens per second of an earlier capture of this stage (its build_info.json), if any."""
    try:
        info = json.loads(Path(build_info).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    value = info.get("tokens_per_second")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def make_plan(source_dir: Path, config: fmt.CompressionConfig, *, expected_tokens_per_second: float | None,
              max_rows: int | None, previous_build_info: Path | None = None) -> dict:
    try:
        source = PublishedDataset(source_dir)
    except HandoffError as exc:
        raise TeacherError(str(exc)) from None
    parts = {split: [entry.path.name for entry in source.files[split]] for split in SPLITS}
    rows = sum(source.rows(split) for split in SPLITS)
    tokens = source.manifest.get("total_tokens")
    if not isinstance(tokens, int):
        raise TeacherError(f"{source.manifest_path}: no total_tokens")
    dataset_bytes = sum(entry.bytes for split in SPLITS for entry in source.files[split])
    measured = measured_throughput(previous_build_info) if previous_build_info else None
    speed = measured or expected_tokens_per_second
    whole = estimate(tokens, rows, dataset_bytes, config, speed)
    text = describe(source.name, whole, measured is not None)
    plan = {"dataset": source.name, "source_manifest_sha256": source.manifest_sha256, "parts": parts,
            "max_rows_per_part": max_rows, "estimate": whole, "estimate_text": text}
    if max_rows is not None:
        trial_rows = sum(min(max_rows, entry.rows) for split in SPLITS for entry in source.files[split])
        plan["trial"] = f"trial run: at most {max_rows} rows per part, {trial_rows:,} rows in all"
    return plan


def write_plan(path: Path, plan: dict) -> None:
    write_json(path, plan)
    log.warning("%s", plan["estimate_text"])   # a warning, so that it shows on the console before the jobs
    if "trial" in plan:
        log.warning("%s", plan["trial"])
