"""The budgeted builders' shared driver (code, math, chat).

A source (``builders/opencode.py``, ``nemotron.py``, ``oasst2.py``) turns raw rows into
*candidates*, in a fixed read order: an ``Example`` to encode, or the name of the reason it is
dropped. This module does everything else: it encodes a batch at a time, walks the results in
read order, counts every drop, writes the kept rows, and stops right after the row whose
cumulative total tokens (``len(input_ids)``, both splits) reach ``target_total_tokens``. That
row is the last one taken; the rest of its batch and everything after it count as *not read*,
never as dropped. Batches only group the work: the crossing row is defined by read order, so
the output is the same for any batch size and any tokenizer thread count.
"""

from __future__ import annotations

import argparse
import gc
import glob
import logging
import os
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import pyarrow as pa

from .cli import add_encoding_args, make_encoder
from .dataset import SplitWriters, build_manifest, write_build_info
from .decontam import match as decontam
from .encode import (DROP_DUPLICATE_CONTENT, DROP_ENCODING_ERROR, DROP_TOO_LONG, EncodedExample, Example,
                     ExampleEncoder, record_many, rows_to_table)
from .io import SourceError
from .progress import Progress
from .schema import SPLITS
from .spread import ORDERS, PositionHistogram, check_order
from .stats import DatasetStats
from .writer import assembled_aside, write_json

log = logging.getLogger("distill_data")

# How many dropped rows per reason the manifest names (file and row/line), as a sample log.
DROP_SAMPLES_PER_REASON = 5
# Ids are unique within a dataset (CONTRACT.md): a later row with the id of a row already
# written (a repeated source id, or identical content hashed to the same id) is dropped.
DROP_DUPLICATE_ID = "duplicate_id"
# Reasons the driver itself gives, whatever the source.
DRIVER_DROP_REASONS = (DROP_DUPLICATE_CONTENT, DROP_DUPLICATE_ID)
# The order the driver tests an example (the drops whose category is known, for
# `drops_by_category`): duplicate content, then encoding, then a repeated id.
DRIVER_DROP_STAGES = (DROP_DUPLICATE_CONTENT, (DROP_ENCODING_ERROR, DROP_TOO_LONG), DROP_DUPLICATE_ID)
# Sampling decisions by design, never a warning.
SAMPLING_REASONS = ("english_target",)
OUTPUT_ROOT = "/data/distillation_1"


class TargetError(ValueError):
    """A target cannot be met, or the build would write an empty dataset: the message gives
    the numbers and the config keys to change. Nothing is written."""


@dataclass(frozen=True)
class Drop:
    """A dropped row with a short explanation for the sample log (a plain reason string is
    enough when there is nothing more to say)."""

    reason: str
    detail: str = ""
    categories: dict | None = None  # the row's category fields, when known (drops by category)
    match: tuple[decontam.Match, str] | None = None  # a benchmark overlap: what matched, the row's id


Candidate = Union[Example, str, Drop]


def with_categories(item: Candidate, categories: dict) -> Candidate:
    """A source's own drop, tagged with the row's category fields so that the manifest's
    `drops_by_category` (and its warnings) covers it; an example is returned as it is."""
    if isinstance(item, Example):
        return item
    reason, detail = (item.reason, item.detail) if isinstance(item, Drop) else (item, "")
    return Drop(reason, detail, categories)


@dataclass
class Batch:
    """Consecutive candidates of one input file, in read order."""

    file: int                      # index into the source's `files`
    positions: Sequence[int]       # each candidate's row (0-based) or line (1-based) in the file
    items: Sequence[Candidate]
    # Byte offset just after each candidate (JSON lines): lets the manifest say how much of a
    # partly read file was left.
    ends: Sequence[int] | None = None
    # Raised once the driver has taken every candidate of the batch, never if the budget stopped
    # it earlier: a source fails at a fixed point of the read order, whatever the batch size.
    error_after: Exception | None = None


@dataclass(frozen=True)
class StopPoint:
    """The row that crossed the budget: the last one taken."""

    file: int
    position: int
    end: int | None = None


@dataclass(frozen=True)
class BudgetParams:
    """What decides a budgeted build's output (threads and batch size do not)."""

    target_total_tokens: int
    max_seq_len: int = 8192
    seed: int = 1337
    train_frac: float = 0.99
    reasoning_effort: str = "high"
    rows_per_file: int = 2000
    split_by: str = "group"
    # The fixed order rows are taken in (spread.py): the source's own, or seeded blocks.
    order: str = "head"

    def to_dict(self) -> dict:
        return asdict(self)


