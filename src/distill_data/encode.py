"""From clean examples to Arrow rows: render, length check, split, and the columns of CONTRACT.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from .hashing import split_group_id, split_of
from .render import HarmonyRenderer, Rendered, RenderedColumns
from .schema import SPANS_TYPE
from .stats import DatasetStats

DROP_ENCODING_ERROR = "encoding_error"
DROP_TOO_LONG = "too_long"
DROP_DUPLICATE_CONTENT = "duplicate_content"
# How the train/validation split is decided (CONTRACT.md): by the example's group (one problem
# on one side), or by its own id as the original builds did.
SPLIT_BY = ("group", "id")


@dataclass(frozen=True)
class Example:
    """One candidate row, its texts already cleaned (``render.clean_text``)."""

    key: str        # the source's own id: the value every hash decision uses
    id: str         # the output id, prefixed with the dataset
    source: dict    # the row's `source` struct
    prompt: str
    reasoning: str
    final: str
    # The value the split is decided on under `split_by: group`: the normalized prompt
    # (``text.normalize_text``) or, for chat, the thread's tree id. Empty = the key.
    group: str = ""
    # ``hashing.content_digest`` of the normalized prompt and answer, for `duplicate_content`.
    content: bytes | None = None
    # Earlier turns of a chat thread, before `prompt`: (user, assistant final) pairs, rendered
    # before it (``HarmonyRenderer.render_batch_with_history``); never labelled.
    history: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EncodedExample:
    """An example and its rendering: row `index` of a batch's `RenderedColumns`."""

    example: Example
    columns: RenderedColumns
    index: int
    split: str
    split_group: str  # ``hashing.split_group_id`` of the value the split was decided on

    @property
    def rendered(self) -> Rendered:
        return self.columns.row(self.index)

    @property
    def total_tokens(self) -> int:
        return int(self.columns.offsets[self.index + 1] - self.columns.offsets[self.index])

    @property
    def assistant_token_start(self) -> int:
        return int(self.columns.assistant_start[self.index])

    @property
    def analysis_token_count(self) -> int:
        return int(self.columns.analysis[self.index])

    @property
    def final_token_count(self) -> int:
        return int(self.columns.final[self.index])

    @property
    def assistant_tokens(self) -> int:
        return self.analysis_token_count + self.final_token_count


class ExampleEncoder:
    """Renders batches of examples; returns, in input order, an EncodedExample or a drop reason."""

    def __init__(self, renderer: HarmonyRenderer, max_seq_len: int, seed: int, train_frac: float,
                 split_by: str = "group"):
        if split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
        self.renderer = renderer
        self.max_seq_len = int(max_seq_len)
        self.seed = int(seed)
        self.train_frac = float(train_frac)
        self.split_by = split_by

    def split_value(self, example: Example) -> str:
        """The value `u(value, seed, "split")` is computed on for this example."""
        return example.group or example.key if self.split_by == "group" else example.key

    def encode(self, examples: Sequence[Example]) -> list[EncodedExample | str]:
        histories = [e.history for e in examples] if any(e.history for e in examples) else None
        columns = self.renderer.render_columns(  # chat threads: earlier turns before the prompt
            [e.prompt for e in examples], [e.reasoning for e in examples], [e.final for e in examples], histories
        )
        too_long = (columns.lengths > self.max_seq_len).tolist()
        results: list[EncodedExample | str] = []
        for i, example in enumerate(examples):
            if i in columns.errors:
                results.append(DROP_ENCODING_ERROR)
            elif too_long[i]:
                results.append(DROP_TOO_LONG)
            else:
                value = self.split_value(example)
                results.append(EncodedExample(example, columns, i, split_of(value, self.seed, self.train_frac),
                                              split_group_id(value)))
        return results


def record(stats: DatasetStats, row: EncodedExample, category_fields: Sequence[str]) -> None:
    """Count a written row in the dataset statistics."""
    stats.add_written(
        row.split, row.assistant_token_start, row.analysis_token_count, row.final_token_count,
        {name: row.example.source.get(name) for name in category_fields},
    )


