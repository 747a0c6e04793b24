"""The SYNTH plan: the sampling rates that make the targets hold over the whole subset, the
`duplicate_content` rows across shards, and the targets as realised (the manifest's `targets`).

The plan job reads every scan (``synth.py``) and writes the rates and each shard's duplicates;
the encode jobs apply them row by row (``sampling_drop``); finalize reports the targets.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow.parquet as pq

from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG
from ..hashing import unit_hash
from ..io import SourceError
from ..stats import DatasetStats
from ..writer import write_json

if TYPE_CHECKING:
    from .synth import SynthParams

# The sampling decisions, in the order they are tested (after the quality filters).
DROP_MEMORIZATION_CAP = "memorization_cap"
DROP_ENGLISH_TARGET = "english_target"
DROP_GLOBAL_KEEP = "global_keep"


def passing_counts(passing: Counter) -> dict:
    """{(memorization, english): rows} in the plan's four named cells."""
    return {
        "memorization_english": passing[(True, True)],
        "memorization_other": passing[(True, False)],
        "other_english": passing[(False, True)],
        "other_other": passing[(False, False)],
    }


# --- plan ------------------------------------------------------------------------------------

def solve_rates(passing: dict, memorization_cap: float, english_frac: float) -> tuple[float, float]:
    """Largest keep rates (mem_keep, non_en_keep) whose expected outcome has memorization at
    most `memorization_cap` of the kept rows and English at least `english_frac`.

    Each rate's bound only tightens when the other falls, so alternating the two bounds from
    (1, 1) descends monotonically to the largest rates satisfying both.
    """
    me, mo = passing["memorization_english"], passing["memorization_other"]
    oe, oo = passing["other_english"], passing["other_other"]
    mem_keep = non_en_keep = 1.0
    for _ in range(200):
        kept_mem = (me + mo * non_en_keep)
        kept_other = (oe + oo * non_en_keep)
        new_mem = 1.0 if kept_mem == 0 else min(1.0, memorization_cap * kept_other / ((1 - memorization_cap) * kept_mem)) if memorization_cap < 1 else 1.0
        english = oe + me * new_mem
        other_lang = oo + mo * new_mem
        new_non_en = 1.0 if other_lang == 0 else min(1.0, english * (1 - english_frac) / (english_frac * other_lang)) if english_frac > 0 else 1.0
        if abs(new_mem - mem_keep) < 1e-15 and abs(new_non_en - non_en_keep) < 1e-15:
            break
        mem_keep, non_en_keep = new_mem, new_non_en
    return mem_keep, non_en_keep


def make_plan(summaries: Sequence[dict], params: SynthParams, duplicates: Counter | None = None,
              duplicate_bytes: Counter | None = None) -> dict:
    """Sampling rates from the rows that pass quality, less the `duplicate_content` rows
    (`duplicates`: their counts by (memorization, english), from ``find_duplicates``).

    With `shares_by: tokens` the rates are solved on the rows' assistant bytes (the scans'
    `passing_bytes`, less `duplicate_bytes`) instead of their counts, so that the targets hold
    for the share of assistant tokens, as far as bytes predict tokens."""
    passing, quality_drops = Counter(), Counter()
    for summary in summaries:
        passing.update(summary["passing"])
        quality_drops.update(summary["quality_drops"])
    removed = passing_counts(duplicates or Counter())
    passing.subtract(removed)
    weights = passing
    if params.shares_by == "tokens":
        missing = [s.get("shard", "?") for s in summaries if "passing_bytes" not in s]
        if missing:
            raise ValueError(f"synth: shares_by tokens needs scans that weighed the rows, and the scans of "
                             f"{', '.join(missing)} did not (scanned with --shares-by rows): rerun their scan")
        weights = Counter()
        for summary in summaries:
            weights.update(summary["passing_bytes"])
        weights.subtract(passing_counts(duplicate_bytes or Counter()))
    mem_keep, non_en_keep = solve_rates(weights, params.memorization_cap, params.english_frac)
    check_targets(passing, mem_keep, non_en_keep, params, quality_drops)
    plan = {
        "passing_quality": dict(sorted(passing.items())),
        "duplicate_content": sum(removed.values()),
        "memorization_cap": params.memorization_cap,
        "english_frac": params.english_frac,
        "shares_by": params.shares_by,
        "mem_keep": mem_keep,
        "non_en_keep": non_en_keep,
        "global_keep": params.global_keep,
        "seed": params.seed,
        "expected": expected_shares(passing, mem_keep, non_en_keep, params.global_keep),
    }
    if params.shares_by == "tokens":
        plan["passing_quality_bytes"] = dict(sorted(weights.items()))
        plan["expected_by_bytes"] = expected_shares(weights, mem_keep, non_en_keep, params.global_keep)
    return plan