class BudgetSource(ABC):
    """One raw source as the driver sees it; subclasses hold only source-specific parts."""

    builder: str                   # short builder name, in the manifest
    schema: pa.Schema              # output rows (its `source` struct differs per builder)
    category_fields: Sequence[str]  # source fields whose distribution the manifest reports
    drop_reasons: Sequence[str]    # every reason this source (and the encoder) can give
    position_name = "row"          # positions count parquet rows (0-based) or lines (1-based)
    rows_meaning = "rows of the input files"
    # The source's own filters that remove many rows by design (its purpose, e.g. perfect tests
    # only): like sampling decisions, they never raise a `warnings` entry.
    by_design_reasons: Sequence[str] = ()
    # What to change when the build would have no train rows (see ``check_not_empty``).
    empty_hint = "check the input folder and the builder's filters; common.train_frac sets the validation share"

    def __init__(self, files: Sequence[str | os.PathLike]):
        self.files = [Path(p) for p in files]
        self.names = relative_names(self.files)  # what the manifest records: no machine paths

    @abstractmethod
    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Candidates in read order, a batch at a time."""

    @abstractmethod
    def describe_inputs(self, rows_read: Sequence[int], stop: StopPoint | None) -> list[dict]:
        """The manifest's `inputs`: each file, in the order read, with its size and rows."""

    @abstractmethod
    def describe_not_read(self, rows_read: Sequence[int], stop: StopPoint | None) -> dict:
        """What the budget left unread, and what the number means."""

    def read_order(self) -> dict:
        """The manifest's description of the read order (`positions`): order and block."""
        return {"order": "head"}

    @property
    def position_unit(self) -> str:
        return "rows"

    @abstractmethod
    def position_extents(self) -> Sequence[int]:
        """Each file's extent in `position_unit` (the histogram of positions spans their sum)."""

    def source_position(self, batch: Batch, i: int) -> int:
        """Where candidate `i` of the batch sits in its file, in `position_unit` (0-based)."""
        return batch.positions[i]

    def check_stop(self, stop: StopPoint) -> None:
        """Called when the budget ended reading at `stop`: raise if what was read breaks a
        source limit that is otherwise judged at a file's end (e.g. math's bad-line share)."""

    def manifest_extra(self) -> dict:
        """Source-specific manifest keys (e.g. a sampling plan)."""
        return {}

    def on_written(self, row: EncodedExample) -> None:
        """Called for every row written, in read order (e.g. to report a target as realised)."""

    def write_extra_files(self, dataset_dir: Path) -> None:
        """Source-specific files next to the manifest (e.g. the shard order)."""


def relative_names(files: Sequence[Path]) -> list[str]:
    """Each file relative to the folder that holds them all (the configured input folder, or the
    common parent of the configured files): the manifest stays the same when that folder moves."""
    if not files:
        return []
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in files])
    return [os.path.relpath(os.path.abspath(p), root) for p in files]


class CountedSource(BudgetSource):
    """A source whose rows per file are known before reading (parquet metadata, or replies
    found by a first pass), so that what the budget left unread is an exact row count."""

    @property
    @abstractmethod
    def file_rows(self) -> Sequence[int]:
        """Rows (in the sense of `rows_meaning`) of each file, in read order."""

    def position_extents(self):
        return self.file_rows

    def describe_inputs(self, rows_read, stop):
        return [
            {"path": name, "bytes": path.stat().st_size, "rows": total, "rows_read": done,
             "read": read_status(done, total)}
            for path, name, total, done in zip(self.files, self.names, self.file_rows, rows_read)
        ]

    def describe_not_read(self, rows_read, stop):
        unread = [total - done for total, done in zip(self.file_rows, rows_read)]
        return {
            "rows": sum(unread),
            "bytes": None,
            "meaning": "rows (see rows_read_meaning) never read because the token budget was "
                       "reached; exact, counted from the files' row counts",
            "files": [{"path": name, "rows": n} for name, n in zip(self.names, unread) if n],
        }


def read_status(done: int, total: int | None) -> str:
    if total is not None and done >= total:
        return "complete"
    return "partial" if done else "not_read"


# --- the driver -------------------------------------------------------------------------------

