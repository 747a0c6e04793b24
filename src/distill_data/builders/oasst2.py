"""OpenAssistant/oasst2 → `helpfulness_oasst2_15m`: the source-specific parts.

One example per prompter message that has an acceptable reply, with the conversation before it.

- A message is *acceptable* when `review_result` is true, `deleted` is not true and its text is
  not empty. A reply is a candidate when it is acceptable, its parent is a prompter message,
  and every message above it (that prompter, and the whole thread up to the root) is
  acceptable too; a failing ancestor drops every reply below it (`bad_ancestor`).
- Of a prompter's candidate replies, one is the example (`require_rank_zero`, the default):
  the lowest `rank`; unranked replies count only when no candidate sibling is ranked, and
  then the one with the smallest `u(message_id, seed, "best")` is taken (the same hash breaks
  a tie of ranks). The others are `not_best_reply`. With `require_rank_zero: false` every
  candidate reply is an example (several per prompt).
- The prompt is the whole thread from the root to that prompter message: earlier prompter
  messages as user turns and the replies on the path as assistant `final` turns
  (``Example.history``); only the last reply is labelled. `include_history: false` keeps only
  the prompter message (the single-turn form of the original builds).
- English is the thread's root language (`lang` exactly `en`: `pt-BR`, `uk-UA`, … are not).
  English examples are all kept and the others downsampled by the hash rule (salt `lang`) so
  that English is at least `english_frac` on average; an unreachable target stops the build.

The rows of this dataset are assistant replies (each one is an example or dropped under one
reason); prompter messages are counted apart. The source is small (135k messages), so it is
read twice: a first pass keeps the thread structure (flags of every message, text of every
prompter and of every reply that has a follow-up), the second streams the replies in read
order (sorted file paths, then row order) to the budget driver; with `order: spread` the second
pass builds every reply's candidate first and hands them over by message tree, the trees in the
seeded order u(tree id, seed, "spread") (spread.py).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import pyarrow as pa

from .. import budget, spread
from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder
from ..hashing import content_digest, unit_hash
from ..io import SourceError, category_codes, clean_strings, iter_parquet_batches, open_parquet, plain_column
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
DROP_ORPHAN_REPLY = "orphan_reply"      # no parent_id, parent missing, or parent not a prompter
DROP_BAD_ANCESTOR = "bad_ancestor"      # a message above it (its prompt included) is not
                                        # acceptable, missing, or the thread does not alternate
DROP_EMPTY_PROMPT = "empty_prompt"
DROP_EMPTY_ANSWER = "empty_answer"
DROP_NOT_BEST_REPLY = "not_best_reply"  # a sibling reply is the prompt's example
DROP_ENGLISH_TARGET = "english_target"
DROP_REASONS = (DROP_MISSING_ID, DROP_NOT_REVIEWED, DROP_DELETED, DROP_ORPHAN_REPLY, DROP_BAD_ANCESTOR,
                DROP_EMPTY_PROMPT, DROP_EMPTY_ANSWER, DROP_NOT_BEST_REPLY, DROP_ENGLISH_TARGET,
                DROP_ENCODING_ERROR, DROP_TOO_LONG)

PLAN_TEXT_COLUMNS = ("message_id", "parent_id", "role", "text", "lang")
PLAN_COLUMNS = PLAN_TEXT_COLUMNS + ("review_result", "deleted", "rank")
REPLY_COLUMNS = ("message_id", "parent_id", "role", "text", "lang", "message_tree_id")
PROMPTER, ASSISTANT = "prompter", "assistant"


@dataclass(frozen=True)
class Oasst2Params(budget.BudgetParams):
    target_total_tokens: int = 15_000_000
    english_frac: float = 0.90
    # One example per prompt: its best reply (see the module docstring); false: every
    # candidate reply is an example.
    require_rank_zero: bool = True
    # The earlier turns of the thread before the prompt; false: the prompter message alone.
    include_history: bool = True


class Message(NamedTuple):
    """What the first pass keeps of one message."""

    parent: str
    role: str
    reviewed: bool           # review_result is true
    deleted: bool            # deleted is true
    text: str                # clean; "" when empty (and, after the first pass, for replies
                             # that nothing follows: their text is read in the second pass)
    lang: str
    rank: float | None

    @property
    def acceptable(self) -> bool:
        return self.reviewed and not self.deleted


class Reply(NamedTuple):
    """The first pass's verdict on one assistant reply (no text)."""

    message_id: str
    verdict: str | budget.Drop | None   # why it is dropped, or None: an example candidate
    english: bool                        # the thread's root language is English


