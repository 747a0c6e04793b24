"""Per-step counters: the row accounting and token statistics every manifest reports.

All of them merge (shard results add up to the dataset's) and serialise to plain JSON.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .schema import SPLITS

TOKEN_FIELDS = ("prompt", "analysis", "final", "total")


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

    def add_written(self, split: str, prompt: int, analysis: int, final: int, categories: dict) -> None:
        self.accounting.written[split] += 1
        per_split = self.tokens[split]
        per_split["prompt"].add(prompt)
        per_split["analysis"].add(analysis)
        per_split["final"].add(final)
        per_split["total"].add(prompt + analysis + final)
        for name, value in categories.items():
            self.distributions.setdefault(name, Counter())[value if value is not None else "null"] += 1

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

    def merge(self, other: "DatasetStats") -> None:
        self.accounting.merge(other.accounting)
        for split in SPLITS:
            for name in TOKEN_FIELDS:
                self.tokens[split][name].merge(other.tokens[split][name])
        for name, counts in other.distributions.items():
            self.distributions.setdefault(name, Counter()).update(counts)

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
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetStats":
        stats = cls(accounting=Accounting.from_dict(data["accounting"]))
        for split in SPLITS:
            stats.tokens[split] = {k: TokenStats.from_dict(v) for k, v in data["tokens"][split].items()}
        stats.distributions = {k: Counter(v) for k, v in data["distributions"].items()}
        return stats
