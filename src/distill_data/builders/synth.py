"""PleIAs/SYNTH → `synth_distill_phase1_high_550m`, in four steps that run as separate jobs:

scan (per shard, only the filter columns) → plan (sampling rates from all scans) →
encode (per shard) → finalize (fixed-size part files and the manifest).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401 (pa.ipc)
import pyarrow.parquet as pq

from ..dataset import SplitWriters, build_manifest
from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder, record_many, rows_to_table, token_columns
from ..hashing import unit_hash
from ..io import SourceError, iter_parquet_batches, iter_parquet_columns, open_parquet
from ..text import clean_text, normalize_text
from ..schema import SPLITS, example_schema, source_type
from ..stats import DatasetStats
from ..writer import assembled_aside, write_json, write_parquet

log = logging.getLogger("distill_data")

DATASET_HF = "PleIAs/SYNTH"
ID_PREFIX = "pleias_synth"
SOURCE_TYPE = source_type(["synth_id", "exercise", "language"])
SCHEMA = example_schema(SOURCE_TYPE)
CATEGORY_FIELDS = ("language", "exercise")

# Drop reasons, in the order they are tested: a row is counted under the first that applies.
DROP_MISSING_ID = "missing_id"
DROP_MISSING_QUERY = "missing_query"
DROP_EMPTY_ANSWER = "empty_answer"
DROP_FAILED_MAX_ATTEMPTS = "failed_max_attempts"
DROP_RESULT_MISMATCH = "result_mismatch"
DROP_MEMORIZATION_CAP = "memorization_cap"
DROP_ENGLISH_TARGET = "english_target"
DROP_GLOBAL_KEEP = "global_keep"
DROP_REASONS = (DROP_MISSING_ID, DROP_MISSING_QUERY, DROP_EMPTY_ANSWER, DROP_FAILED_MAX_ATTEMPTS,
                DROP_RESULT_MISMATCH, DROP_MEMORIZATION_CAP, DROP_ENGLISH_TARGET, DROP_GLOBAL_KEEP,
                DROP_ENCODING_ERROR, DROP_TOO_LONG)

SCAN_COLUMNS = ("synth_id", "language", "exercise", "query", "synthetic_answer", "constraints")
ENCODE_COLUMNS = ("synth_id", "language", "exercise", "query", "query_seed_text", "constraints",
                  "synthetic_reasoning", "synthetic_answer")
MASK_SCHEMA = pa.schema([("quality_drop", pa.string()), ("memorization", pa.bool_()), ("english", pa.bool_())])


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides the output (thread count does not)."""

    max_seq_len: int = 8192
    seed: int = 1337
    train_frac: float = 0.99
    reasoning_effort: str = "high"
    english_frac: float = 0.75
    memorization_cap: float = 0.70
    global_keep: float = 0.20
    include_seed_text: bool = True
    append_rag_sources: bool = False
    rows_per_file: int = 2000
    split_by: str = "group"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# --- quality filters -------------------------------------------------------------------------

_RESULT = re.compile(r"^\s*result\s*:(.*)$", re.S | re.I)
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPTION_PREFIX = re.compile(r"^\s*\(?[A-Ja-j][.)]\s+")
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0 ](?=\d{3}(?!\d))")


def parse_number(text: str) -> tuple[float, int] | None:
    """First number in `text` once markup, currency and thousands separators are gone:
    (value, decimals shown)."""
    text = text.replace("\u2212", "-").replace("*", "").replace("`", "")
    text = re.sub(r"[$€£¥]", "", text)
    text = _THOUSANDS.sub("", text)
    text = re.sub(r"-\s+(?=\d)", "-", text)
    match = _NUMBER.search(text)
    if not match:
        return None
    token = match.group(0)
    decimals = len(token.split(".")[1]) if "." in token else 0
    return float(token), decimals


def answer_number(answer: str) -> tuple[float, int] | None:
    """The number an answer states as its result: in its last bold span that has a number
    (`**Answer: -$195.45**`), else at the start of the answer (`B. 1`, `16020 pounds`)."""
    for span in reversed(_BOLD.findall(answer)):
        found = parse_number(span)
        if found:
            return found
    first_line = answer.strip().splitlines()[0] if answer.strip() else ""
    return parse_number(_OPTION_PREFIX.sub("", first_line))


