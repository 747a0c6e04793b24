"""nvidia/OpenCodeInstruct → `code_opencodeinstruct_55m`: the source-specific parts.

Prompt = `input`, final = `output`, no analysis. Only rows whose `average_test_score` is 1.0
(all ten unit tests passed) are kept; the score is `double` in the real shards and a string in
copies saved through `datasets`, so both are accepted, in the same run too. Shards are read in
`random.Random(seed).shuffle(sorted(paths))` order when shuffled (the original builds' order),
or with `order: spread` as slices of rows of the sorted shards in a seeded order (spread.py);
the budget driver (budget.py) does the rest.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .. import budget, spread
from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder
from ..io import SourceError, category_codes, iter_parquet_batches, open_parquet, plain_column
from ..schema import example_schema, source_type
from ..hashing import content_digest
from ..text import clean_text, normalize_text
from ..writer import write_text

DATASET_HF = "nvidia/OpenCodeInstruct"
ID_PREFIX = "opencode"
SOURCE_TYPE = source_type(["id", "domain", "generation_algorithm"])
SCHEMA = example_schema(SOURCE_TYPE)
CATEGORY_FIELDS = ("domain", "generation_algorithm")
SHARD_ORDER_FILE = "input_shards_order.txt"

# Drop reasons, in the order they are tested: a row is counted under the first that applies.
DROP_MISSING_ID = "missing_id"
DROP_EMPTY_PROMPT = "empty_prompt"
DROP_EMPTY_ANSWER = "empty_answer"
DROP_NO_TEST_SCORE = "no_test_score"      # null, NaN or not a number
DROP_IMPERFECT_TESTS = "imperfect_tests"  # a score other than 1.0
DROP_REASONS = (DROP_MISSING_ID, DROP_EMPTY_PROMPT, DROP_EMPTY_ANSWER, DROP_NO_TEST_SCORE,
                DROP_IMPERFECT_TESTS, DROP_ENCODING_ERROR, DROP_TOO_LONG)

TEXT_COLUMNS = ("id", "input", "output", "domain", "generation_algorithm")
SCORE_COLUMN = "average_test_score"
COLUMNS = TEXT_COLUMNS + (SCORE_COLUMN,)


@dataclass(frozen=True)
class OpenCodeParams(budget.BudgetParams):
    target_total_tokens: int = 55_000_000
    shuffle_shards: bool = True
    spread_block_rows: int = spread.DEFAULT_BLOCK_ROWS


# --- row rules -------------------------------------------------------------------------------

def parse_score(value) -> float | None:
    """`average_test_score` as a number: doubles as they are, strings (`"1"`, `"1.0"`,
    `"0.9"`) parsed; None for null, NaN or anything unparsable."""
    if isinstance(value, bool):  # a bool is an int in Python, but not a score
        return None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def row_drop(raw_id, prompt: str, answer: str, score) -> str | None:
    """The first reason that drops a row, or None when it is kept (texts already clean)."""
    if not raw_id:
        return DROP_MISSING_ID
    if not prompt:
        return DROP_EMPTY_PROMPT
    if not answer:
        return DROP_EMPTY_ANSWER
    number = parse_score(score)
    if number is None:
        return DROP_NO_TEST_SCORE
    if number != 1.0:
        return DROP_IMPERFECT_TESTS
    return None


def candidate(row: dict) -> Example | budget.Drop:
    key = clean_text(row["id"])
    prompt = clean_text(row["input"])
    answer = clean_text(row["output"])
    categories = {name: clean_text(row[name]) or None for name in CATEGORY_FIELDS}
    reason = row_drop(key, prompt, answer, row[SCORE_COLUMN])
    if reason:
        return budget.with_categories(reason, categories)
    group = normalize_text(prompt)
    return Example(
        key=key,
        id=f"{ID_PREFIX}:{key}",
        source={"dataset": DATASET_HF, "id": key, **categories},
        prompt=prompt,
        reasoning="",
        final=answer,
        group=group,
        content=content_digest(group, normalize_text(answer)),
    )


# --- judging a whole batch -------------------------------------------------------------------
# Most rows fail the score test (~64% of the source): they are judged on Arrow columns, and the
# Python strings of a row are made only when its verdict needs them. The verdicts are exactly
# those of `candidate`: a row gets the Python treatment unless its score fails and its id,
# prompt and answer all contain an ASCII letter or digit (so none of them can be empty after
# `clean_text`, which only removes NULs and surrounding whitespace).

SURELY_NOT_EMPTY = "[0-9A-Za-z]"


def _surely_not_empty(column: pa.Array) -> list:
    column = plain_column(column)
    if pa.types.is_null(column.type):
        return [False] * len(column)
    return pc.fill_null(pc.match_substring_regex(column, SURELY_NOT_EMPTY), False).to_pylist()


def _score_verdicts(column: pa.Array) -> list:
    """Per row: None (score 1.0), DROP_NO_TEST_SCORE or DROP_IMPERFECT_TESTS, as `row_drop`."""
    if pa.types.is_floating(column.type):
        number = pc.cast(column, pa.float64())
        missing = pc.is_null(number, nan_is_null=True)
        passing = pc.fill_null(pc.equal(number, 1.0), False)
        codes = pc.if_else(missing, 2, pc.if_else(passing, 0, 1)).to_pylist()
        return [(None, DROP_IMPERFECT_TESTS, DROP_NO_TEST_SCORE)[c] for c in codes]
    verdicts = []
    for value in column.to_pylist():
        number = parse_score(value)
        verdicts.append(DROP_NO_TEST_SCORE if number is None else None if number == 1.0 else DROP_IMPERFECT_TESTS)
    return verdicts


def judge_batch(batch: pa.RecordBatch) -> list:
    """The candidates of a batch of raw rows (COLUMNS), equal to `candidate` of each row."""
    n = batch.num_rows
    scores = _score_verdicts(batch.column(SCORE_COLUMN))
    filled = [_surely_not_empty(batch.column(name)) for name in ("id", "input", "output")]
    keys = [category_codes(batch.column(name)) for name in CATEGORY_FIELDS]
    items: list = [None] * n
    full = []
    drops: dict = {}
    for i in range(n):
        reason = scores[i]
        if reason is None or not (filled[0][i] and filled[1][i] and filled[2][i]):
            full.append(i)
            continue
        cell = tuple(k[0][i] for k in keys)
        drop = drops.get((reason, cell))
        if drop is None:
            categories = {name: k[1][j] for name, k, j in zip(CATEGORY_FIELDS, keys, cell)}
            drop = drops[(reason, cell)] = budget.Drop(reason, "", categories)
        items[i] = drop
    if full:
        taken = batch.take(pa.array(full, type=pa.int64()))
        cols = {name: plain_column(taken.column(name)).to_pylist() for name in COLUMNS}
        for j, i in enumerate(full):
            items[i] = candidate({name: cols[name][j] for name in COLUMNS})
    return items


# --- reading ---------------------------------------------------------------------------------

def shard_order(paths: Sequence[str | Path], shuffle: bool, seed: int) -> list[str]:
    """Sorted paths, shuffled as the original builds did when `shuffle`."""
    order = sorted(str(p) for p in paths)
    if shuffle:
        random.Random(seed).shuffle(order)
    return order


def check_score_type(path, kind: pa.DataType) -> None:
    """Numbers or strings are fine (both occur in the wild); anything else is a wrong file."""
    if isinstance(kind, pa.DictionaryType):
        kind = kind.value_type
    ok = (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
          or pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind))
    if not ok:
        raise SourceError(f"{path}: column {SCORE_COLUMN} has type {kind}, expected a number or a string")


class OpenCodeSource(budget.CountedSource):
    builder = "opencode"
    schema = SCHEMA
    category_fields = CATEGORY_FIELDS
    drop_reasons = DROP_REASONS
    by_design_reasons = (DROP_IMPERFECT_TESTS,)  # only rows passing every test are wanted (~36% of the source)

    def __init__(self, shards: Sequence[str | Path], shuffle: bool, seed: int, order: str = "head",
                 block_rows: int = spread.DEFAULT_BLOCK_ROWS):
        # spread: the shards sorted (the positions' order); the slices, not the shards, are shuffled
        self.order = spread.check_order(order)
        super().__init__(shard_order(shards, shuffle and self.order == "head", seed))
        self.shuffle, self.seed, self.block_rows = shuffle and self.order == "head", seed, block_rows
        rows = []
        for path in self.files:  # fail on a wrong shard before hours of work, not after
            handle = open_parquet(path, COLUMNS)
            check_score_type(path, handle.schema_arrow.field(SCORE_COLUMN).type)
            rows.append(handle.metadata.num_rows)
        self._rows = rows
        self.block_order: list[tuple[int, int, int]] = []   # spread: (shard, first row, end row)
        if self.order == "spread":
            slices = [(f, a, b) for f, n in enumerate(rows) for a, b in spread.row_slices(n, block_rows)]
            ranks = spread.seeded_order([f"{self.names[f]}:{a // block_rows}" for f, a, _ in slices], seed)
            self.block_order = [slices[r] for r in ranks]

    @property
    def file_rows(self) -> Sequence[int]:
        return self._rows

    def read_order(self) -> dict:
        if self.order == "head":
            return {"order": "head"}
        return {"order": "spread", "block": f"{self.block_rows} consecutive rows of a shard",
                "blocks": len(self.block_order), "seed": self.seed, "within_block": "file order"}

    def batches(self, batch_size: int) -> Iterator[budget.Batch]:
        if self.order == "spread":
            yield from self._spread_batches(batch_size)
            return
        for index, path in enumerate(self.files):
            row = 0
            for raw in iter_parquet_batches(path, COLUMNS, batch_size, string_columns=TEXT_COLUMNS):
                n = raw.num_rows
                yield budget.Batch(index, range(row, row + n), judge_batch(raw))
                row += n

    def _spread_batches(self, batch_size: int) -> Iterator[budget.Batch]:
        """The slices in their seeded order, each read through the row groups holding it."""
        readers: dict[int, spread.ParquetSlices] = {}
        last = None
        for index, start, stop in self.block_order:
            if index not in readers:
                readers[index] = spread.ParquetSlices(self.files[index], COLUMNS, TEXT_COLUMNS)
            if last is not None and last != index:
                readers[last].forget()   # one decoded row group in memory at a time
            last = index
            for offset, raw in spread.record_batches(readers[index].read(start, stop), batch_size):
                first = start + offset
                yield budget.Batch(index, range(first, first + raw.num_rows), judge_batch(raw))

    def manifest_extra(self) -> dict:
        return {"shard_order": {"shuffled": self.shuffle, "file": SHARD_ORDER_FILE}}

    def write_extra_files(self, dataset_dir: Path) -> None:
        write_text(Path(dataset_dir) / SHARD_ORDER_FILE, "".join(f"{name}\n" for name in self.names))


def build(input_dir: str | Path, output_dir: str | Path, encoder: ExampleEncoder, params: OpenCodeParams,
          dataset: str = "code_opencodeinstruct_55m", batch_size: int = 4096) -> dict:
    shards = budget.find_input_files(input_dir, "*.parquet", "OpenCodeInstruct input folder")
    source = OpenCodeSource(shards, params.shuffle_shards, params.seed, params.order, params.spread_block_rows)
    return budget.build(source, encoder, params, dataset=dataset, dataset_dir=Path(output_dir),
                        batch_size=batch_size)
