"""Does a Hugging Face tokenizer give our token ids? Check it before training on them.

    python -m distill_data.handoff.tokenizer_check --tokenizer HF_DIR --dataset DATASET_DIR

A student or teacher whose tokenizer maps the same text to other ids trains on garbage without
an error. Two checks, against the Harmony vocabulary the dataset was built with:

1. special tokens: for every special id of `o200k_harmony`, the HF tokenizer's token at that id
   is one of our names for it, and every such name the HF tokenizer knows maps to our id (a name
   listed twice, as id 200018 is, shifts every later id in a naive conversion);
2. round trip on `--rows` rows chosen by a seeded hash of their id: each run of ordinary tokens
   between special tokens is decoded and re-encoded by the HF tokenizer (special-token strings in
   text kept as text, as the dataset encodes them) and must give the same ids; the first
   mismatching token is named. Runs that the Harmony tokenizer itself would encode differently
   (none in the datasets the workflow builds) are counted and skipped.

Exit 0 when both pass, 1 otherwise; `--report` writes the JSON details.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import logging
import sys
from pathlib import Path

from ..hashing import unit_hash
from ..schema import SPLITS
from ..tokenizer import load_tokenizer
from ..writer import write_json
from .source import HandoffError, PublishedDataset, read_checked

log = logging.getLogger("distill_data")

FIRST_SPECIAL_ID = 199998
SHOWN = 5


def load_hf_tokenizer(path: str):
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise HandoffError(f"the tokenizer check needs transformers ({exc}): pip install -e '.[train]'") from None
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise HandoffError(f"{path}: not a Hugging Face tokenizer folder ({exc})") from None


def special_token_report(hf, tiktoken) -> dict:
    names_by_id: dict[int, list[str]] = {}
    for name, token_id in tiktoken._special_tokens.items():
        names_by_id.setdefault(token_id, []).append(name)
    mismatches = []
    for token_id in sorted(names_by_id):
        names = sorted(names_by_id[token_id])
        theirs = hf.convert_ids_to_tokens(token_id)
        if theirs not in names:
            mismatches.append(f"id {token_id}: ours {' or '.join(names)}, the tokenizer's {theirs!r}")
        for name in names:
            hf_id = hf.convert_tokens_to_ids(name)
            if hf_id is not None and hf_id != hf.unk_token_id and hf_id != token_id:
                mismatches.append(f"{name}: ours {token_id}, the tokenizer's {hf_id}")
    return {"ok": not mismatches, "checked": len(names_by_id), "mismatches": len(mismatches),
            "first": mismatches[:SHOWN]}


def chosen_rows(dataset: PublishedDataset, rows: int, seed: int) -> dict[tuple[str, int], list[int]]:
    """The `rows` rows with the smallest hash of their id (the same ones on every run), as
    {(split, file index): row numbers}, read from the `id` column only."""
    heap: list[tuple[float, str, int, int]] = []
    for split in SPLITS:
        for number, (_, table) in enumerate(dataset.tables(split, ["id"])):
            for row, example_id in enumerate(table.column("id").to_pylist()):
                item = (-unit_hash(example_id, seed, "tokenizer_check"), split, number, row)
                if len(heap) < rows:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    chosen: dict[tuple[str, int], list[int]] = {}
    for _, split, number, row in sorted(heap, key=lambda item: item[1:]):
        chosen.setdefault((split, number), []).append(row)
    return chosen


def ordinary_runs(ids: list[int]):
    """(start, run) of the ordinary tokens between special ones."""
    start = 0
    for i, token in enumerate(ids + [FIRST_SPECIAL_ID]):
        if token >= FIRST_SPECIAL_ID:
            if i > start:
                yield start, ids[start:i]
            start = i + 1


def round_trip_report(hf, tiktoken, dataset: PublishedDataset, rows: int, seed: int) -> dict:
    chosen = chosen_rows(dataset, rows, seed)
    checked = runs = skipped = mismatching = 0
    failures = []
    for (split, number), wanted in chosen.items():
        # only the files holding chosen rows are read again, for their tokens
        table = read_checked(dataset.files[split][number], ["id", "input_ids"]).take(wanted)
        for example_id, ids in zip(table.column("id").to_pylist(), table.column("input_ids").to_pylist()):
            checked += 1
            for start, run in ordinary_runs(ids):
                runs += 1
                text = tiktoken.decode(run)
                if tiktoken.encode_ordinary(text) != run:
                    skipped += 1
                    continue
                theirs = hf.encode(text, add_special_tokens=False, split_special_tokens=True)
                if theirs == run:
                    continue
                mismatching += 1
                if len(failures) < SHOWN:
                    failures.append(f"{split} row {example_id}, token {start + _first_difference(run, theirs)}: "
                                    f"{_difference(run, theirs, tiktoken)}")
    return {"ok": checked > 0 and not mismatching, "rows": checked, "runs": runs, "runs_skipped": skipped,
            "mismatching_runs": mismatching, "first": failures}


def _first_difference(ours: list[int], theirs: list[int]) -> int:
    return next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))


def _difference(ours: list[int], theirs: list[int], tiktoken) -> str:
    at = _first_difference(ours, theirs)

    def shown(ids: list[int]) -> str:
        if at >= len(ids):
            return "nothing (the run ends)"
        token = ids[at]
        return f"{token} ({tiktoken.decode_single_token_bytes(token)!r})" if token < FIRST_SPECIAL_ID else str(token)
    return f"ours {shown(ours)}, the tokenizer's {shown(theirs)}"


def check_tokenizer(tokenizer_dir: str, dataset_dir: Path, rows: int = 200, seed: int = 1337,
                    vocab_dir: str | None = None) -> dict:
    hf = load_hf_tokenizer(tokenizer_dir)
    ours = load_tokenizer(vocab_dir)
    dataset = PublishedDataset(dataset_dir)
    specials = special_token_report(hf, ours.tiktoken)
    trip = round_trip_report(hf, ours.tiktoken, dataset, rows, seed)
    return {"ok": specials["ok"] and trip["ok"], "tokenizer": str(tokenizer_dir), "dataset": dataset.name,
            "vocabulary_sha256": ours.describe().get("vocab_sha256"), "special_tokens": specials, "round_trip": trip,
            "hf_tokenizer_files_sha256": _files_digest(Path(tokenizer_dir))}


def _files_digest(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def verdict(report: dict) -> list[str]:
    s, r = report["special_tokens"], report["round_trip"]
    head = (f"{report['tokenizer']}: {'OK' if report['ok'] else 'MISMATCH'} against {report['dataset']} "
            f"({s['checked']} special ids, {s['mismatches']} differ; {r['rows']} rows, {r['runs']} text runs, "
            f"{r['mismatching_runs']} re-encode differently)")
    return [head] + [f"  special token {line}" for line in s["first"]] + [f"  round trip: {line}" for line in r["first"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill_data.handoff.tokenizer_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer folder (or hub name, if online)")
    p.add_argument("--dataset", required=True, type=Path, help="a published dataset folder (manifest.json, train/, …)")
    p.add_argument("--rows", type=int, default=200, help="rows to round-trip, chosen by a seeded hash of the id")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--tokenizer-dir", dest="vocab_dir", help="the Harmony vocabulary folder "
                   "(default: $TIKTOKEN_ENCODINGS_BASE)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        report = check_tokenizer(args.tokenizer, args.dataset, args.rows, args.seed, args.vocab_dir)
    except HandoffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.report:
        write_json(args.report, report)
    print("\n".join(verdict(report)))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
