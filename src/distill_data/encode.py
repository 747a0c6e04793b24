"""From clean examples to Arrow rows: render, length check, split, and the columns of CONTRACT.md."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from .hashing import split_group_id, split_of
from .render import HarmonyRenderer, Rendered
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
    example: Example
    rendered: Rendered
    split: str
    split_group: str  # ``hashing.split_group_id`` of the value the split was decided on

    @property
    def total_tokens(self) -> int:
        return len(self.rendered.input_ids)

    @property
    def assistant_tokens(self) -> int:
        return self.rendered.analysis_token_count + self.rendered.final_token_count


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
        if any(e.history for e in examples):  # chat threads: earlier turns before the prompt
            rendered = self.renderer.render_batch_with_history(
                [e.history for e in examples], [e.prompt for e in examples],
                [e.reasoning for e in examples], [e.final for e in examples])
        else:
            rendered = self.renderer.render_batch(
                [e.prompt for e in examples], [e.reasoning for e in examples], [e.final for e in examples]
            )
        results: list[EncodedExample | str] = []
        for example, item in zip(examples, rendered):
            if isinstance(item, Exception):
                results.append(DROP_ENCODING_ERROR)
            elif len(item.input_ids) > self.max_seq_len:
                results.append(DROP_TOO_LONG)
            else:
                value = self.split_value(example)
                results.append(EncodedExample(example, item, split_of(value, self.seed, self.train_frac),
                                              split_group_id(value)))
        return results


def record(stats: DatasetStats, row: EncodedExample, category_fields: Sequence[str]) -> None:
    """Count a written row in the dataset statistics."""
    r = row.rendered
    stats.add_written(
        row.split, r.assistant_token_start, r.analysis_token_count, r.final_token_count,
        {name: row.example.source.get(name) for name in category_fields},
    )


def rows_to_table(rows: Iterable[EncodedExample], schema: pa.Schema) -> pa.Table:
    """Build the CONTRACT.md columns without per-token Python objects in Arrow."""
    rows = list(rows)
    lengths = np.fromiter((len(r.rendered.input_ids) for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of more than 2**31 tokens; use smaller batches")
    ids = np.fromiter(chain.from_iterable(r.rendered.input_ids for r in rows), dtype=np.int32, count=int(offsets[-1]))
    starts = np.fromiter((r.rendered.assistant_token_start for r in rows), dtype=np.int32, count=len(rows))
    # labels: -100 on the prompt, the tokens themselves from assistant_token_start on
    position = np.arange(len(ids), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    labels = np.where(position < np.repeat(starts, lengths), np.int32(-100), ids)
    offsets32 = pa.array(offsets, pa.int32())
    source_type = schema.field("source").type
    columns = {
        "id": pa.array([r.example.id for r in rows], pa.string()),
        "source": pa.array([dict(r.example.source, split_group=r.split_group) for r in rows], source_type),
        "input_ids": pa.ListArray.from_arrays(offsets32, pa.array(ids, pa.int32())),
        "labels": pa.ListArray.from_arrays(offsets32, pa.array(labels, pa.int32())),
        "attention_mask": pa.ListArray.from_arrays(offsets32, pa.array(np.ones(len(ids), np.int8), pa.int8())),
        "spans": pa.StructArray.from_arrays(
            [
                pa.array(starts, pa.int32()),
                pa.array([r.rendered.analysis_token_count for r in rows], pa.int32()),
                pa.array([r.rendered.final_token_count for r in rows], pa.int32()),
            ],
            fields=list(SPANS_TYPE),
        ),
    }
    return pa.Table.from_pydict(columns, schema=schema)
