"""Arrow schemas of the output rows (CONTRACT.md, "Rows")."""

from __future__ import annotations

import pyarrow as pa

SPLITS = ("train", "validation")

SPANS_TYPE = pa.struct([
    ("assistant_token_start", pa.int32()),
    ("analysis_token_count", pa.int32()),
    ("final_token_count", pa.int32()),
])

# The merged mix rewrites every builder's `source` to this one struct.
CANONICAL_SOURCE_TYPE = pa.struct([
    ("dataset", pa.string()),
    ("language", pa.string()),
    ("exercise", pa.string()),
    ("meta_json", pa.string()),
])


def source_type(fields: list[str]) -> pa.StructType:
    """A builder's `source` struct: `dataset`, that source's string fields, and `split_group`
    (the digest of the value the row's split was decided on; see ``hashing.split_group_id``)."""
    return pa.struct([("dataset", pa.string())] + [(name, pa.string()) for name in fields]
                     + [("split_group", pa.string())])


def example_schema(source: pa.DataType) -> pa.Schema:
    return pa.schema([
        ("id", pa.string()),
        ("source", source),
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("attention_mask", pa.list_(pa.int8())),
        ("spans", SPANS_TYPE),
    ])
