"""Tiny contract datasets whose prompts are given texts (rendered for real), for the
near-duplicate stage and the merge with a drop list."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from distill_data.dataset import SplitWriters
from distill_data.hashing import split_group_id
from distill_data.render import HarmonyRenderer
from distill_data.schema import example_schema, source_type
from distill_data.text import clean_text, normalize_text
from distill_data.writer import write_json

FILLER = ("river stone lantern harbor meadow copper violin orchard glacier pepper canyon velvet ember "
          "compass thistle marble falcon willow saffron beacon quartz maple tundra cobalt juniper").split()


def prompt_text(seed: int, words: int = 60) -> str:
    """A prompt of `words` words no other seed shares five in a row with."""
    out, state = [], seed * 7919 + 17
    for _ in range(words):
        state = (state * 1103515245 + 12345) % 2**31
        out.append(FILLER[state % len(FILLER)] + str(state % 97))
    return "Please explain: " + " ".join(out) + "."


def write_prompt_dataset(folder: Path, name: str, rows: list[tuple[str, str, str]], tokenizer,
                         rows_per_file: int = 3) -> dict:
    """rows: (key, prompt, split). The split group is the normalized prompt (split_by: group);
    the answer names the key, so no two rows are exact copies."""
    renderer = HarmonyRenderer(tokenizer, "high")
    stype = source_type(["key"])
    writers = SplitWriters(Path(folder), example_schema(stype), rows_per_file)
    for split in ("train", "validation"):
        chosen = [(key, prompt) for key, prompt, s in rows if s == split]
        if not chosen:
            continue
        rendered = [renderer.render(clean_text(prompt), "thinking about " + key, "answer " + key)
                    for key, prompt in chosen]
        spans = pa.array([{"assistant_token_start": r.assistant_token_start,
                           "analysis_token_count": r.analysis_token_count,
                           "final_token_count": r.final_token_count} for r in rendered],
                         pa.struct([("assistant_token_start", pa.int32()), ("analysis_token_count", pa.int32()),
                                    ("final_token_count", pa.int32())]))
        table = pa.table({
            "id": [f"{name}:{key}" for key, _ in chosen],
            "source": pa.array([{"dataset": f"demo/{name}", "key": key,
                                 "split_group": split_group_id(normalize_text(prompt))} for key, prompt in chosen], stype),
            "input_ids": pa.array([r.input_ids for r in rendered], pa.list_(pa.int32())),
            "labels": pa.array([[-100] * r.assistant_token_start + r.input_ids[r.assistant_token_start:]
                                for r in rendered], pa.list_(pa.int32())),
            "attention_mask": pa.array([[1] * len(r.input_ids) for r in rendered], pa.list_(pa.int8())),
            "spans": spans,
        }, schema=example_schema(stype))
        writers.write(split, table)
    manifest = {"dataset": name, "builder": "test.prompts", "params": {"split_by": "group", "seed": 1337,
                                                                        "train_frac": 0.99},
                "tokenizer": tokenizer.describe(), "files": writers.close()}
    write_json(Path(folder) / "manifest.json", manifest)
    return manifest