def result_matches(expected: str, answer: str) -> bool:
    """Compare at the precision the answer shows (`0.33` matches `0.3333`)."""
    want = parse_number(expected)
    if want is None:
        return True  # nothing numeric to check against
    got = answer_number(answer)
    if got is None:
        return False
    value, decimals = got
    return math.isclose(round(want[0], decimals), value, rel_tol=1e-9, abs_tol=1e-9)


def quality_drop(synth_id, query, answer, constraints) -> str | None:
    """The first quality reason that drops a row, or None when it passes."""
    if not clean_text(synth_id):
        return DROP_MISSING_ID
    if not clean_text(query):
        return DROP_MISSING_QUERY
    answer = clean_text(answer)
    if not answer:
        return DROP_EMPTY_ANSWER
    match = _RESULT.match(constraints or "")
    if match:
        expected = match.group(1).strip()
        if "failed after maximum attempts" in expected.lower():
            return DROP_FAILED_MAX_ATTEMPTS
        if not result_matches(expected, answer):
            return DROP_RESULT_MISMATCH
    return None


# --- scan ------------------------------------------------------------------------------------

def scan_shard(path: Path, batch_size: int = 4096) -> tuple[pa.Table, dict]:
    """Per-row quality verdicts (the mask) and the counts the plan needs."""
    drops: list[str | None] = []
    memorization: list[bool] = []
    english: list[bool] = []
    for cols in iter_parquet_columns(path, SCAN_COLUMNS, batch_size, string_columns=SCAN_COLUMNS):
        for sid, lang, exercise, query, answer, constraints in zip(*(cols[c] for c in SCAN_COLUMNS)):
            drops.append(quality_drop(sid, query, answer, constraints))
            memorization.append(clean_text(exercise) == "memorization")
            english.append(clean_text(lang) == "en")
    mask = pa.table([pa.array(drops, pa.string()), pa.array(memorization), pa.array(english)], schema=MASK_SCHEMA)
    passing = Counter((m, e) for d, m, e in zip(drops, memorization, english) if d is None)
    summary = {
        "shard": Path(path).name,
        "rows": len(drops),
        "bytes": Path(path).stat().st_size,
        "quality_drops": dict(sorted(Counter(d for d in drops if d).items())),
        "passing": {
            "memorization_english": passing[(True, True)],
            "memorization_other": passing[(True, False)],
            "other_english": passing[(False, True)],
            "other_other": passing[(False, False)],
        },
    }
    return mask, summary


def write_scan(path: Path, mask_out: Path, summary_out: Path, batch_size: int) -> None:
    mask, summary = scan_shard(path, batch_size)
    Path(mask_out).parent.mkdir(parents=True, exist_ok=True)
    write_parquet(mask, Path(mask_out))
    write_json(summary_out, summary)


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


def make_plan(summaries: Sequence[dict], params: SynthParams) -> dict:
    passing = Counter()
    for summary in summaries:
        passing.update(summary["passing"])
    mem_keep, non_en_keep = solve_rates(passing, params.memorization_cap, params.english_frac)
    return {
        "passing_quality": dict(sorted(passing.items())),
        "memorization_cap": params.memorization_cap,
        "english_frac": params.english_frac,
        "mem_keep": mem_keep,
        "non_en_keep": non_en_keep,
        "global_keep": params.global_keep,
        "seed": params.seed,
    }


def sampling_drop(key: str, memorization: bool, english: bool, plan: dict) -> str | None:
    seed = plan["seed"]
    if memorization and unit_hash(key, seed, "mem") > plan["mem_keep"]:
        return DROP_MEMORIZATION_CAP
    if not english and unit_hash(key, seed, "lang") > plan["non_en_keep"]:
        return DROP_ENGLISH_TARGET
    if unit_hash(key, seed, "global") > plan["global_keep"]:
        return DROP_GLOBAL_KEEP
    return None


# --- encode ----------------------------------------------------------------------------------

