"""PleIAs/SYNTH → `synth_distill_phase1_high_550m`, in four steps that run as separate jobs:

scan (per shard, only the filter columns) → plan (sampling rates from all scans) →
encode (per shard) → finalize (fixed-size part files and the manifest).
"""

from __future__ import annotations

import logging
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

from ..dataset import SplitWriters, build_manifest, require_train_rows
from ..decontam import match as decontam
from ..encode import (DROP_DUPLICATE_CONTENT, DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder, record_many,
                      rows_to_table, token_columns)
from ..hashing import content_digest
from ..io import SourceError, describe, iter_parquet_batches, iter_parquet_columns, open_parquet
from ..progress import Progress
from ..text import clean_text, normalize_text
from ..schema import SPLITS, example_schema, source_type
from ..stats import DatasetStats
from ..writer import assembled_aside, write_json, write_parquet
from .synth_check import DROP_NO_RESULT_STATED, DROP_RESULT_MISMATCH, check_result
from .synth_plan import (DROP_ENGLISH_TARGET, DROP_GLOBAL_KEEP, DROP_MEMORIZATION_CAP, passing_counts, sampling_drop,
                         target_report, target_warnings)

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
DROP_REASONS = (DROP_MISSING_ID, DROP_MISSING_QUERY, DROP_EMPTY_ANSWER, DROP_FAILED_MAX_ATTEMPTS,
                DROP_RESULT_MISMATCH, DROP_NO_RESULT_STATED, DROP_DUPLICATE_CONTENT, DROP_MEMORIZATION_CAP,
                DROP_ENGLISH_TARGET, DROP_GLOBAL_KEEP, DROP_ENCODING_ERROR, DROP_TOO_LONG)

SCAN_COLUMNS = ("synth_id", "language", "exercise", "query", "synthetic_answer", "constraints")
# What the row's assistant tokens are estimated from when the targets hold by tokens
# (`shares_by: tokens`): the UTF-8 bytes of its reasoning and answer, read by the scan.
WEIGHT_COLUMNS = ("synthetic_reasoning", "synthetic_answer")
# How the memorization cap and the English target are measured: share of the kept rows, or of
# their assistant tokens (estimated at plan time from bytes; the manifest reports both realised).
SHARES_BY = ("rows", "tokens")
ENCODE_COLUMNS = ("synth_id", "language", "exercise", "query", "query_seed_text", "constraints",
                  "synthetic_reasoning", "synthetic_answer")
# Per row: the quality verdict, the plan's categories, and (rows passing quality only) the
# content digest that `duplicate_content` is decided on.
MASK_SCHEMA = pa.schema([("quality_drop", pa.string()), ("memorization", pa.bool_()), ("english", pa.bool_()),
                         ("content", pa.binary(16))])
# Reasons that are sampling decisions by design, not filters: never a warning.
SAMPLING_REASONS = (DROP_MEMORIZATION_CAP, DROP_ENGLISH_TARGET, DROP_GLOBAL_KEEP)
# The order the reasons are tested in (result_mismatch / no_result_stated are one test).
DROP_STAGES = (DROP_MISSING_ID, DROP_MISSING_QUERY, DROP_EMPTY_ANSWER, DROP_FAILED_MAX_ATTEMPTS,
               (DROP_RESULT_MISMATCH, DROP_NO_RESULT_STATED), DROP_DUPLICATE_CONTENT, DROP_MEMORIZATION_CAP,
               DROP_ENGLISH_TARGET, DROP_GLOBAL_KEEP, (DROP_ENCODING_ERROR, DROP_TOO_LONG))


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
    result_check: bool = True
    shares_by: str = "rows"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# --- quality filters -------------------------------------------------------------------------

_RESULT = re.compile(r"^\s*result\s*:(.*)$", re.S | re.I)


def quality_drop(synth_id, query, answer, constraints, exercise=None, result_check: bool = True) -> str | None:
    """The first quality reason that drops a row, or None when it passes. The result check
    (``synth_check.check_result``) runs when `result_check` is on."""
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
        if result_check:
            return check_result(expected, answer, exercise=clean_text(exercise), query=clean_text(query))
    return None