def record_many(stats: DatasetStats, rows: Sequence[EncodedExample], category_fields: Sequence[str]) -> None:
    """`record` of many written rows at once (the statistics do not depend on the order)."""
    for split in {r.split for r in rows}:
        group = [r for r in rows if r.split == split]
        n = len(group)
        stats.add_written_many(
            split,
            np.fromiter((r.assistant_token_start for r in group), dtype=np.int64, count=n),
            np.fromiter((r.analysis_token_count for r in group), dtype=np.int64, count=n),
            np.fromiter((r.final_token_count for r in group), dtype=np.int64, count=n),
            {name: [r.example.source.get(name) for r in group] for name in category_fields},
        )


def token_columns(ids: np.ndarray, offsets: np.ndarray, starts: np.ndarray) -> dict[str, pa.Array]:
    """`input_ids`, `labels` (-100 before each row's assistant_token_start) and
    `attention_mask` (ones) of rows given as flat int32 tokens and int64 offsets."""
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of more than 2**31 tokens; use smaller batches")
    lengths = np.diff(offsets)
    # labels: -100 on the prompt, the tokens themselves from assistant_token_start on
    if len(starts) and (starts >= 0).all() and (starts < lengths).all():
        # +1 where a row starts, -1 where its prompt ends: the running sum is 1 on prompts
        edges = np.zeros(len(ids) + 1, dtype=np.int8)
        edges[offsets[:-1]] = 1
        edges[offsets[:-1] + starts] -= 1
        on_prompt = np.cumsum(edges[:-1], dtype=np.int8).view(bool)
    else:
        on_prompt = np.arange(len(ids), dtype=np.int64) < np.repeat(offsets[:-1] + starts, lengths)
    labels = np.where(on_prompt, np.int32(-100), ids)
    offsets32 = pa.array(offsets, pa.int32())
    return {
        "input_ids": pa.ListArray.from_arrays(offsets32, pa.array(ids, pa.int32())),
        "labels": pa.ListArray.from_arrays(offsets32, pa.array(labels, pa.int32())),
        "attention_mask": pa.ListArray.from_arrays(offsets32, pa.array(np.ones(len(ids), np.int8), pa.int8())),
    }


def gather_rows(rows: Sequence[EncodedExample]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, offsets, assistant_start, analysis, final) of the rows, in order, gathered from
    their batches' columns with array operations."""
    tokens, offsets, starts, analysis, final = [], [np.zeros(1, np.int64)], [], [], []
    base = 0
    i = 0
    while i < len(rows):  # consecutive rows of one batch are gathered at once
        columns = rows[i].columns
        j = i
        while j < len(rows) and rows[j].columns is columns:
            j += 1
        index = np.fromiter((r.index for r in rows[i:j]), dtype=np.int64, count=j - i)
        lengths = columns.offsets[index + 1] - columns.offsets[index]
        if len(index) < 2 or (np.diff(index) > 0).all():  # rows in batch order: select by a mask
            chosen = np.zeros(len(columns), dtype=bool)
            chosen[index] = True
            tokens.append(columns.tokens[np.repeat(chosen, columns.lengths)])
        else:
            out_starts = np.cumsum(lengths) - lengths
            tokens.append(columns.tokens[np.repeat(columns.offsets[index] - out_starts, lengths)
                                         + np.arange(int(lengths.sum()), dtype=np.int64)])
        offsets.append(base + np.cumsum(lengths))
        base += int(lengths.sum())
        starts.append(columns.assistant_start[index])
        analysis.append(columns.analysis[index])
        final.append(columns.final[index])
        i = j
    if not starts:
        empty = np.zeros(0, np.int64)
        return np.zeros(0, np.int32), offsets[0], empty, empty, empty
    return (np.concatenate(tokens), np.concatenate(offsets), np.concatenate(starts), np.concatenate(analysis),
            np.concatenate(final))


def rows_to_table(rows: Iterable[EncodedExample], schema: pa.Schema) -> pa.Table:
    """Build the CONTRACT.md columns without per-token Python objects."""
    rows = list(rows)
    ids, offsets, starts, analysis, final = gather_rows(rows)
    source_type = schema.field("source").type
    columns = {
        "id": pa.array([r.example.id for r in rows], pa.string()),
        "source": pa.array([dict(r.example.source, split_group=r.split_group) for r in rows], source_type),
        **token_columns(ids, offsets, starts),
        "spans": pa.StructArray.from_arrays(
            [pa.array(starts, pa.int32()), pa.array(analysis, pa.int32()), pa.array(final, pa.int32())],
            fields=list(SPANS_TYPE),
        ),
    }
    return pa.Table.from_pydict(columns, schema=schema)
