"""The teacher dataset's manifest, from its captured parts (one summary per part).

The folder is a published dataset like the others (manifest.json listing every file with rows,
bytes and sha256, per split), plus compression_config.yaml (DistillKit's, for the trainer's
`teacher.logprob_compressor`). The manifest is deterministic; times and throughput go to
build_info.json beside it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..handoff.manifest import _relative
from ..handoff.source import HandoffError, PublishedDataset
from ..schema import SPLITS
from ..writer import write_json
from . import format as fmt
from .backends import TeacherError

log = logging.getLogger("distill_data")

TEACHER_VERSION = 1


def publish(source_dir: Path, teacher_dir: Path, summaries: list[Path], config: fmt.CompressionConfig,
            teacher: dict, settings: dict) -> dict:
    try:
        source = PublishedDataset(source_dir)
    except HandoffError as exc:
        raise TeacherError(str(exc)) from None
    parts = [json.loads(Path(p).read_text(encoding="utf-8")) for p in summaries]
    by_split = {split: sorted((p for p in parts if p["split"] == split), key=lambda p: p["part"]) for split in SPLITS}
    expected = {split: [e.path.name for e in source.files[split]] for split in SPLITS}
    for split in SPLITS:
        got = [p["part"] for p in by_split[split]]
        if got != expected[split]:
            raise TeacherError(f"{teacher_dir}: {split} parts {got} do not match the dataset's {expected[split]}")
    files = {split: [{k: p[k] for k in ("path", "rows", "bytes", "sha256")} for p in by_split[split]]
             for split in SPLITS}
    tokens = {split: sum(p["tokens"] for p in by_split[split]) for split in SPLITS}
    positions = {split: sum(p["positions"] for p in by_split[split]) for split in SPLITS}
    rows = {split: sum(p["rows"] for p in by_split[split]) for split in SPLITS}
    data_bytes = sum(f["bytes"] for split in SPLITS for f in files[split])
    warnings = []
    for split in SPLITS:
        if not rows[split]:   # a trainer meets an empty split late: say it here and in the log
            warnings.append(f"{split}: no rows (the dataset has {source.rows(split):,})")
        elif rows[split] < source.rows(split):
            warnings.append(f"{split}: {rows[split]:,} of {source.rows(split):,} rows captured "
                            f"(teacher.max_rows {settings.get('max_rows')}: a trial, not the whole dataset)")
    for line in warnings:
        log.warning("%s teacher: %s", source.name, line)
    manifest = {
        "teacher_version": TEACHER_VERSION,
        "form": "teacher",
        "dataset": source.name,
        "source": {"path": _relative(source.directory, teacher_dir), "manifest_sha256": source.manifest_sha256,
                   "rows": {split: source.rows(split) for split in SPLITS}},
        "teacher": teacher,
        "settings": settings,
        "top_k": config.k,
        "compression": config.to_dict(),
        "bytes_per_position": config.bytes_per_position,
        "position_convention": "a row of L input_ids has L-1 entries; entry j is the teacher's top-k for token j+1",
        "rows": rows,
        "tokens": tokens,
        "total_tokens": sum(tokens.values()),
        "positions": positions,
        "bytes": data_bytes,
        "bytes_per_token": round(data_bytes / sum(tokens.values()), 4) if sum(tokens.values()) else None,
        "files": files,
        "warnings": warnings,
    }
    write_json(teacher_dir / "manifest.json", manifest)
    fmt.write_config(teacher_dir, config)
    seconds = sum(p["capture_seconds"] for p in parts)
    captured = sum(p["captured_positions"] for p in parts)
    info = {"parts": len(parts), "capture_seconds": round(seconds, 3), "captured_positions": captured,
            "resumed_chunks": sum(p["resumed_chunks"] for p in parts),
            "tokens_per_second": round(captured / seconds, 1) if seconds else None,
            "per_part": {p["path"]: {k: p[k] for k in ("capture_seconds", "positions_per_second", "resumed_chunks")}
                         for p in parts}}
    write_json(teacher_dir / "build_info.json", info)
    log.info("%s teacher: %s rows, %s tokens, %.2f bytes/token; %s tokens/s over %d parts", source.name,
             sum(rows.values()), f"{sum(tokens.values()):,}", manifest["bytes_per_token"] or 0,
             info["tokens_per_second"], len(parts))
    return manifest
