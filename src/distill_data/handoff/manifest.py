"""What every handoff form records: its source, settings, files, tokens and bytes per token.

The manifest is deterministic (no times or hosts: those go to build_info.json beside it, with
the throughput), so a rebuild from the same dataset gives the same bytes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..schema import SPLITS
from ..writer import write_json
from .source import PublishedDataset

HANDOFF_VERSION = 1

log = logging.getLogger("distill_data")


def handoff_manifest(form: str, source: PublishedDataset, out_dir: Path, params: dict, files: dict,
                     tokens: dict, extra: dict | None = None, warnings: list[str] | None = None) -> dict:
    """`files`: {split: [{path, rows, bytes, sha256}]}; `tokens`: {split: tokens the form holds
    (not counting padding)}."""
    warnings = list(warnings or [])
    for split in SPLITS:   # an empty split is a surprise a trainer meets late: say it here and in the log
        if not sum(f["rows"] for f in files[split]):
            warnings.append(f"{split}: no rows (the source has {source.rows(split):,})")
    for line in warnings:
        log.warning("%s %s: %s", source.name, form, line)
    data_bytes = sum(f["bytes"] for split in SPLITS for f in files[split])
    total_tokens = sum(tokens.values())
    manifest = {
        "handoff_version": HANDOFF_VERSION,
        "form": form,
        "dataset": source.name,
        "source": {
            # relative, so that the datasets and their handoffs can move together
            "path": _relative(source.directory, out_dir),
            "manifest_sha256": source.manifest_sha256,
            "rows": {split: source.rows(split) for split in SPLITS},
        },
        "params": params,
        "rows": {split: sum(f["rows"] for f in files[split]) for split in SPLITS},
        "tokens": tokens,
        "bytes": data_bytes,
        "bytes_per_token": round(data_bytes / total_tokens, 4) if total_tokens else None,
        "files": files,
        "warnings": warnings,
    }
    if extra:
        manifest.update(extra)
    return manifest


def _relative(path: Path, start: Path) -> str:
    import os
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def write_build_info(out_dir: Path, started: float, tokens: int, argv: list[str]) -> dict:
    seconds = time.perf_counter() - started
    info = {"seconds": round(seconds, 3), "tokens": tokens,
            "tokens_per_second": round(tokens / seconds) if seconds > 0 else None,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": argv}
    write_json(Path(out_dir) / "build_info.json", info)
    return info