# --- scan ------------------------------------------------------------------------------------

def scan_shard(path: Path, batch_size: int = 4096, result_check: bool = True,
               weigh: bool = False, matcher: decontam.Matcher | None = None) -> tuple[pa.Table, dict]:
    """Per-row quality verdicts (the mask) and the counts the plan needs; with `weigh`, also each
    row's assistant bytes (mask column `assistant_bytes`, summary `passing_bytes`). With `matcher`,
    a row passing the quality filters whose query (prompt), synthetic_reasoning (analysis, read
    only when compared) or synthetic_answer (final) shares an n-gram with a benchmark gets
    `benchmark_<name>` as its verdict, so the plan's rates are computed without it."""
    columns = (*SCAN_COLUMNS, "synthetic_reasoning") if matcher and "analysis" in matcher.compare else SCAN_COLUMNS
    findings = decontam.Findings(matcher) if matcher else None
    drops: list[str | None] = []
    memorization: list[bool] = []
    english: list[bool] = []
    progress = Progress(f"scan {Path(path).name}", total_rows=open_parquet(path, SCAN_COLUMNS).metadata.num_rows)
    contents: list[bytes | None] = []
    for cols in iter_parquet_columns(path, columns, batch_size, string_columns=columns):
        progress.update(len(cols["synth_id"]))
        first = len(drops)
        for sid, lang, exercise, query, answer, constraints in zip(*(cols[c] for c in SCAN_COLUMNS)):
            verdict = quality_drop(sid, query, answer, constraints, exercise, result_check)
            drops.append(verdict)
            memorization.append(clean_text(exercise) == "memorization")
            english.append(clean_text(lang) == "en")
            contents.append(content_of(query, answer) if verdict is None else None)
        if findings:
            flag_benchmarks(findings, Path(path).name, cols, first, drops, contents)
    progress.done()
    mask = pa.table([pa.array(drops, pa.string()), pa.array(memorization, pa.bool_()),
                     pa.array(english, pa.bool_()), pa.array(contents, pa.binary(16))], schema=MASK_SCHEMA)
    passing = Counter((m, e) for d, m, e in zip(drops, memorization, english) if d is None)
    summary = {
        "shard": Path(path).name,
        "rows": len(drops),
        "bytes": Path(path).stat().st_size,
        "quality_drops": dict(sorted(Counter(d for d in drops if d).items())),
        "passing": passing_counts(passing),
    }
    if weigh:
        weights = assistant_bytes(path, batch_size)
        mask = mask.append_column("assistant_bytes", pa.array(weights))
        passing_bytes = Counter()
        for d, m, e, w in zip(drops, memorization, english, weights.tolist()):
            if d is None:
                passing_bytes[(m, e)] += w
        summary["passing_bytes"] = passing_counts(passing_bytes)
    if findings:
        summary["decontamination"] = findings.section()
    return mask, summary


def assistant_bytes(path: Path, batch_size: int) -> np.ndarray:
    """Each row's reasoning and answer in UTF-8 bytes (a missing text counts 0), from Arrow's
    lengths: no Python string is made."""
    handle = open_parquet(path, WEIGHT_COLUMNS)
    parts = []
    for batch in handle.iter_batches(batch_size=batch_size, columns=list(WEIGHT_COLUMNS)):
        total = np.zeros(batch.num_rows, np.int64)
        for name, column in zip(WEIGHT_COLUMNS, batch.columns):
            try:
                lengths = pc.binary_length(column)
            except pa.ArrowNotImplementedError:
                raise SourceError(f"{describe(path)}: column {name} is {column.type}, not text") from None
            total += pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        parts.append(total)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def flag_benchmarks(findings: decontam.Findings, shard: str, cols: dict, first: int, drops: list, contents: list) -> None:
    """Turn the batch's passing rows that overlap a benchmark into `benchmark_<name>` drops."""
    rows = [i for i in range(len(cols["synth_id"])) if drops[first + i] is None]
    reasoning = cols.get("synthetic_reasoning") or [None] * len(cols["synth_id"])
    parts = [{"prompt": [cols["query"][i]], "analysis": [reasoning[i]], "final": [cols["synthetic_answer"][i]]}
             for i in rows]
    for i, match in zip(rows, findings.matcher.check(parts)):
        if match is None:
            continue
        drops[first + i], contents[first + i] = match.reason, None
        where = {"file": shard, "row": first + i, "id": f"{ID_PREFIX}:{clean_text(cols['synth_id'][i])}"}
        if findings.add(match, where):
            log.info("benchmark overlap (%s) %s row %d, %s: %r", match.reason, shard, first + i, match.part, match.ngram)