@dataclass
class _Run:
    """The running state of one build: counts, tokens so far, and where it stopped."""

    source: BudgetSource
    encoder: ExampleEncoder
    writers: SplitWriters
    target: int
    stats: DatasetStats = field(default_factory=DatasetStats)
    total_tokens: int = 0
    stop: StopPoint | None = None
    rows_read: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    written_ids: set = field(default_factory=set)
    seen_content: set = field(default_factory=set)
    findings: decontam.Findings | None = None  # benchmark decontamination, when configured
    positions: PositionHistogram | None = None

    def consume(self, batch: Batch) -> bool:
        """Take the batch's candidates in order; True once the budget is reached."""
        items = [self._unless_duplicate(c) for c in self._unless_contaminated(batch.items)]
        batch = Batch(batch.file, batch.positions, items, batch.ends, batch.error_after)
        examples = [c for c in batch.items if isinstance(c, Example)]
        encoded = iter(self.encoder.encode(examples) if examples else ())
        kept: dict[str, list[EncodedExample]] = {split: [] for split in SPLITS}
        for i, item in enumerate(batch.items):
            self.rows_read[batch.file] += 1
            self.stats.accounting.rows_read += 1
            if isinstance(item, Example):
                example, item = item, next(encoded)
                if isinstance(item, str):  # encoding_error, too_long
                    item = Drop(item, categories=self._categories(example))
            if isinstance(item, EncodedExample) and item.example.id in self.written_ids:
                item = Drop(DROP_DUPLICATE_ID, item.example.id, self._categories(item.example))
            if not isinstance(item, EncodedExample):
                self._drop(item, batch, i)
                self._place(batch, i, written=False)
                continue
            self.written_ids.add(item.example.id)
            self.source.on_written(item)
            kept[item.split].append(item)
            self._place(batch, i, written=True)
            self.total_tokens += item.total_tokens
            if self.total_tokens >= self.target:
                self.stop = StopPoint(batch.file, batch.positions[i], batch.ends[i] if batch.ends else None)
                break
        for split, rows in kept.items():
            if rows:
                record_many(self.stats, rows, self.source.category_fields)
                self.writers.write(split, rows_to_table(rows, self.source.schema))
        if self.stop is None and batch.error_after is not None:
            raise batch.error_after
        return self.stop is not None

    def _unless_contaminated(self, items: Sequence[Candidate]) -> list[Candidate]:
        """Examples sharing an n-gram with a benchmark become `benchmark_<name>` drops, decided
        before encoding and before the duplicate test, so they never count toward the budget."""
        items = list(items)
        if self.findings is None:
            return items
        at = [i for i, c in enumerate(items) if isinstance(c, Example)]
        for i, match in zip(at, self.findings.matcher.check([decontam.example_parts(items[i]) for i in at])):
            if match is not None:
                items[i] = Drop(match.reason, f"{match.part}: {match.ngram}", self._categories(items[i]),
                                (match, items[i].id))
        return items

    def _place(self, batch: Batch, i: int, written: bool) -> None:
        if self.positions is not None:
            self.positions.add(batch.file, self.source.source_position(batch, i), written)

    def _unless_duplicate(self, item: Candidate) -> Candidate:
        """An example whose content was seen earlier in read order is `duplicate_content`
        (decided before encoding: an identical row would encode identically). Rows after the
        budget's crossing row are never read, so marking them seen changes nothing."""
        if not isinstance(item, Example) or item.content is None:
            return item
        if item.content in self.seen_content:
            return Drop(DROP_DUPLICATE_CONTENT, item.id, self._categories(item))
        self.seen_content.add(item.content)
        return item

    def _categories(self, example: Example) -> dict:
        return {name: example.source.get(name) for name in self.source.category_fields}

    def _drop(self, item: str | Drop, batch: Batch, i: int) -> None:
        reason, detail = (item.reason, item.detail) if isinstance(item, Drop) else (item, "")
        if isinstance(item, Drop) and item.match is not None:
            self._record_match(*item.match, batch, i)
        elif reason not in self.source.drop_reasons and reason not in DRIVER_DROP_REASONS:
            raise RuntimeError(f"{self.source.builder}: drop reason {reason!r} is not one of "
                               f"{list(self.source.drop_reasons)} (a bug in the builder)")
        self.stats.drop(reason, item.categories if isinstance(item, Drop) else None)
        sample = self.samples.setdefault(reason, [])
        if len(sample) < DROP_SAMPLES_PER_REASON:
            where = {"file": self.source.names[batch.file], self.source.position_name: batch.positions[i]}
            if detail:
                where["detail"] = detail
            sample.append(where)
            log.info("dropped (%s) %s %s %d%s", reason, where["file"], self.source.position_name,
                     batch.positions[i], f": {detail}" if detail else "")

    def _record_match(self, match: decontam.Match, row_id: str, batch: Batch, i: int) -> None:
        where = {"file": self.source.names[batch.file], self.source.position_name: batch.positions[i], "id": row_id}
        if self.findings.add(match, where):
            log.info("benchmark overlap (%s) %s %s %d, %s: %r", match.reason, where["file"],
                     self.source.position_name, batch.positions[i], match.part, match.ngram)

    def budget_report(self) -> dict:
        stopped_at = None
        if self.stop is not None:
            stopped_at = {"file": self.source.names[self.stop.file],
                          self.source.position_name: self.stop.position}
        return {
            "target_total_tokens": self.target,
            "total_tokens": self.total_tokens,
            "exhausted": self.stop is None,
            "stopped_at": stopped_at,
        }


