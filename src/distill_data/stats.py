"""Per-step counters: the row accounting and token statistics every manifest reports.

All of them merge (shard results add up to the dataset's) and serialise to plain JSON.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

from .schema import SPLITS

TOKEN_FIELDS = ("prompt", "analysis", "final", "total")

log = logging.getLogger("distill_data")


class AccountingError(RuntimeError):
    """Rows were lost or double counted: a bug, never a data problem."""


@dataclass
class Accounting:
    """rows read = rows written + sum of drops, each drop under exactly one reason."""

    rows_read: int = 0
    written: Counter = field(default_factory=Counter)
    drops: Counter = field(default_factory=Counter)

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.drops[reason] += count

    def merge(self, other: "Accounting") -> None:
        self.rows_read += other.rows_read
        self.written.update(other.written)
        self.drops.update(other.drops)

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())

    def check(self, where: str) -> None:
        lost = self.rows_read - self.rows_written - sum(self.drops.values())
        if lost:
            raise AccountingError(
                f"{where}: rows read ({self.rows_read}) != written ({self.rows_written}) + "
                f"dropped ({sum(self.drops.values())}); {lost} rows unaccounted for"
            )

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_written": {split: self.written.get(split, 0) for split in SPLITS},
            "rows_written_total": self.rows_written,
            "dropped": dict(sorted(self.drops.items())),
            "dropped_total": sum(self.drops.values()),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Accounting":
        return cls(data["rows_read"], Counter(data["rows_written"]), Counter(data["dropped"]))


@dataclass
class TokenStats:
    count: int = 0
    sum: int = 0
    min: int | None = None
    max: int | None = None

    def add(self, value: int) -> None:
        self.count += 1
        self.sum += value
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max

    def add_many(self, values) -> None:
        """`add` of every value of an integer numpy array."""
        if not len(values):
            return
        low, high = int(values.min()), int(values.max())
        self.count += len(values)
        self.sum += int(values.sum())
        self.min = low if self.min is None or low < self.min else self.min
        self.max = high if self.max is None or high > self.max else self.max

    def merge(self, other: "TokenStats") -> None:
        if not other.count:
            return
        self.count += other.count
        self.sum += other.sum
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)

    def to_dict(self) -> dict:
        mean = round(self.sum / self.count, 3) if self.count else None
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max, "mean": mean}

    @classmethod
    def from_dict(cls, data: dict) -> "TokenStats":
        return cls(data["count"], data["sum"], data["min"], data["max"])


@dataclass
class DatasetStats:
    """What the manifest reports about the rows written: accounting, tokens, distributions."""

    accounting: Accounting = field(default_factory=Accounting)
    tokens: dict = field(default_factory=lambda: {s: {f: TokenStats() for f in TOKEN_FIELDS} for s in SPLITS})
    distributions: dict = field(default_factory=dict)  # field name -> Counter of written rows
    # Rows whose category is known, by category: drops by reason, rows written, their tokens.
    categories: "CategoryCounts" = field(default_factory=lambda: CategoryCounts())

    def add_written(self, split: str, prompt: int, analysis: int, final: int, categories: dict) -> None:
        self.accounting.written[split] += 1
        per_split = self.tokens[split]
        per_split["prompt"].add(prompt)
        per_split["analysis"].add(analysis)
        per_split["final"].add(final)
        per_split["total"].add(prompt + analysis + final)
        for name, value in categories.items():
            self.distributions.setdefault(name, Counter())[value if value is not None else "null"] += 1
        self.categories.add_written(categories, prompt + analysis + final, analysis + final)

    def drop(self, reason: str, categories: dict | None = None) -> None:
        """Count a dropped row; with its categories (e.g. exercise, language) when known."""
        self.accounting.drop(reason)
        if categories:
            self.categories.add_drop(categories, reason)

    def add_written_many(self, split: str, prompt, analysis, final, categories: dict) -> None:
        """`add_written` of many rows: token counts as int64 numpy arrays, and each category
        field's values as a list."""
        if not len(prompt):
            return
        self.accounting.written[split] += len(prompt)
        per_split = self.tokens[split]
        per_split["prompt"].add_many(prompt)
        per_split["analysis"].add_many(analysis)
        per_split["final"].add_many(final)
        per_split["total"].add_many(prompt + analysis + final)
        for name, values in categories.items():
            self.distributions.setdefault(name, Counter()).update(v if v is not None else "null" for v in values)
        total = (prompt + analysis + final).tolist()
        assistant = (analysis + final).tolist()
        for name, values in categories.items():
            self.categories.add_written_many(name, values, total, assistant)

    def merge(self, other: "DatasetStats") -> None:
        self.accounting.merge(other.accounting)
        for split in SPLITS:
            for name in TOKEN_FIELDS:
                self.tokens[split][name].merge(other.tokens[split][name])
        for name, counts in other.distributions.items():
            self.distributions.setdefault(name, Counter()).update(counts)
        self.categories.merge(other.categories)

    def total_tokens(self) -> int:
        return sum(self.tokens[s]["total"].sum for s in SPLITS)

    def assistant_tokens(self) -> int:
        return sum(self.tokens[s]["analysis"].sum + self.tokens[s]["final"].sum for s in SPLITS)

    def to_dict(self) -> dict:
        all_splits = {name: TokenStats() for name in TOKEN_FIELDS}
        for split in SPLITS:
            for name in TOKEN_FIELDS:
                all_splits[name].merge(self.tokens[split][name])
        return {
            "accounting": self.accounting.to_dict(),
            "tokens": {
                "all": {k: v.to_dict() for k, v in all_splits.items()},
                **{s: {k: v.to_dict() for k, v in self.tokens[s].items()} for s in SPLITS},
            },
            "total_tokens": self.total_tokens(),
            "assistant_tokens": self.assistant_tokens(),
            "distributions": {k: dict(sorted(v.items())) for k, v in sorted(self.distributions.items())},
            **({"category_counts": self.categories.to_dict()} if self.categories.cells else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetStats":
        stats = cls(accounting=Accounting.from_dict(data["accounting"]))
        for split in SPLITS:
            stats.tokens[split] = {k: TokenStats.from_dict(v) for k, v in data["tokens"][split].items()}
        stats.distributions = {k: Counter(v) for k, v in data["distributions"].items()}
        stats.categories = CategoryCounts.from_dict(data.get("category_counts", {}))
        return stats


# --- accounting by category ----------------------------------------------------------------------

# Rows below this many reaching a reason in one category never raise a warning: a handful of
# drops in a rare category says nothing about a parser.
WARN_MIN_ROWS = 20
# A reason that removes more than this share of one category's rows that reached it is loud.
WARN_DROP_SHARE = 0.5

# The order reasons are tested in: a reason, or a tuple of reasons one test gives (they share
# the rows that reached it, e.g. result_mismatch / no_result_stated).
Stage = Union[str, Sequence[str]]


@dataclass
class CategoryCell:
    rows: int = 0
    written: int = 0
    total_tokens: int = 0
    assistant_tokens: int = 0
    dropped: Counter = field(default_factory=Counter)


class CategoryCounts:
    """Per category field (`exercise`, `language`, …) and value: rows counted, rows written
    with their tokens, and drops by reason. Merges like every other counter."""

    def __init__(self):
        self.cells: dict[str, dict[str, CategoryCell]] = {}

    def _cell(self, name: str, value) -> CategoryCell:
        key = value if value is not None else "null"
        cells = self.cells.get(name)
        if cells is None:
            cells = self.cells[name] = {}
        cell = cells.get(key)
        if cell is None:  # not setdefault: that would build a cell (and its Counter) every call
            cell = cells[key] = CategoryCell()
        return cell

    def add_drop(self, categories: dict, reason: str) -> None:
        for name, value in categories.items():
            cell = self._cell(name, value)
            cell.rows += 1
            cell.dropped[reason] += 1

    def add_written(self, categories: dict, total_tokens: int, assistant_tokens: int) -> None:
        for name, value in categories.items():
            cell = self._cell(name, value)
            cell.rows += 1
            cell.written += 1
            cell.total_tokens += total_tokens
            cell.assistant_tokens += assistant_tokens

    def add_written_many(self, name: str, values: list, total_tokens: list, assistant_tokens: list) -> None:
        """`add_written` of many rows, for one category field."""
        for value, total, assistant in zip(values, total_tokens, assistant_tokens):
            cell = self._cell(name, value)
            cell.rows += 1
            cell.written += 1
            cell.total_tokens += total
            cell.assistant_tokens += assistant

    def merge(self, other: "CategoryCounts") -> None:
        for name, values in other.cells.items():
            for value, theirs in values.items():
                mine = self._cell(name, value)
                mine.rows += theirs.rows
                mine.written += theirs.written
                mine.total_tokens += theirs.total_tokens
                mine.assistant_tokens += theirs.assistant_tokens
                mine.dropped.update(theirs.dropped)

    def to_dict(self) -> dict:
        return {name: {value: {"rows": c.rows, "written": c.written, "total_tokens": c.total_tokens,
                               "assistant_tokens": c.assistant_tokens, "dropped": dict(sorted(c.dropped.items()))}
                       for value, c in sorted(values.items())}
                for name, values in sorted(self.cells.items())}

    @classmethod
    def from_dict(cls, data: dict) -> "CategoryCounts":
        counts = cls()
        for name, values in data.items():
            for value, c in values.items():
                counts.cells.setdefault(name, {})[value] = CategoryCell(
                    c["rows"], c["written"], c["total_tokens"], c["assistant_tokens"], Counter(c["dropped"]))
        return counts

    def report(self, stages: Sequence[Stage]) -> dict:
        """The manifest's `drops_by_category`: per field and value, the rows counted, written,
        and for every reason the rows that reached its test and the rows it dropped. `stages`
        is the order the reasons are tested in; the rows reaching a stage are those not
        dropped by an earlier one."""
        table = {}
        for name, values in sorted(self.cells.items()):
            table[name] = {}
            for value, cell in sorted(values.items()):
                reasons = {}
                remaining = cell.rows
                for stage in _stages(stages, cell.dropped):
                    for reason in stage:
                        reasons[reason] = {"reached": remaining, "dropped": cell.dropped.get(reason, 0)}
                    remaining -= sum(cell.dropped.get(r, 0) for r in stage)
                table[name][value] = {"rows": cell.rows, "written": cell.written,
                                      "dropped_total": sum(cell.dropped.values()), "reasons": reasons}
        return table

    def warnings(self, stages: Sequence[Stage], by_design: Iterable[str] = (),
                 min_rows: int = WARN_MIN_ROWS, share: float = WARN_DROP_SHARE) -> list[str]:
        """One line per (category, reason) where a reason that is not a sampling decision
        (`by_design`) removed more than `share` of the category's rows that reached it."""
        by_design = set(by_design)
        found = []
        for name, values in self.report(stages).items():
            for value, row in values.items():
                for reason, counts in row["reasons"].items():
                    reached, dropped = counts["reached"], counts["dropped"]
                    if reason in by_design or reached < min_rows or dropped <= share * reached:
                        continue
                    found.append(f"{name}={value}: {reason} dropped {dropped} of the {reached} rows that "
                                 f"reached it ({dropped / reached:.0%}); a whole category lost to one filter "
                                 "is usually a parser or data problem, check a few of these rows")
        return found


def _stages(stages: Sequence[Stage], dropped: Counter) -> list[tuple[str, ...]]:
    """`stages` as tuples, then any reason not listed (last, in name order)."""
    ordered = [(s,) if isinstance(s, str) else tuple(s) for s in stages]
    listed = {r for stage in ordered for r in stage}
    ordered += [(r,) for r in sorted(dropped) if r not in listed]
    return ordered


# --- split groups --------------------------------------------------------------------------------

class SplitGroups:
    """Distinct `split_group` values per split, to report the groups seen in both (CONTRACT.md:
    one problem on one side, so it must be 0). Groups are kept as 64-bit integers."""

    def __init__(self):
        self.groups: dict[str, set[int]] = {split: set() for split in SPLITS}

    def add(self, split: str, groups: Iterable[str]) -> None:
        self.groups[split].update(int(g, 16) for g in groups)

    def report(self, duplicates_removed: int) -> dict:
        both = len(self.groups["train"] & self.groups["validation"])
        return {
            "groups": {split: len(self.groups[split]) for split in SPLITS},
            "in_both_splits": both,
            "duplicates_removed": duplicates_removed,
        }