def content_of(query, answer) -> bytes:
    """What `duplicate_content` compares: the normalized query and answer."""
    return content_digest(normalize_text(query), normalize_text(answer))


def write_scan(path: Path, mask_out: Path, summary_out: Path, batch_size: int, result_check: bool = True,
               weigh: bool = False, matcher: decontam.Matcher | None = None) -> None:
    mask, summary = scan_shard(path, batch_size, result_check, weigh, matcher)
    Path(mask_out).parent.mkdir(parents=True, exist_ok=True)
    write_parquet(mask, Path(mask_out))
    write_json(summary_out, summary)


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
                 out_dir: Path, shard_name: str, batch_size: int = 4096,
                 duplicates: frozenset[int] = frozenset()) -> DatasetStats:
    """Encode one shard into `<out_dir>/<shard>.train.arrow` and `.validation.arrow`;
    `duplicates` are its `duplicate_content` rows (the plan's ``find_duplicates``).

    The drop decisions walk the rows in Python on the short columns (id, exercise, language);
    the text columns of the rows they keep are taken out of each Arrow batch before any Python
    string is made of them."""
    mask = pq.read_table(mask_path)
    handle = open_parquet(path, ENCODE_COLUMNS)
    if mask.num_rows != handle.metadata.num_rows:
        raise SourceError(f"{describe(path)}: has {handle.metadata.num_rows} rows but its scan {mask_path} has "
                          f"{mask.num_rows}; the shard changed after it was scanned, rerun the scan")
    verdicts = mask.column("quality_drop").to_pylist()
    memorization = mask.column("memorization").to_pylist()
    english = mask.column("english").to_pylist()
    stats = DatasetStats()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    row = 0
    text_columns = ("query", "query_seed_text", "constraints", "synthetic_reasoning", "synthetic_answer")
    progress = Progress(f"encode {shard_name} (rows read, tokens written)", total_rows=len(verdicts))
    with EncodedSink({split: encoded_path(out_dir, shard_name, split) for split in SPLITS}) as sinks:
        for batch in iter_parquet_batches(path, ENCODE_COLUMNS, batch_size, string_columns=ENCODE_COLUMNS):
            n = batch.num_rows
            stats.accounting.rows_read += n
            ids, exercises, languages = (batch.column(c).to_pylist() for c in ("synth_id", "exercise", "language"))
            kept, keys, kept_categories = [], [], []
            for i in range(n):
                key = clean_text(ids[i])
                categories = row_categories(exercises[i], languages[i])
                reason = row_drop(row + i, key, verdicts, memorization, english, duplicates, plan)
                if reason:
                    stats.drop(reason, categories)
                    continue
                kept.append(i)
                keys.append(key)
                kept_categories.append(categories)
            row += n
            cols = {name: batch.column(name).take(kept).to_pylist() for name in text_columns}
            examples = []
            for j, key in enumerate(keys):
                exercise = clean_text(exercises[kept[j]])
                examples.append(Example(
                    key=key,
                    id=f"{ID_PREFIX}:{key}",
                    source={"dataset": DATASET_HF, "synth_id": key, **kept_categories[j]},
                    prompt=build_prompt(cols["query"][j], cols["query_seed_text"][j], exercise,
                                        cols["constraints"][j], params.include_seed_text,
                                        params.append_rag_sources),
                    reasoning=clean_text(cols["synthetic_reasoning"][j]),
                    final=clean_text(cols["synthetic_answer"][j]),
                    group=normalize_text(cols["query"][j]),
                ))
            written = {split: [] for split in SPLITS}
            for example, result in zip(examples, encoder.encode(examples) if examples else ()):
                if isinstance(result, str):
                    stats.drop(result, {name: example.source[name] for name in CATEGORY_FIELDS})
                else:
                    written[result.split].append(result)
            for split in SPLITS:
                if written[split]:
                    record_many(stats, written[split], CATEGORY_FIELDS)
                    sinks.write(split, rows_to_table(written[split], SCHEMA))
            progress.update(n, sum(r.total_tokens for rows in written.values() for r in rows))
    progress.done()
    stats.accounting.check(str(path))
    return stats


