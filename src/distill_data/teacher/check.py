"""Validator of a teacher dataset against the dataset it was captured from.

Per row: the same `id`, `input_ids` and `labels` as the source row at the same place (so the
student's loss mask is ours); one entry per position but the last (DistillKit's convention), each
of the config's byte widths; decoded, every index inside the vocabulary and distinct within its
position, every logprob finite and <= 0, sorted descending, and the k probabilities summing to at
most 1. Every file is checked against the manifest's size and sha256 as it is read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from ..handoff.source import HandoffError, PublishedDataset, flat_list, read_checked
from ..schema import SPLITS
from ..writer import write_json
from . import format as fmt

log = logging.getLogger("distill_data")

# float32 log-softmax can round the top logprob a hair above 0, and the sum of probabilities a
# hair above 1; beyond this it is a fault.
TOLERANCE = 1e-5
SHOWN = 5


class Failures:
    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, check: str, where: str, count: int = 1):
        self.counts[check] = self.counts.get(check, 0) + count
        shown = self.examples.setdefault(check, [])
        if len(shown) < SHOWN:
            shown.append(where)


def _entries(column, width: int, name: str, path: Path, failures: Failures):
    """list<list<uint8>> -> (positions, width) uint8 and positions per row; None if a width is wrong."""
    try:
        values, counts = fmt.entry_matrix(column)
    except fmt.FormatError as exc:
        failures.add(f"{name}_width", f"{path.name}: {exc}")
        return None, None
    if len(values) and values.shape[1] != width:
        failures.add(f"{name}_width", f"{path.name}: entries of {values.shape[1]} bytes, the config's are {width}",
                     len(values))
        return None, None
    return values, counts


def check_file(path: Path, table, source_table, config: fmt.CompressionConfig, failures: Failures) -> dict:
    stats = {"rows": table.num_rows, "positions": 0}
    ids = table.column("id").to_pylist()
    source_ids = source_table.column("id").to_pylist()[:table.num_rows]
    if ids != source_ids:
        first = next(i for i, (a, b) in enumerate(zip(ids, source_ids + [None] * len(ids))) if a != b)
        failures.add("ids", f"{path.name} row {first}: id {ids[first]!r}, the dataset's {source_ids[first:first + 1]}")
        return stats
    source_table = source_table.slice(0, table.num_rows)
    for column in ("input_ids", "labels"):
        if not table.column(column).equals(source_table.column(column)):
            failures.add(column, f"{path.name}: {column} differ from the dataset's")
    _, lengths = flat_list(table.column("input_ids"))
    logprob_bytes, lp_rows = _entries(table.column("compressed_logprobs"), config.logprob_bytes,
                                      "compressed_logprobs", path, failures)
    index_bytes, ix_rows = _entries(table.column("bytepacked_indices"), config.index_bytes,
                                    "bytepacked_indices", path, failures)
    if logprob_bytes is None or index_bytes is None:
        return stats
    expected = np.maximum(lengths - 1, 0)
    for name, got in (("compressed_logprobs", lp_rows), ("bytepacked_indices", ix_rows)):
        wrong = np.flatnonzero(got != expected)
        if wrong.size:
            i = int(wrong[0])
            failures.add("alignment", f"{path.name} row {i} ({ids[i]}): {got[i]} {name} entries for "
                         f"{lengths[i]} input_ids (expected {expected[i]})", int(wrong.size))
            return stats
    stats["positions"] = int(expected.sum())
    indices, logprobs = fmt.decode(logprob_bytes, index_bytes, config)
    row_of = np.repeat(np.arange(len(ids)), expected)

    def where(mask):
        p = int(np.flatnonzero(mask)[0])
        row = int(row_of[p])
        position = p - int(expected[:row].sum()) + 1
        return f"{path.name} row {row} ({ids[row]}), position {position}"

    for check, bad in (("indices_in_vocabulary", (indices >= config.d).any(axis=1)),
                       ("finite", ~np.isfinite(logprobs).all(axis=1)),
                       ("at_most_zero", (logprobs > TOLERANCE).any(axis=1)),
                       ("sorted", (np.diff(logprobs, axis=1) > TOLERANCE).any(axis=1))):
        if bad.any():
            failures.add(check, where(bad), int(bad.sum()))
    ordered = np.sort(indices, axis=1)
    duplicate = (np.diff(ordered, axis=1) == 0).any(axis=1)
    if duplicate.any():
        failures.add("distinct_indices", where(duplicate), int(duplicate.sum()))
    with np.errstate(over="ignore", invalid="ignore"):
        mass = np.exp(logprobs.astype(np.float64)).sum(axis=1)
    over = mass > 1 + TOLERANCE
    if over.any():
        failures.add("mass_at_most_one", where(over), int(over.sum()))
    stats["mass"] = {"min": round(float(mass.min()), 6), "mean": round(float(mass.mean()), 6)} if mass.size else None
    return stats


def check_teacher(teacher_dir: Path) -> dict:
    teacher = PublishedDataset(teacher_dir)
    config = fmt.read_config(teacher_dir)
    source = PublishedDataset((Path(teacher_dir) / teacher.manifest["source"]["path"]).resolve())
    if source.manifest_sha256 != teacher.manifest["source"]["manifest_sha256"]:
        raise HandoffError(f"{source.manifest_path}: changed since the teacher pass (manifest sha256 differs); "
                           "rerun the teacher stage")
    failures = Failures()
    splits, mass = {}, []
    for split in SPLITS:
        source_files = {e.path.name: e for e in source.files[split]}
        rows = positions = 0
        for entry, table in teacher.tables(split):
            if entry.path.name not in source_files:
                failures.add("files", f"{entry.path}: no such part in {source.directory}")
                continue
            source_table = read_checked(source_files[entry.path.name], ["id", "input_ids", "labels"])
            stats = check_file(entry.path, table, source_table, config, failures)
            rows += stats["rows"]
            positions += stats["positions"]
            if stats.get("mass"):
                mass.append(stats["mass"]["min"])
        splits[split] = {"rows": rows, "positions": positions}
    checks = ["files", "ids", "input_ids", "labels", "compressed_logprobs_width", "bytepacked_indices_width",
              "alignment", "indices_in_vocabulary", "distinct_indices", "finite", "at_most_zero", "sorted",
              "mass_at_most_one"]
    report = {
        "form": "teacher", "dataset": teacher.name, "directory": str(teacher_dir),
        "ok": not failures.counts, "k": config.k, "splits": splits,
        "rows": {s: splits[s]["rows"] for s in SPLITS},
        "tokens": teacher.manifest.get("tokens") or {s: 0 for s in SPLITS},
        "bytes_per_token": teacher.manifest.get("bytes_per_token"),
        "lowest_topk_mass": min(mass) if mass else None,
        "checks": {name: {"ok": name not in failures.counts, "failures": failures.examples.get(name, []),
                          "count": failures.counts.get(name, 0)} for name in checks},
    }
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill_data.teacher check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path, help="a teacher dataset folder (manifest.json, compression_config.yaml)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        report = check_teacher(args.directory)
    except (HandoffError, fmt.FormatError) as exc:
        log.error("%s", exc)
        return 2
    if args.report:
        write_json(args.report, report)
    print(f"{args.directory}: teacher logits {'OK' if report['ok'] else 'FAILED'} (k={report['k']}; rows "
          f"{report['rows']}; lowest top-k mass {report['lowest_topk_mass']})")
    for name, entry in report["checks"].items():
        if not entry["ok"]:
            print(f"  {name} FAILED ({entry['count']}): {'; '.join(entry['failures'])}")
    return 0 if report["ok"] else 1
