"""Checking examples against the index: per row, the first benchmark (config order) one of whose
n-grams appears in the compared parts, and that n-gram as text.

A row's parts are lists of texts (a chat prompt is its earlier turns and the last user message);
each text is hashed on its own, so no n-gram spans two texts or two parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .index import Index, load_index
from .ngrams import text_ngram_hashes

PARTS = ("prompt", "analysis", "final")
DEFAULT_SAMPLES = 5
# Rows hashed at a time: the temporary arrays take ~50 bytes per word of the chunk's texts, so
# memory is bounded by the chunk (long reasoning rows) whatever the builder's batch size.
CHECK_ROWS = 512


@dataclass(frozen=True)
class Match:
    benchmark: str
    reason: str   # benchmark_<name>
    part: str     # prompt / analysis / final
    ngram: str    # the normalised words of the first matching n-gram


class Matcher:
    """The index and which parts of an example are compared."""

    def __init__(self, index: Index, compare: Sequence[str] = PARTS, samples: int = DEFAULT_SAMPLES):
        unknown = [p for p in compare if p not in PARTS]
        if unknown or not compare:
            raise ValueError(f"decontam compare: parts must be among {PARTS}, got {list(compare)}")
        self.index = index
        self.compare = tuple(p for p in PARTS if p in compare)  # a fixed order whatever the flags say
        self.samples = samples

    @classmethod
    def open(cls, path: Path, compare: Sequence[str] = PARTS, samples: int = DEFAULT_SAMPLES) -> "Matcher":
        return cls(load_index(path), compare, samples)

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.index.reasons

    def check(self, rows: Sequence[Mapping[str, Sequence[str]]]) -> list[Match | None]:
        """Per row ({part: [texts]}), its Match or None. The benchmark is the first in config
        order with a match; the n-gram shown is its first in the row (parts in PARTS order)."""
        return [m for start in range(0, len(rows), CHECK_ROWS) for m in self._check(rows[start:start + CHECK_ROWS])]

    def _check(self, rows: Sequence[Mapping[str, Sequence[str]]]) -> list[Match | None]:
        pieces, piece_row, piece_part = [], [], []
        for r, row in enumerate(rows):
            for p, part in enumerate(self.compare):
                for text in row.get(part) or ():
                    if text:
                        pieces.append(text)
                        piece_row.append(r)
                        piece_part.append(p)
        result: list[Match | None] = [None] * len(rows)
        if not pieces or not len(self.index.hashes):
            return result
        n = self.index.ngram
        hashes, text, start, words = text_ngram_hashes(pieces, n)
        pos = np.searchsorted(self.index.hashes, hashes)
        found = np.flatnonzero(self.index.hashes[np.minimum(pos, len(self.index.hashes) - 1)] == hashes)
        if not len(found):
            return result
        bench = self.index.benchmark[pos[found]]          # the first (lowest) benchmark holding the hash
        row_of = np.asarray(piece_row, np.int64)[text[found]]
        order = np.lexsort((found, bench, row_of))         # per row: lowest benchmark, then first n-gram
        rows_sorted = row_of[order]
        firsts = order[np.flatnonzero(np.r_[True, rows_sorted[1:] != rows_sorted[:-1]])]
        for k in firsts:
            g = found[k]
            name = self.index.names[int(bench[k])]
            result[int(row_of[k])] = Match(name, self.index.reasons[int(bench[k])],
                                           self.compare[piece_part[int(text[g])]], words.text(int(start[g]), n))
        return result


class Findings:
    """Counts and samples of the rows a build dropped, for the manifest's `decontamination`."""

    def __init__(self, matcher: Matcher):
        self.matcher = matcher
        self.rows = {name: 0 for name in matcher.index.names}
        self.samples: dict[str, list[dict]] = {name: [] for name in matcher.index.names}

    def add(self, match: Match, where: dict) -> bool:
        """Count a dropped row; True when it is kept as a sample ({**where, part, ngram})."""
        self.rows[match.benchmark] += 1
        if len(self.samples[match.benchmark]) >= self.matcher.samples:
            return False
        self.samples[match.benchmark].append({**where, "part": match.part, "ngram": match.ngram})
        return True

    def section(self) -> dict:
        return section(self.matcher, self.rows, self.samples)


def section(matcher: Matcher, rows: Mapping[str, int], samples: Mapping[str, list]) -> dict:
    """The manifest's `decontamination` section."""
    return {
        "index_sha256": matcher.index.sha256,
        "ngram": matcher.index.ngram,
        "compare": list(matcher.compare),
        "samples_per_benchmark": matcher.samples,
        "benchmarks": [{"name": name, "reason": reason, "rows_dropped": rows[name], "samples": samples[name]}
                       for name, reason in zip(matcher.index.names, matcher.reasons)],
    }


def merge_sections(sections: Sequence[dict | None], what: str) -> dict | None:
    """Several jobs' `decontamination` sections (e.g. one per SYNTH shard, in order) as one:
    rows summed, the first samples kept."""
    if not sections or sections[0] is None:
        return None
    merged = json.loads(json.dumps(sections[0]))
    for section in sections[1:]:
        if section is None or (section["index_sha256"], section["compare"]) != (merged["index_sha256"], merged["compare"]):
            raise ValueError(f"the {what} were made with different decontamination settings; rerun them")
        for total, bench in zip(merged["benchmarks"], section["benchmarks"]):
            total["rows_dropped"] += bench["rows_dropped"]
            total["samples"] = (total["samples"] + bench["samples"])[:merged["samples_per_benchmark"]]
    return merged


def example_parts(example) -> dict[str, list[str]]:
    """The compared texts of an ``encode.Example``: a chat thread's earlier turns (user and
    assistant) count as prompt, each a text of its own."""
    return {"prompt": [text for turn in example.history for text in turn] + [example.prompt],
            "analysis": [example.reasoning], "final": [example.final]}


def add_args(parser) -> None:
    """The builders' flags: no --decontam-index = no check (the output is as without this stage)."""
    g = parser.add_argument_group("benchmark decontamination (docs/decontamination.md)")
    g.add_argument("--decontam-index", type=Path, default=None,
                   help="index parquet from the decontam_index rule; rows sharing an n-gram with a benchmark are dropped")
    g.add_argument("--decontam-compare", nargs="+", choices=PARTS, default=list(PARTS),
                   help="the parts of each example compared (default: all)")
    g.add_argument("--decontam-samples", type=int, default=DEFAULT_SAMPLES,
                   help="dropped rows per benchmark named in the manifest, with the matching n-gram")


def from_args(args) -> Matcher | None:
    if getattr(args, "decontam_index", None) is None:
        return None
    return Matcher.open(args.decontam_index, args.decontam_compare, args.decontam_samples)
