"""Look at rows of a published dataset or of the mix, decoded, with the trained part marked.

    python -m distill_data.show DIR --id pleias_synth:synth_math_34_80712
    python -m distill_data.show DIR --sample 3 --seed 1337 [--split validation]

For each row: where it is (split, file, row), its `source` fields (the mix: the canonical ones
and the original struct from `meta_json`), its spans and token counts, then the conversation
decoded token by token from `input_ids`, cut where `labels` changes between -100 (not
trained: the prompt) and the token ids (trained). Plain text; on a terminal the trained part is
green and the prompt dim (`--color always|never` overrides). `--sample` picks the N rows with
the smallest u(id, seed, "sample") (the merge's rule for samples.md, so with the merge's seed it
shows the same rows of an input).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow.parquet as pq

SPLITS = ("train", "validation")
IGNORE = -100
RULE = "─" * 78


class ShowError(RuntimeError):
    pass


def unit_hash(value: str, seed: int, salt: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{salt}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def part_files(directory: Path, splits: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """The dataset's part files in order (from the manifest, else from the folders)."""
    manifest_path = directory / "manifest.json"
    listed = None
    if manifest_path.is_file():
        listed = json.loads(manifest_path.read_text(encoding="utf-8")).get("files")
    for split in splits:
        if isinstance(listed, dict) and split in listed:
            paths = [directory / entry["path"] for entry in listed[split]]
        else:
            paths = sorted((directory / split).glob("part-*.parquet"))
        for path in paths:
            yield split, path


def find_rows(directory: Path, *, ids: Sequence[str] = (), sample: int = 0, seed: int = 1337,
              splits: Sequence[str] = SPLITS) -> list[dict]:
    """Rows by id (in the order asked) or the `sample` rows with the smallest u(id, seed, "sample")."""
    directory = Path(directory)
    if not (directory / "manifest.json").is_file() and not any((directory / s).is_dir() for s in SPLITS):
        raise ShowError(f"{directory} is not a dataset folder (no manifest.json, train/ or validation/)")
    wanted: dict[tuple[str, Path], list[int]] = {}
    found: dict[str, tuple] = {}
    candidates = []
    for split, path in part_files(directory, splits):
        column = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        for row, row_id in enumerate(column):
            if ids and row_id in ids and row_id not in found:
                found[row_id] = (split, path, row)
            elif sample:
                candidates.append((unit_hash(row_id, seed, "sample"), row_id, split, path, row))
        if sample and len(candidates) > 4 * sample:
            candidates = heapq.nsmallest(sample, candidates, key=lambda c: (c[0], c[1]))
    if ids:
        missing = [i for i in ids if i not in found]
        if missing:
            raise ShowError(f"{directory}: no row with id {', '.join(missing)}")
        chosen = [(row_id, *found[row_id]) for row_id in ids]
    else:
        chosen = [c[1:] for c in heapq.nsmallest(sample, candidates, key=lambda c: (c[0], c[1]))]
    for _, split, path, row in chosen:
        wanted.setdefault((split, path), []).append(row)
    loaded = {}
    for (split, path), rows in wanted.items():
        table = pq.read_table(path).take(sorted(set(rows)))
        for row, data in zip(sorted(set(rows)), table.to_pylist()):
            loaded[(path, row)] = dict(data, _split=split, _file=str(path.relative_to(directory)), _row=row)
    return [loaded[(path, row)] for _, _, path, row in chosen]


def trained_runs(input_ids: Sequence[int], labels: Sequence[int]) -> list[tuple[bool, list[int]]]:
    """Consecutive tokens with the same trained state: (trained, ids)."""
    runs: list[tuple[bool, list[int]]] = []
    for token, label in zip(input_ids, labels):
        trained = label != IGNORE
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(token)
        else:
            runs.append((trained, [token]))
    return runs


def source_lines(source: dict) -> list[str]:
    lines = [f"  {key}: {value}" for key, value in source.items() if key != "meta_json"]
    if "meta_json" in source:
        try:
            meta = json.loads(source["meta_json"])
        except (TypeError, ValueError):
            meta = {"meta_json": source["meta_json"]}
        lines.append("  meta_json (the input's own source struct):")
        lines += [f"    {key}: {value}" for key, value in sorted(meta.items())]
    return lines


class Colors:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text


def format_row(row: dict, decode, colors: Colors) -> str:
    spans = row["spans"]
    ids, labels = row["input_ids"], row["labels"]
    start, analysis, final = spans["assistant_token_start"], spans["analysis_token_count"], spans["final_token_count"]
    trained = sum(1 for label in labels if label != IGNORE)
    lines = [
        RULE,
        colors("1", f"{row['id']}") + f"   ({row['_split']}, {row['_file']} row {row['_row']})",
        "source:",
        *source_lines(row["source"]),
        f"spans: assistant_token_start {start}, analysis_token_count {analysis}, final_token_count {final}",
        f"tokens: {len(ids)} = prompt {start} + analysis {analysis} + final {final}; trained (labels != -100): {trained}",
        "",
        "Legend: ⟦ … ⟧ = not trained (labels -100); ⟪ … ⟫ = trained (labels = input_ids)",
        "",
    ]
    text = []
    for is_trained, tokens in trained_runs(ids, labels):
        decoded = decode(tokens)
        if is_trained:
            text.append(colors("32", "⟪") + colors("32", decoded) + colors("32", "⟫"))
        else:
            text.append(colors("2", "⟦") + colors("2", decoded) + colors("2", "⟧"))
    lines.append("".join(text))
    lines.append("")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distill_data.show", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path, help="a dataset or mix folder")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="ID", help="the row's id (repeatable)")
    which.add_argument("--sample", type=int, metavar="N", help="N rows chosen by hash of their id")
    p.add_argument("--seed", type=int, default=1337, help="seed of --sample (default 1337)")
    p.add_argument("--split", choices=SPLITS, help="only this split (default both)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--tokenizer-dir", help="folder with o200k_base.tiktoken (default: $TIKTOKEN_ENCODINGS_BASE, "
                   "else the copy the workflow staged under <output_root>/_work/tokenizer)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from .tokenizer import TokenizerError, load_tokenizer, vocab_dir_for

    if args.sample is not None and args.sample < 1:
        print("error: --sample must be at least 1", file=sys.stderr)
        return 2
    try:
        tokenizer = load_tokenizer(vocab_dir_for(args.directory, args.tokenizer_dir))
        rows = find_rows(args.directory, ids=args.ids or (), sample=args.sample or 0, seed=args.seed,
                         splits=(args.split,) if args.split else SPLITS)
    except (ShowError, TokenizerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    colors = Colors(args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                               and os.environ.get("NO_COLOR") is None))
    decode = tokenizer.tiktoken.decode   # bytes cut inside a character (a corrupt label) show as U+FFFD
    for row in rows:
        sys.stdout.write(format_row(row, decode, colors) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