def sampling_drop(key: str, memorization: bool, english: bool, plan: dict) -> str | None:
    seed = plan["seed"]
    if memorization and unit_hash(key, seed, "mem") > plan["mem_keep"]:
        return DROP_MEMORIZATION_CAP
    if not english and unit_hash(key, seed, "lang") > plan["non_en_keep"]:
        return DROP_ENGLISH_TARGET
    if unit_hash(key, seed, "global") > plan["global_keep"]:
        return DROP_GLOBAL_KEEP
    return None


# --- duplicates and targets (plan) ------------------------------------------------------------

def find_duplicates(mask_paths: Sequence[Path]) -> tuple[list[list[int]], Counter, Counter]:
    """`duplicate_content`: rows whose normalized query and answer equal an earlier row's, among
    the rows that pass quality, in shard-list order then row order (the first is kept).

    Returns each shard's duplicate rows (0-based, ascending), their counts by
    (memorization, english), and their assistant bytes likewise (scans that weighed rows only). Shards are encoded as separate jobs; deciding here, from all
    scans, makes the result the same however the jobs are split. Memory: about 50 bytes per
    passing row (16-byte digests, sorted with numpy)."""
    digests, positions = [], []
    categories = {}
    for index, path in enumerate(mask_paths):
        wanted = ["content", "memorization", "english"]
        weighed = "assistant_bytes" in pq.read_schema(path).names
        table = pq.read_table(path, columns=wanted + ["assistant_bytes"] * weighed)
        content = table.column("content").combine_chunks()
        valid = np.flatnonzero(content.is_valid().to_numpy(zero_copy_only=False))
        if not len(valid):
            continue
        data = np.frombuffer(content.buffers()[1], dtype=">u8", count=2 * (content.offset + len(content)))
        digests.append(data[2 * content.offset:].reshape(-1, 2)[valid])
        positions.append((np.int64(index) << 32) | valid.astype(np.int64))  # read order, ascending
        categories[index] = (table.column("memorization").to_numpy(zero_copy_only=False),
                             table.column("english").to_numpy(zero_copy_only=False),
                             table.column("assistant_bytes").to_numpy() if weighed else None)
    per_shard: list[list[int]] = [[] for _ in mask_paths]
    removed: Counter = Counter()
    removed_bytes: Counter = Counter()
    if not digests:
        return per_shard, removed, removed_bytes
    digest = np.concatenate(digests)
    del digests
    position = np.concatenate(positions)
    del positions
    order = np.lexsort((position, digest[:, 1], digest[:, 0]))  # by content, then read order
    ordered = digest[order]
    del digest
    same = (ordered[1:, 0] == ordered[:-1, 0]) & (ordered[1:, 1] == ordered[:-1, 1])
    del ordered
    later = np.sort(position[order[1:][same]])  # every occurrence after the first of its content
    for pos in later.tolist():
        shard, row = pos >> 32, pos & 0xFFFFFFFF
        per_shard[shard].append(row)
        memorization, english, weight = categories[shard]
        cell = (bool(memorization[row]), bool(english[row]))
        removed[cell] += 1
        if weight is not None:
            removed_bytes[cell] += int(weight[row])
    return per_shard, removed, removed_bytes


def expected_shares(passing: dict, mem_keep: float, non_en_keep: float, global_keep: float) -> dict:
    """What the plan expects to keep (rows before encoding; the targets hold on average)."""
    me, mo = passing["memorization_english"], passing["memorization_other"]
    oe, oo = passing["other_english"], passing["other_other"]
    memorization = (me + mo * non_en_keep) * mem_keep
    english = me * mem_keep + oe
    kept = memorization + oe + oo * non_en_keep
    return {
        "rows": kept * global_keep,
        "memorization_share": memorization / kept if kept else None,
        "english_share": english / kept if kept else None,
    }