def row_categories(exercise, language) -> dict:
    """The categories a row is counted under (its `source` fields; None when missing)."""
    return {"exercise": clean_text(exercise) or None, "language": clean_text(language) or None}


def row_drop(row: int, key: str, verdicts, memorization, english, duplicates: frozenset[int], plan: dict) -> str | None:
    """The reason a row is dropped before encoding: quality, then duplicate_content, then sampling."""
    if verdicts[row] is not None:
        return verdicts[row]
    if row in duplicates:
        return DROP_DUPLICATE_CONTENT
    return sampling_drop(key, memorization[row], english[row], plan)


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
    """Write the encoded shards, in shard-list order, as the published part files (compressed
    once, on `threads` threads)."""
    decontamination = decontam.merge_sections([s.get("decontamination") for s in scan_summaries], "SYNTH scans")
    stats = DatasetStats()
    for shard_stat in shard_stats:
        stats.merge(shard_stat)
    require_train_rows(dataset, stats, EMPTY_HINT)
    # Names in the subset folder, not machine paths: moving the folder changes no byte.
    inputs = [{"path": Path(p).name, "bytes": s["bytes"], "rows": s["rows"]} for p, s in zip(input_paths, scan_summaries)]
    targets = target_report(stats, plan)
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
            inputs=inputs, stats=stats, files=files, dataset_dir=scratch,
            drop_stages=drop_stages(decontamination), sampling_reasons=SAMPLING_REASONS,
            warnings=target_warnings(targets, stats.accounting.rows_written),
            extra={"sampling_plan": plan, "drop_reasons": drop_reasons(decontamination), "targets": targets,
                   **({"decontamination": decontamination} if decontamination else {})},
        )
        write_json(scratch / "manifest.json", manifest)
    return manifest


def drop_reasons(decontamination: dict | None) -> list[str]:
    """The reasons in test order: quality filters, benchmark overlaps (when checked), the rest."""
    benchmarks = [b["reason"] for b in decontamination["benchmarks"]] if decontamination else []
    at = DROP_REASONS.index(DROP_DUPLICATE_CONTENT)
    return [*DROP_REASONS[:at], *benchmarks, *DROP_REASONS[at:]]


def drop_stages(decontamination: dict | None) -> tuple:
    if not decontamination:
        return DROP_STAGES
    at = DROP_STAGES.index(DROP_DUPLICATE_CONTENT)
    return (*DROP_STAGES[:at], tuple(b["reason"] for b in decontamination["benchmarks"]), *DROP_STAGES[at:])


EMPTY_HINT = ("Keep more rows: raise synth.global_keep (--global-keep), synth.memorization_cap or lower "
              "synth.english_frac, or turn synth.result_check off; check the shard list and the drops above")


def check_unique(ids: list[str], seen: set[str], shard_name: str) -> None:
    """Stop the build on a repeated id rather than publish it twice."""
    for row_id in ids:
        if row_id in seen:
            raise SourceError(f"{shard_name}: {row_id} appears in more than one row of the subset (ids "
                              "must be unique within a dataset); is one shard listed twice under two names?")
        seen.add(row_id)