class Thread(NamedTuple):
    """A prompter message's place in its thread: the messages from the root down to it, or why
    replies to it cannot be examples."""

    path: tuple[str, ...]                # root … prompter message ids
    problem: budget.Drop | None


# --- filters and plan ------------------------------------------------------------------------

def rank_value(rank) -> float | None:
    """The rank as a number, or None when unranked (null, or NaN where a copy went through pandas)."""
    if rank is None or (isinstance(rank, float) and math.isnan(rank)):
        return None
    return float(rank)


def own_problem(message_id: str, reviewed: bool, deleted: bool) -> str | None:
    """The first of the reply's own flags that fails, or None."""
    if not message_id:
        return DROP_MISSING_ID
    if not reviewed:
        return DROP_NOT_REVIEWED
    if deleted:
        return DROP_DELETED
    return None


def best_reply(candidates: Sequence[tuple[str, float | None]], seed: int) -> str:
    """The example among a prompt's candidate replies, given as (message_id, rank): the lowest
    rank; unranked replies only when none is ranked; ties and unranked ones by the smallest
    u(message_id, seed, "best")."""
    if len(candidates) == 1:   # the common case: nothing to compare
        return candidates[0][0]
    ranked = [c for c in candidates if c[1] is not None]
    pool = ranked or candidates
    return min(pool, key=lambda c: (c[1] if ranked else 0.0, unit_hash(c[0], seed, "best"), c[0]))[0]