def build_prompt(query: str, seed_text: str | None, exercise: str, constraints: str | None,
                 include_seed_text: bool, append_rag_sources: bool) -> str:
    prompt = clean_text(query)
    seed_text = clean_text(seed_text)
    if include_seed_text and seed_text:
        prompt += "\n\nReference:\n" + seed_text
    if append_rag_sources and exercise == "rag":
        sources = clean_text(constraints)
        if sources:
            prompt += "\n\nSources:\n" + sources
    return prompt


def encode_shard(path: Path, mask_path: Path, plan: dict, encoder: ExampleEncoder, params: SynthParams,
                 out_dir: Path, shard_name: str, batch_size: int = 4096) -> DatasetStats:
    """Encode one shard into `<out_dir>/<shard>.train.arrow` and `.validation.arrow`.

    Only the sampling decisions walk the rows in Python (on the ids); the text columns of the
    rows they keep are taken out of each Arrow batch before any Python string is made."""
    mask = pq.read_table(mask_path)
    handle = open_parquet(path, ENCODE_COLUMNS)
    if mask.num_rows != handle.metadata.num_rows:
        raise SourceError(f"{path}: has {handle.metadata.num_rows} rows but its scan {mask_path} has "
                          f"{mask.num_rows}; the shard changed after it was scanned, rerun the scan")
    verdicts = mask.column("quality_drop").to_pylist()
    memorization = mask.column("memorization").to_pylist()
    english = mask.column("english").to_pylist()
    stats = DatasetStats()
    accounting = stats.accounting
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    row = 0
    with EncodedSink({split: encoded_path(out_dir, shard_name, split) for split in SPLITS}) as sinks:
        for batch in iter_parquet_batches(path, ENCODE_COLUMNS, batch_size, string_columns=ENCODE_COLUMNS):
            n = batch.num_rows
            accounting.rows_read += n
            kept, keys = [], []
            for i, raw_id in enumerate(batch.column("synth_id").to_pylist()):
                reason = verdicts[row + i]
                if reason is None:
                    key = clean_text(raw_id)
                    reason = sampling_drop(key, memorization[row + i], english[row + i], plan)
                if reason:
                    accounting.drop(reason)
                    continue
                kept.append(i)
                keys.append(key)
            row += n
            cols = {name: batch.column(name).take(kept).to_pylist() for name in ENCODE_COLUMNS if name != "synth_id"}
            examples = []
            for j, key in enumerate(keys):
                exercise = clean_text(cols["exercise"][j])
                examples.append(Example(
                    key=key,
                    id=f"{ID_PREFIX}:{key}",
                    source={"dataset": DATASET_HF, "synth_id": key, "exercise": exercise or None,
                            "language": clean_text(cols["language"][j]) or None},
                    prompt=build_prompt(cols["query"][j], cols["query_seed_text"][j], exercise,
                                        cols["constraints"][j], params.include_seed_text,
                                        params.append_rag_sources),
                    reasoning=clean_text(cols["synthetic_reasoning"][j]),
                    final=clean_text(cols["synthetic_answer"][j]),
                    group=normalize_text(cols["query"][j]),
                ))
            written = {split: [] for split in SPLITS}
            for result in encoder.encode(examples) if examples else ():
                if isinstance(result, str):
                    accounting.drop(result)
                else:
                    written[result.split].append(result)
            for split in SPLITS:
                if written[split]:
                    record_many(stats, written[split], CATEGORY_FIELDS)
                    sinks.write(split, rows_to_table(written[split], SCHEMA))
            log.info("%s: %d of %d rows read, %d written", shard_name, row, len(verdicts), accounting.rows_written)
    accounting.check(str(path))
    return stats


def encoded_path(out_dir: Path, shard_name: str, split: str) -> Path:
    return Path(out_dir) / f"{Path(shard_name).stem}.{split}.arrow"


# The encoded rows of a shard wait for finalize as uncompressed Arrow IPC files: written and read
# back (memory-mapped) without any decoding, so that parquet encoding and compression happen once,
# in finalize, into the published part files. `labels` and `attention_mask` follow from
# `input_ids` and `spans` and are not stored.
ENCODED_SCHEMA = pa.schema([f for f in SCHEMA if f.name not in ("labels", "attention_mask")])