def build(source: BudgetSource, encoder: ExampleEncoder, params: BudgetParams, *, dataset: str,
          dataset_dir: Path, batch_size: int = 4096, matcher: decontam.Matcher | None = None) -> dict:
    """Build `dataset_dir` (assembled aside, swapped in on success) and return its manifest.
    With `matcher`, rows overlapping a benchmark are dropped before encoding (``decontam``)."""
    check_encoder(encoder, params)
    with assembled_aside(Path(dataset_dir)) as scratch:
        # part files are compressed on the tokenizer's threads while the next batch is read
        writers = SplitWriters(scratch, source.schema, params.rows_per_file, threads=encoder.renderer.num_threads)
        run = _Run(source, encoder, writers,
                   params.target_total_tokens, rows_read=[0] * len(source.files),
                   findings=decontam.Findings(matcher) if matcher else None,
                   positions=PositionHistogram(source.position_unit, source.position_extents(),
                                               source.read_order()))
        batches = source.batches(batch_size)
        progress = Progress(f"{dataset}: rows read", total_tokens=params.target_total_tokens)
        try:
            for batch in batches:
                before = (run.stats.accounting.rows_read, run.total_tokens)
                stop = run.consume(batch)
                progress.update(run.stats.accounting.rows_read - before[0], run.total_tokens - before[1])
                if stop:
                    break
        finally:
            batches.close()  # lets the source close its files when the budget stopped it early
        progress.done()
        if run.stop is not None:
            source.check_stop(run.stop)
        check_not_empty(run, dataset)
        files = run.writers.close()
        manifest = build_manifest(
            dataset=dataset, builder=source.builder, params=params.to_dict(),
            tokenizer=encoder.renderer.tokenizer,
            inputs=source.describe_inputs(run.rows_read, run.stop), stats=run.stats, files=files,
            dataset_dir=scratch, drop_stages=drop_stages(source, matcher.reasons if matcher else ()),
            sampling_reasons=(*SAMPLING_REASONS, *source.by_design_reasons),
            extra={
                "budget": run.budget_report(),
                "positions": run.positions.report(),
                "not_read": source.describe_not_read(run.rows_read, run.stop),
                "rows_read_meaning": source.rows_meaning,
                "drop_reasons": [*source.drop_reasons, *(matcher.reasons if matcher else ()), *DRIVER_DROP_REASONS],
                "drop_samples": {k: run.samples[k] for k in sorted(run.samples)},
                **({"decontamination": run.findings.section()} if matcher else {}),
                **source.manifest_extra(),
            },
        )
        source.write_extra_files(scratch)
        write_json(scratch / "manifest.json", manifest)
    log_summary(manifest)
    return manifest


def check_not_empty(run: _Run, dataset: str) -> None:
    """A dataset without train rows is useless to a trainer: stop, giving the numbers."""
    acc = run.stats.accounting
    if acc.written["train"]:
        return
    drops = ", ".join(f"{reason} {n}" for reason, n in sorted(acc.drops.items())) or "none"
    raise TargetError(
        f"{dataset}: the build would write 0 train rows (rows read {acc.rows_read}, written: train 0, "
        f"validation {acc.written['validation']}; dropped: {drops}); nothing was written. "
        f"{run.source.empty_hint}")