def english_keep_rate(english: int, other: int, english_frac: float) -> float:
    """Share of non-English examples to keep so that English is at least `english_frac` of
    the examples that pass the filters: min(1, E(1-f) / (f X))."""
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
    by_design_reasons = (DROP_NOT_BEST_REPLY,)  # one reply per prompt
    rows_meaning = "assistant replies (prompter messages are not rows of this dataset: see messages)"
    empty_hint = ("check chat.input_dir, or lower chat.english_frac (--english-frac); "
                  "common.train_frac sets the validation share")

    def __init__(self, files: Sequence[str | Path], english_frac: float, require_rank_zero: bool,
                 seed: int, batch_size: int = 4096, include_history: bool = True, order: str = "head"):
        super().__init__(sorted(str(f) for f in files))
        self.order = spread.check_order(order)
        self.english_frac, self.require_rank_zero, self.seed = english_frac, require_rank_zero, seed
        self.include_history = include_history
        self.messages = [Counter() for _ in self.files]   # per file: role -> messages
        self.nodes: dict[str, Message] = {}
        reply_ids = [list(self._scan(index, path, batch_size)) for index, path in enumerate(self.files)]
        self._forget_leaf_texts()
        self.threads: dict[str, Thread] = {}
        self._normalized_texts: dict[str, str] = {}
        self.replies = self._judge(reply_ids)
        self.plan = self._plan()
        self.written = {"rows": Counter(), "total_tokens": Counter(), "assistant_tokens": Counter()}
        self.per_prompt: Counter = Counter()
        self.turns: Counter = Counter()

    # pass 1: the thread structure
    def _scan(self, index: int, path: Path, batch_size: int) -> Iterator[str]:
        check_flag_types(path, open_parquet(path, PLAN_COLUMNS).schema_arrow)
        counts = self.messages[index]
        for raw in iter_parquet_batches(path, PLAN_COLUMNS, batch_size, string_columns=PLAN_TEXT_COLUMNS):
            # role and lang take few values: cleaned once per value, not per message
            role_codes, role_values = category_codes(raw.column("role"))
            lang_codes, lang_values = category_codes(raw.column("lang"))
            role_values = [v or "" for v in role_values]
            lang_values = [v or "" for v in lang_values]
            kinds = [v if v in (PROMPTER, ASSISTANT) else "other" for v in role_values]
            cols = {c: plain_column(raw.column(c)).to_pylist() for c in ("review_result", "deleted", "rank")}
            cols.update((c, clean_strings(raw.column(c))) for c in ("message_id", "parent_id", "text"))
            for code, n in Counter(role_codes).items():   # codes in first-seen order, as the rows
                counts[kinds[code]] += n
            nodes = self.nodes
            for mid, parent, role_code, text, lang_code, reviewed, deleted, rank in zip(
                    cols["message_id"], cols["parent_id"], role_codes, cols["text"], lang_codes,
                    cols["review_result"], cols["deleted"], cols["rank"]):
                role = role_values[role_code]
                if mid and mid not in nodes:  # a repeated id keeps its first row
                    nodes[mid] = Message(parent, role, reviewed is True, deleted is True, text,
                                         lang_values[lang_code], rank_value(rank))
                if role == ASSISTANT:
                    yield mid

    def _forget_leaf_texts(self) -> None:
        """Keep the text of prompters and of replies that something follows (they are history);
        a reply's own text is read again in the second pass."""
        followed = {m.parent for m in self.nodes.values() if m.role == PROMPTER and m.parent}
        for mid, m in self.nodes.items():
            if m.role == ASSISTANT and mid not in followed and m.text:
                self.nodes[mid] = m._replace(text="x")  # "not empty" is all the first pass needs

    def thread(self, prompter: str) -> Thread:
        """The thread above a prompter message (memoized: threads share their upper part)."""
        known = self.threads.get(prompter)
        if known is not None:
            return known
        chain, node = [], prompter   # walk up to the root or to a known thread
        while node and node not in self.threads and node not in chain:
            chain.append(node)
            message = self.nodes.get(node)
            if message is None or message.role != PROMPTER or not message.parent:
                break
            reply = self.nodes.get(message.parent)
            if reply is None or reply.role != ASSISTANT:
                break
            node = reply.parent
        above = self.threads.get(node) if node not in chain else None
        for mid in reversed(chain):
            above = self._extend(mid, above)
            self.threads[mid] = above
        return self.threads[prompter]

    def _extend(self, prompter: str, above: Thread | None) -> Thread:
        """The thread of `prompter` from the thread of the prompter above it (None: none known)."""
        message = self.nodes.get(prompter)
        if message is None:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"message {prompter} is missing"))
        if message.role != PROMPTER:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"message {prompter} is a {message.role or 'no-role'} "
                                                             "message where a prompt should be"))
        if not message.acceptable:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"prompt {prompter} is not reviewed or is deleted"))
        if not message.parent:
            return Thread((prompter,), None)   # the root
        reply = self.nodes.get(message.parent)
        if reply is None:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"reply {message.parent} above {prompter} is missing"))
        if reply.role != ASSISTANT:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"the thread does not alternate at {prompter}"))
        if not reply.acceptable or not reply.text:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"reply {message.parent} above {prompter} is "
                                                             "not reviewed, deleted or empty"))
        if above is None:   # a cycle, or the walk stopped at a missing prompt
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"the thread above {prompter} is broken"))
        if above.problem is not None:
            return Thread((), above.problem)
        if not self.nodes[above.path[-1]].text:
            return Thread((), budget.Drop(DROP_BAD_ANCESTOR, f"prompt {above.path[-1]} above {prompter} is empty"))
        return Thread(above.path + (message.parent, prompter), None)

    def _judge(self, reply_ids: list[list[str]]) -> list[list[Reply]]:
        verdicts: dict[int, str | budget.Drop | None] = {}
        candidates: dict[str, list[tuple[str, float | None]]] = {}
        flat = [(f, i, mid) for f, ids in enumerate(reply_ids) for i, mid in enumerate(ids)]
        for n, (_, _, mid) in enumerate(flat):
            verdicts[n] = verdict = self._reply_problem(mid)
            if verdict is None:
                candidates.setdefault(self.nodes[mid].parent, []).append((mid, self.nodes[mid].rank))
        best = {parent: best_reply(c, self.seed) for parent, c in candidates.items()}
        replies: list[list[Reply]] = [[] for _ in reply_ids]
        english_of: dict[str, bool] = {}   # per prompt: its thread's root is English
        for n, (f, _, mid) in enumerate(flat):
            verdict, english = verdicts[n], False
            if verdict is None:
                parent = self.nodes[mid].parent
                if self.require_rank_zero and best[parent] != mid:
                    verdict = budget.Drop(DROP_NOT_BEST_REPLY, f"{best[parent]} is the reply to {parent}")
                english = english_of.get(parent)
                if english is None:
                    english = english_of[parent] = self.nodes[self.thread(parent).path[0]].lang == ENGLISH
            replies[f].append(Reply(mid, verdict, english))
        return replies

    def _reply_problem(self, mid: str) -> str | budget.Drop | None:
        message = self.nodes.get(mid)
        if message is None:
            return DROP_MISSING_ID
        if message.role != ASSISTANT:   # a repeated id whose first row was not this reply
            return budget.Drop(DROP_ORPHAN_REPLY, f"id {mid} is also a {message.role or 'no-role'} message")
        problem = own_problem(mid, message.reviewed, message.deleted)
        if problem is not None:
            return problem
        parent = self.nodes.get(message.parent) if message.parent else None
        if parent is None or parent.role != PROMPTER:
            return DROP_ORPHAN_REPLY
        thread = self.threads.get(message.parent) or self.thread(message.parent)  # most are known
        if thread.problem is not None:
            return thread.problem
        if not parent.text:
            return DROP_EMPTY_PROMPT
        if not message.text:
            return DROP_EMPTY_ANSWER
        return None

    def _plan(self) -> dict:
        passing = Counter(r.english for replies in self.replies for r in replies if r.verdict is None)
        english, other = passing[True], passing[False]
        if self.english_frac > 0 and other and not english:
            raise budget.TargetError(
                f"the chat English target cannot be met: english_frac is {self.english_frac}, but none of the "
                f"{other} examples that pass the filters has an English thread (root lang 'en'), so every one "
                "would be dropped; set chat.english_frac (--english-frac) to 0 to keep them")
        keep = english_keep_rate(english, other, self.english_frac)
        return {"english_frac": self.english_frac, "passing_english": english,
                "passing_other": other, "non_en_keep": keep, "seed": self.seed,
                "language_of": "the thread's root message"}

    @property
    def file_rows(self) -> Sequence[int]:
        return [len(replies) for replies in self.replies]

    def read_order(self) -> dict:
        if self.order == "head":
            return {"order": "head"}
        return {"order": "spread", "block": "the replies of one message tree (message_tree_id)",
                "seed": self.seed, "within_block": "file order"}

    def position_extents(self):
        return [sum(counts.values()) for counts in self.messages]   # every parquet row

    def batches(self, batch_size: int) -> Iterator[budget.Batch]:
        if self.order == "head":
            for index, positions, items, _ in self._replies(batch_size):
                yield budget.Batch(index, positions, items)
            return
        yield from self._spread_batches(batch_size)

    def _spread_batches(self, batch_size: int) -> Iterator[budget.Batch]:
        """Every reply's candidate (kept in memory: the source is small), then the message trees
        in the seeded order u(tree id, seed, "spread"), a tree's replies in file order."""
        rows = []   # (tree, file, row, candidate)
        for index, positions, items, trees in self._replies(batch_size):
            rows += zip(trees, [index] * len(items), positions, items)
        tree_ids = sorted({tree for tree, _, _, _ in rows})
        rank = {tree_ids[r]: n for n, r in enumerate(spread.seeded_order(tree_ids, self.seed))}
        rows.sort(key=lambda row: rank[row[0]])   # stable: file order within a tree
        batch = []
        for row in rows:
            if batch and (len(batch) >= batch_size or batch[-1][1] != row[1]):
                yield budget.Batch(batch[0][1], [r[2] for r in batch], [r[3] for r in batch])
                batch = []
            batch.append(row)
        if batch:
            yield budget.Batch(batch[0][1], [r[2] for r in batch], [r[3] for r in batch])

    # pass 2: the replies, in read order. A reply dropped by its verdict or the English target
    # needs only its id and lang: the other columns are made Python strings for the rest only.
    def _replies(self, batch_size: int) -> Iterator[tuple[int, list, list, list]]:
        """(file, rows, candidates, tree ids) of the replies of each parquet batch, in file order."""
        for index, path in enumerate(self.files):
            replies = iter(self.replies[index])
            row = 0
            for raw in iter_parquet_batches(path, REPLY_COLUMNS, batch_size, string_columns=REPLY_COLUMNS):
                n = raw.num_rows
                role_codes, role_values = category_codes(raw.column("role"))
                assistant = [v == ASSISTANT for v in role_values]
                ids = clean_strings(raw.column("message_id"))
                tree_column = clean_strings(raw.column("message_tree_id"))
                lang_codes, langs = category_codes(raw.column("lang"))
                categories = [{"lang": lang} for lang in langs]
                positions, items, full, trees = [], [], [], []
                for i in [i for i, code in enumerate(role_codes) if assistant[code]]:
                    reply = next(replies, None)
                    if reply is None or reply.message_id != ids[i]:
                        raise SourceError(f"{path}: row {row + i} is not the reply read by the first pass; "
                                          "the file changed during the build")
                    positions.append(row + i)
                    trees.append(tree_column[i] or reply.message_id)   # no tree: a tree of its own
                    dropped = self._early_drop(reply, categories[lang_codes[i]])
                    if dropped is None:
                        full.append((len(items), i, reply))
                    items.append(dropped)
                if full:
                    taken = raw.take(pa.array([i for _, i, _ in full], type=pa.int64()))
                    cols = {c: plain_column(taken.column(c)).to_pylist() for c in REPLY_COLUMNS}
                    for j, (k, _, reply) in enumerate(full):
                        items[k] = self._candidate(reply, {c: cols[c][j] for c in REPLY_COLUMNS})
                row += n
                if items:
                    yield index, positions, items, trees

    def _early_drop(self, reply: Reply, categories: dict) -> budget.Drop | None:
        """The drop of a reply that `_candidate` would drop before looking at its texts, or None."""
        if reply.verdict:
            return budget.with_categories(reply.verdict, categories)
        if not reply.english and unit_hash(reply.message_id, self.seed, "lang") > self.plan["non_en_keep"]:
            return budget.with_categories(DROP_ENGLISH_TARGET, categories)
        return None

    def _normalized(self, mid: str) -> str:
        """normalize_text of a message's (first-pass) text, once per message: threads share
        their upper turns."""
        known = self._normalized_texts.get(mid)
        if known is None:
            known = self._normalized_texts[mid] = normalize_text(self.nodes[mid].text)
        return known

    def _candidate(self, reply: Reply, row: dict) -> Example | budget.Drop:
        categories = {"lang": clean_text(row["lang"]) or None}
        if reply.verdict:
            return budget.with_categories(reply.verdict, categories)
        if not reply.english and unit_hash(reply.message_id, self.seed, "lang") > self.plan["non_en_keep"]:
            return budget.with_categories(DROP_ENGLISH_TARGET, categories)
        parent = clean_text(row["parent_id"])
        path = self.thread(parent).path   # root, reply, prompt, reply, …, parent
        history = ()
        if self.include_history:
            history = tuple((self.nodes[u].text, self.nodes[a].text) for u, a in zip(path[:-1:2], path[1:-1:2]))
        prompt, final = self.nodes[parent].text, clean_text(row["text"])
        # the texts shown are those of `path` (root … parent), or the prompt alone
        shown = [self._normalized(mid) for mid in (path if self.include_history else (parent,))]
        return Example(
            key=reply.message_id,
            id=f"{ID_PREFIX}:{reply.message_id}",
            source={"dataset": DATASET_HF, "message_id": reply.message_id, "parent_id": parent,
                    "message_tree_id": clean_text(row["message_tree_id"]) or None,
                    "lang": clean_text(row["lang"]) or None},
            prompt=prompt,
            reasoning="",
            final=final,
            group=clean_text(row["message_tree_id"]),  # one thread on one side of the split
            # the whole conversation shown, and the reply
            content=content_digest("\x00".join(shown), normalize_text(final)),
            history=history,
        )

    def on_written(self, row) -> None:
        """Tally a written row: the English target as realised, examples per prompt, turns."""
        parent = row.example.source["parent_id"]
        english = self.nodes[self.thread(parent).path[0]].lang == ENGLISH
        for measure, value in (("rows", 1), ("total_tokens", row.total_tokens),
                               ("assistant_tokens", row.assistant_tokens)):
            self.written[measure][english] += value
        self.per_prompt[parent] += 1
        self.turns[len(row.example.history) + 1] += 1

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
        realised = {}
        for measure, counts in self.written.items():
            whole = counts[True] + counts[False]
            realised[measure] = {"english": counts[True], "total": whole,
                                 "english_share": round(counts[True] / whole, 6) if whole else None}
        return {
            "english_plan": self.plan,
            "english_target": {
                "target_english_frac": self.english_frac,
                "realised": realised,
                "meaning": "English = the thread's root message has lang 'en'; non-English examples are "
                           "kept with probability non_en_keep, so the target holds on average over the "
                           "examples that pass the filters (a budget cut takes a random-like prefix)",
            },
            "messages": {"total": sum(total.values()), "assistant": total["assistant"],
                         "other_roles": total["other"]},
            "prompter_messages": total["prompter"],
            "examples_per_prompt": {"prompts": len(self.per_prompt),
                                    "max": max(self.per_prompt.values(), default=0)},
            "turns_per_example": {str(k): v for k, v in sorted(self.turns.items())},
        }


def build(input_dir: str | Path, output_dir: str | Path, encoder: ExampleEncoder, params: Oasst2Params,
          dataset: str = "helpfulness_oasst2_15m", batch_size: int = 4096) -> dict:
    files = budget.find_input_files(input_dir, "*.parquet", "oasst2 input folder", recursive=True)
    source = Oasst2Source(files, params.english_frac, params.require_rank_zero, params.seed, batch_size,
                          params.include_history, params.order)
    return budget.build(source, encoder, params, dataset=dataset, dataset_dir=Path(output_dir),
                        batch_size=batch_size)
