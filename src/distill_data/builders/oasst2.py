"""OpenAssistant/oasst2 → `helpfulness_oasst2_15m`: the source-specific parts.

One example per assistant reply that passes the filters: reviewed, not deleted, the best of its
siblings (rank 0, or null for unranked replies; switchable), with a parent prompter message
found through `parent_id`. Prompt = the parent's text, final = the reply. English replies are
all kept and the others downsampled by the hash rule (salt `lang`) so that English is at least
`english_frac`; `lang` must be exactly `en` to count as English (`pt-BR`, `uk-UA`, … do not).

The rows of this dataset are assistant replies: prompter messages are only looked up as
parents and are counted apart. The source is small (135k messages), so it is read twice: a
first pass keeps what the filters and the English plan need (flags of every reply, text of
every prompter, no reply text); the second streams the replies in read order (sorted file
paths, then row order) to the budget driver.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import pyarrow as pa

from .. import budget
from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder
from ..hashing import content_digest, unit_hash
from ..io import SourceError, iter_parquet_columns, open_parquet
from ..schema import example_schema, source_type
from ..text import clean_text, normalize_text

DATASET_HF = "OpenAssistant/oasst2"
ID_PREFIX = "oasst2"
SOURCE_TYPE = source_type(["message_id", "parent_id", "message_tree_id", "lang"])
SCHEMA = example_schema(SOURCE_TYPE)
CATEGORY_FIELDS = ("lang",)
ENGLISH = "en"

# Drop reasons, in the order they are tested: a reply is counted under the first that applies.
DROP_MISSING_ID = "missing_id"
DROP_NOT_REVIEWED = "not_reviewed"      # review_result not true (false or null)
DROP_DELETED = "deleted"
DROP_NOT_BEST_RANK = "not_best_rank"    # rank other than 0 or null
DROP_ORPHAN_REPLY = "orphan_reply"      # no parent_id, parent missing, or parent not a prompter
DROP_EMPTY_PROMPT = "empty_prompt"
DROP_EMPTY_ANSWER = "empty_answer"
DROP_ENGLISH_TARGET = "english_target"
DROP_REASONS = (DROP_MISSING_ID, DROP_NOT_REVIEWED, DROP_DELETED, DROP_NOT_BEST_RANK, DROP_ORPHAN_REPLY,
                DROP_EMPTY_PROMPT, DROP_EMPTY_ANSWER, DROP_ENGLISH_TARGET, DROP_ENCODING_ERROR, DROP_TOO_LONG)

PLAN_TEXT_COLUMNS = ("message_id", "parent_id", "role", "text", "lang")
PLAN_COLUMNS = PLAN_TEXT_COLUMNS + ("review_result", "deleted", "rank")
REPLY_COLUMNS = ("message_id", "parent_id", "role", "text", "lang", "message_tree_id")


@dataclass(frozen=True)
class Oasst2Params(budget.BudgetParams):
    target_total_tokens: int = 15_000_000
    english_frac: float = 0.90
    require_rank_zero: bool = True


class Reply(NamedTuple):
    """What the first pass keeps of one assistant reply (no text)."""

    message_id: str
    verdict: str | None      # the filter that drops it, or None
    english: bool


# --- filters and plan ------------------------------------------------------------------------

def is_best_rank(rank) -> bool:
    """Rank 0, or no rank (unranked replies; NaN where a copy went through pandas)."""
    return rank is None or (isinstance(rank, float) and math.isnan(rank)) or rank == 0


def reply_drop(message_id: str, parent_id: str, review_result, deleted, rank, answer: str,
               prompter_texts: dict, require_rank_zero: bool) -> str | None:
    """The first filter a reply fails, or None (texts already clean)."""
    if not message_id:
        return DROP_MISSING_ID
    if review_result is not True:
        return DROP_NOT_REVIEWED
    if deleted is True:
        return DROP_DELETED
    if require_rank_zero and not is_best_rank(rank):
        return DROP_NOT_BEST_RANK
    if not parent_id or parent_id not in prompter_texts:
        return DROP_ORPHAN_REPLY
    if not prompter_texts[parent_id]:
        return DROP_EMPTY_PROMPT
    if not answer:
        return DROP_EMPTY_ANSWER
    return None


def english_keep_rate(english: int, other: int, english_frac: float) -> float:
    """Share of non-English replies to keep so that English is at least `english_frac` of
    the replies that pass the filters: min(1, E(1-f) / (f X))."""
    if other == 0 or english_frac <= 0:
        return 1.0
    return min(1.0, english * (1 - english_frac) / (english_frac * other))


def check_flag_types(path, schema: pa.Schema) -> None:
    """review_result and deleted must be booleans, rank a number: a wrong type would
    silently turn every reply into a drop."""
    expected = {"review_result": pa.types.is_boolean, "deleted": pa.types.is_boolean,
                "rank": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)}
    for name, ok in expected.items():
        kind = schema.field(name).type
        if not (ok(kind) or pa.types.is_null(kind)):
            raise SourceError(f"{path}: column {name} has type {kind}, expected {'a number' if name == 'rank' else 'bool'}")


# --- the source ------------------------------------------------------------------------------

class Oasst2Source(budget.CountedSource):
    builder = "oasst2"
    schema = SCHEMA
    category_fields = CATEGORY_FIELDS
    drop_reasons = DROP_REASONS
    rows_meaning = "assistant replies (prompter messages are not rows of this dataset: see messages)"

    def __init__(self, files: Sequence[str | Path], english_frac: float, require_rank_zero: bool,
                 seed: int, batch_size: int = 4096):
        super().__init__(sorted(str(f) for f in files))
        self.english_frac, self.require_rank_zero, self.seed = english_frac, require_rank_zero, seed
        self.messages = [Counter() for _ in self.files]   # per file: role -> messages
        self.prompter_texts: dict[str, str] = {}
        raw_replies = [list(self._scan(index, path, batch_size)) for index, path in enumerate(self.files)]
        self.replies = [[self._judge(r) for r in replies] for replies in raw_replies]
        self.plan = self._plan()

    # pass 1: prompter texts and the flags of every reply
    def _scan(self, index: int, path: Path, batch_size: int) -> Iterator[tuple]:
        check_flag_types(path, open_parquet(path, PLAN_COLUMNS).schema_arrow)
        for cols in iter_parquet_columns(path, PLAN_COLUMNS, batch_size, string_columns=PLAN_TEXT_COLUMNS):
            for mid, parent, role, text, lang, reviewed, deleted, rank in zip(*(cols[c] for c in PLAN_COLUMNS)):
                role = clean_text(role)
                self.messages[index][role if role in ("prompter", "assistant") else "other"] += 1
                if role == "prompter":
                    if clean_text(mid):
                        self.prompter_texts[clean_text(mid)] = clean_text(text)
                elif role == "assistant":
                    # the parent may come later in the file (rows are not in tree order):
                    # judge once every file is read
                    yield (clean_text(mid), clean_text(parent), reviewed, deleted, rank,
                           bool(clean_text(text)), clean_text(lang) == ENGLISH)

    def _judge(self, raw: tuple) -> Reply:
        mid, parent, reviewed, deleted, rank, has_answer, english = raw
        verdict = reply_drop(mid, parent, reviewed, deleted, rank, "x" if has_answer else "",
                             self.prompter_texts, self.require_rank_zero)
        return Reply(mid, verdict, english)

    def _plan(self) -> dict:
        passing = Counter(r.english for replies in self.replies for r in replies if r.verdict is None)
        keep = english_keep_rate(passing[True], passing[False], self.english_frac)
        return {"english_frac": self.english_frac, "passing_english": passing[True],
                "passing_other": passing[False], "non_en_keep": keep, "seed": self.seed}

    @property
    def file_rows(self) -> Sequence[int]:
        return [len(replies) for replies in self.replies]

    # pass 2: the replies, in read order
    def batches(self, batch_size: int) -> Iterator[budget.Batch]:
        for index, path in enumerate(self.files):
            replies = iter(self.replies[index])
            row = 0
            for cols in iter_parquet_columns(path, REPLY_COLUMNS, batch_size, string_columns=REPLY_COLUMNS):
                n = len(cols["message_id"])
                positions, items = [], []
                for i in range(n):
                    if clean_text(cols["role"][i]) != "assistant":
                        continue
                    reply = next(replies, None)
                    if reply is None or reply.message_id != clean_text(cols["message_id"][i]):
                        raise SourceError(f"{path}: row {row + i} is not the reply read by the first pass; "
                                          "the file changed during the build")
                    positions.append(row + i)
                    items.append(self._candidate(reply, {c: cols[c][i] for c in REPLY_COLUMNS}))
                row += n
                if items:
                    yield budget.Batch(index, positions, items)

    def _candidate(self, reply: Reply, row: dict) -> Example | str:
        if reply.verdict:
            return reply.verdict
        if not reply.english and unit_hash(reply.message_id, self.seed, "lang") > self.plan["non_en_keep"]:
            return DROP_ENGLISH_TARGET
        parent = clean_text(row["parent_id"])
        return Example(
            key=reply.message_id,
            id=f"{ID_PREFIX}:{reply.message_id}",
            source={"dataset": DATASET_HF, "message_id": reply.message_id, "parent_id": parent,
                    "message_tree_id": clean_text(row["message_tree_id"]) or None,
                    "lang": clean_text(row["lang"]) or None},
            prompt=self.prompter_texts[parent],
            reasoning="",
            final=clean_text(row["text"]),
            group=clean_text(row["message_tree_id"]),  # one thread on one side of the split
            content=content_digest(normalize_text(self.prompter_texts[parent]), normalize_text(row["text"])),
        )

    def describe_inputs(self, rows_read, stop):
        inputs = super().describe_inputs(rows_read, stop)
        for entry, counts in zip(inputs, self.messages):
            entry["messages"] = sum(counts.values())
            entry["prompter_messages"] = counts["prompter"]
        return inputs

    def manifest_extra(self) -> dict:
        total = Counter()
        for counts in self.messages:
            total.update(counts)
        return {
            "english_plan": self.plan,
            "messages": {"total": sum(total.values()), "assistant": total["assistant"],
                         "other_roles": total["other"]},
            "prompter_messages": total["prompter"],
        }


def build(input_dir: str | Path, output_dir: str | Path, encoder: ExampleEncoder, params: Oasst2Params,
          dataset: str = "helpfulness_oasst2_15m", batch_size: int = 4096) -> dict:
    files = budget.find_input_files(input_dir, "*.parquet", "oasst2 input folder", recursive=True)
    source = Oasst2Source(files, params.english_frac, params.require_rank_zero, params.seed, batch_size)
    return budget.build(source, encoder, params, dataset=dataset, dataset_dir=Path(output_dir),
                        batch_size=batch_size)