def drop_stages(source: BudgetSource, benchmarks: Sequence[str] = ()) -> tuple:
    """The order a row meets the reasons: the source's filters (in its order), the benchmark
    overlaps (one test: a row gets its first benchmark's reason), then the driver's."""
    driver = {r for stage in DRIVER_DROP_STAGES for r in ((stage,) if isinstance(stage, str) else stage)}
    return (*(r for r in source.drop_reasons if r not in driver), *((tuple(benchmarks),) if benchmarks else ()),
            *DRIVER_DROP_STAGES)


def check_encoder(encoder: ExampleEncoder, params: BudgetParams) -> None:
    """The manifest reports `params`; make sure they are what the encoder really uses."""
    used = (encoder.max_seq_len, encoder.seed, encoder.train_frac, encoder.renderer.effort, encoder.split_by)
    wanted = (params.max_seq_len, params.seed, params.train_frac, params.reasoning_effort, params.split_by)
    if used != wanted:
        raise ValueError(f"encoder settings {used} differ from the build parameters {wanted}")


def log_summary(manifest: dict) -> None:
    budget = manifest["budget"]
    acc = manifest["accounting"]
    how = "source exhausted" if budget["exhausted"] else f"budget reached at {budget['stopped_at']}"
    log.info("%s: read %d, written %d, dropped %d, %d tokens; %s", manifest["dataset"], acc["rows_read"],
             acc["rows_written_total"], acc["dropped_total"], budget["total_tokens"], how)


# --- finding the raw files --------------------------------------------------------------------

def find_input_files(folder: str | os.PathLike, pattern: str, what: str, recursive: bool = False) -> list[str]:
    """The files matching `pattern` in `folder`, sorted; a clear error when there are none.
    `what` names the setting that gave the folder (e.g. the config key)."""
    folder = str(folder)
    if not os.path.isdir(folder):
        raise SourceError(f"{folder} ({what}): no such folder")
    found = sorted(glob.glob(os.path.join(folder, "**", pattern) if recursive else os.path.join(folder, pattern),
                             recursive=recursive))
    if not found:
        raise SourceError(f"{folder} ({what}): no {pattern} files{' (searched recursively)' if recursive else ''}")
    return found


# --- the scripts' shared command line ---------------------------------------------------------

def add_budget_args(parser: argparse.ArgumentParser, dataset_name: str, target_total_tokens: int) -> None:
    parser.add_argument("--output-dir", type=Path, default=None,
                        help=f"dataset folder to write (default: {OUTPUT_ROOT}/<dataset name>)")
    parser.add_argument("--dataset-name", default=dataset_name, help="name recorded in the manifest")
    parser.add_argument("--target-total-tokens", type=int, default=target_total_tokens,
                        help="token budget, both splits; the row that crosses it is the last one taken")
    parser.add_argument("--order", choices=ORDERS, default="head",
                        help="the fixed order rows are taken in: head (the source's own order) or spread "
                             "(blocks of rows in a seeded order over the whole source)")
    add_encoding_args(parser)
    decontam.add_args(parser)


def common_params(args: argparse.Namespace) -> dict:
    """The BudgetParams fields from the shared flags."""
    if args.target_total_tokens < 1:
        raise ValueError(f"--target-total-tokens must be at least 1, got {args.target_total_tokens}")
    return {"target_total_tokens": args.target_total_tokens, "max_seq_len": args.max_seq_len,
            "seed": args.seed, "train_frac": args.train_frac, "reasoning_effort": args.reasoning_level,
            "rows_per_file": args.rows_per_file, "split_by": args.split_by, "order": check_order(args.order)}


GC_YOUNG_THRESHOLD = 50_000


def run_script(args: argparse.Namespace, make_source: Callable[[], BudgetSource], params: BudgetParams) -> dict:
    """A builder script's body: source, encoder, build, build_info.json."""
    started = time.time()
    output_dir = args.output_dir or Path(OUTPUT_ROOT) / args.dataset_name
    # A job makes millions of short-lived objects (and chat's first pass ~10 per message that
    # live to the end): at the default threshold (700) the collector scans the survivors over
    # and over, a quarter of that pass's time. Collect less often; cycles are still collected.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)
    source = make_source()
    gc.freeze()   # the source's own structure stays to the end: never scan it again
    encoder = make_encoder(args)
    manifest = build(source, encoder, params, dataset=args.dataset_name, dataset_dir=output_dir,
                     batch_size=args.batch_size, matcher=decontam.from_args(args))
    write_build_info(output_dir, started, sys.argv)
    return manifest