class EncodedSink:
    """One Arrow IPC file per split, written batch by batch and moved into place on success."""

    def __init__(self, paths: dict):
        self.paths = {key: Path(path) for key, path in paths.items()}
        self._files: dict = {}
        self._writers: dict = {}

    def __enter__(self) -> "EncodedSink":
        for key, path in self.paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[key] = pa.OSFile(str(path.with_name(path.name + ".partial")), "wb")
            self._writers[key] = pa.ipc.new_file(self._files[key], ENCODED_SCHEMA)
        return self

    def write(self, key, table: pa.Table) -> None:
        self._writers[key].write_table(table.select(ENCODED_SCHEMA.names).cast(ENCODED_SCHEMA))

    def __exit__(self, exc_type, exc, tb) -> None:
        for key in self.paths:
            self._writers[key].close()
            self._files[key].close()
        for path in self.paths.values():
            partial = path.with_name(path.name + ".partial")
            if exc_type is None:
                os.replace(partial, path)
            else:
                partial.unlink(missing_ok=True)


def read_encoded(path: Path, batch_rows: int) -> Iterator[pa.Table]:
    """The rows an encode job wrote, in order, as tables of the output schema (at most
    `batch_rows` rows each), memory-mapped: nothing is decoded."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        if reader.schema != ENCODED_SCHEMA:
            raise SourceError(f"{path}: not an encoded SYNTH shard of this version (schema {reader.schema}); "
                              "rerun its encode job")
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            for start in range(0, batch.num_rows, batch_rows):
                yield with_token_columns(batch.slice(start, batch_rows))


def with_token_columns(batch: pa.RecordBatch) -> pa.Table:
    """The full output row (SCHEMA) of an encoded batch: labels and attention_mask rebuilt."""
    ids = batch.column("input_ids")
    offsets = ids.offsets.to_numpy().astype(np.int64)
    values = ids.values.to_numpy()
    offsets, values = offsets - offsets[0], values[offsets[0]:offsets[-1]]
    starts = pc.struct_field(batch.column("spans"), "assistant_token_start").to_numpy().astype(np.int64)
    tokens = token_columns(values, offsets, starts)
    columns = [tokens[name] if name in tokens else batch.column(name) for name in SCHEMA.names]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


# --- finalize --------------------------------------------------------------------------------

def finalize(*, dataset: str, dataset_dir: Path, shard_names: Sequence[str], encoded_dir: Path,
             scan_summaries: Sequence[dict], shard_stats: Sequence[DatasetStats], plan: dict,
             params: SynthParams, tokenizer, input_paths: Sequence[Path], threads: int = 1) -> dict:
    """Write the encoded shards, in shard-list order, as the published part files."""
    stats = DatasetStats()
    for shard_stat in shard_stats:
        stats.merge(shard_stat)
    inputs = [{"path": str(p), "bytes": s["bytes"], "rows": s["rows"]} for p, s in zip(input_paths, scan_summaries)]
    with assembled_aside(dataset_dir) as scratch:
        writers = SplitWriters(scratch, SCHEMA, params.rows_per_file, threads=threads)
        seen_ids: set[str] = set()  # ids are unique within a dataset; shards are encoded apart
        for name in shard_names:
            for split in SPLITS:
                for table in read_encoded(encoded_path(encoded_dir, name, split), params.rows_per_file):
                    check_unique(table.column("id").to_pylist(), seen_ids, name)
                    writers.write(split, table)
        files = writers.close()
        manifest = build_manifest(
            dataset=dataset, builder="synth", params=params.to_dict(), tokenizer=tokenizer,
            inputs=inputs, stats=stats, files=files,
            extra={"sampling_plan": plan, "drop_reasons": list(DROP_REASONS)},
        )
        write_json(scratch / "manifest.json", manifest)
    return manifest


def check_unique(ids: list[str], seen: set[str], shard_name: str) -> None:
    """Stop the build on a repeated id rather than publish it twice."""
    for row_id in ids:
        if row_id in seen:
            raise SourceError(f"{shard_name}: {row_id} appears in more than one row of the subset (ids "
                              "must be unique within a dataset); is one shard listed twice under two names?")
        seen.add(row_id)


def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