def check_targets(passing: dict, mem_keep: float, non_en_keep: float, params: SynthParams,
                  quality_drops: Counter | None = None) -> None:
    """Stop when no row passes quality, or when the memorization cap and the English target
    can only both hold by keeping nothing (e.g. a source of only memorization rows)."""
    me, mo = passing["memorization_english"], passing["memorization_other"]
    oe, oo = passing["other_english"], passing["other_other"]
    total = me + mo + oe + oo
    counts = (f"of the rows that pass the quality filters (duplicates excluded), {me + mo} are memorization and "
              f"{oe + oo} not, {me + oe} are English and {mo + oo} not")
    if total <= 0:
        drops = ", ".join(f"{r} {n}" for r, n in sorted((quality_drops or {}).items(), key=lambda kv: -kv[1]))
        raise ValueError(f"synth: no row passes the quality filters (dropped: {drops or 'none'}), the dataset "
                         "would be empty; check the shard list (synth.shard_list), or turn synth.result_check off "
                         "if the result check drops them")
    if expected_shares(passing, mem_keep, non_en_keep, 1.0)["rows"] < 1:
        raise ValueError(
            f"synth: the sampling targets cannot both be met: {counts}; memorization at most "
            f"{params.memorization_cap:g} of the kept rows (synth.memorization_cap, --memorization-cap) and "
            f"English at least {params.english_frac:g} (synth.english_frac, --english-frac) leave no row. "
            "Raise synth.memorization_cap (1 = no cap) or lower synth.english_frac (0 = no target)")


def write_duplicates(path: Path, shard: str, rows: Sequence[int]) -> None:
    write_json(path, {"shard": shard, "duplicate_content_rows": list(rows)})


def read_duplicates(path: Path, shard_name: str) -> frozenset[int]:
    """The `duplicate_content` rows the plan listed for `shard_name`."""
    listed = load_json(path)
    if listed["shard"] != shard_name:
        raise SourceError(f"{path}: lists the duplicates of {listed['shard']}, not of {shard_name}; rerun the plan")
    return frozenset(listed["duplicate_content_rows"])


def target_report(stats: DatasetStats, plan: dict) -> dict:
    """Each sampling target next to what the plan expected and what was written, by rows and
    by tokens. The plan's rates hold on average: the realised shares differ by chance."""
    cells = stats.categories.cells
    total = {"rows": stats.accounting.rows_written, "total_tokens": stats.total_tokens(),
             "assistant_tokens": stats.assistant_tokens()}

    def realised(name: str, value: str) -> dict:
        cell = cells.get(name, {}).get(value)
        part = {"rows": cell.written if cell else 0, "total_tokens": cell.total_tokens if cell else 0,
                "assistant_tokens": cell.assistant_tokens if cell else 0}
        return {measure: round(part[measure] / total[measure], 6) if total[measure] else None for measure in part}

    measured_by = MEASURES[plan.get("shares_by", "rows")]
    return {
        "measured_by": measured_by,
        "memorization_share": {"target_at_most": plan["memorization_cap"], "config": "synth.memorization_cap",
                               "planned_rows": _round(plan["expected"]["memorization_share"]),
                               "realised": realised("exercise", "memorization")},
        "english_share": {"target_at_least": plan["english_frac"], "config": "synth.english_frac",
                          "planned_rows": _round(plan["expected"]["english_share"]),
                          "realised": realised("language", "en")},
        "global_keep": {"target": plan["global_keep"], "config": "synth.global_keep",
                        "planned_rows": _round(plan["expected"]["rows"]),
                        "realised_rows": stats.accounting.rows_written
                        + sum(stats.accounting.drops.get(r, 0) for r in (DROP_ENCODING_ERROR, DROP_TOO_LONG))},
    }


# The realised measure each `shares_by` is judged on. A realised share may pass its target by
# chance (the rates hold on average; by tokens the plan only estimates tokens from bytes): the
# manifest warns past 0.02, or past three binomial standard deviations on a small dataset.
MEASURES = {"rows": "rows", "tokens": "assistant_tokens"}
TARGET_TOLERANCE = 0.02


def target_tolerance(target: float, rows: int) -> float:
    return max(TARGET_TOLERANCE, 3 * math.sqrt(target * (1 - target) / rows)) if rows else 1.0


def target_warnings(targets: dict, rows: int) -> list[str]:
    """A warning for a share that missed its target by more than its tolerance, in the measure
    the targets are set in (`synth.shares_by`)."""
    measure = targets["measured_by"]
    what = measure.replace("_", " ")
    found = []
    memorization = targets["memorization_share"]["realised"][measure]
    cap = targets["memorization_share"]["target_at_most"]
    if memorization is not None and memorization > cap + target_tolerance(cap, rows):
        found.append(f"memorization is {memorization:.3f} of the {what} written, above synth.memorization_cap {cap:g}")
    english = targets["english_share"]["realised"][measure]
    frac = targets["english_share"]["target_at_least"]
    if english is not None and english < frac - target_tolerance(frac, rows):
        found.append(f"English is {english:.3f} of the {what} written, below synth.english_frac {frac:g}")
    return found


def _round(value):
    return None if value is None else round(value, 6)


def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
