"""Fake OpenAssistant/oasst2 message parquet files (see /work/shared/SOURCES.md §4).

One row is one message; conversation trees (several ranked replies per prompt, multi-turn
follow-ups: most threads stop after a turn or two, one in twelve runs to 5-7 prompter turns)
must be rebuilt from ``parent_id``, and rows are shuffled as in the real files. Deleted and
unreviewed messages also sit in the middle of threads, above replies that are fine.
Reproduced quirks: region and dialect language codes (``pt-BR``, ``uk-UA``, ``nb-NO``, ``bar``,
``swg``) with English well under half and Spanish second, deleted replies, replies whose review
failed or never happened, unranked replies, nullable ``detoxify``/``emojis``/``labels``
structs, and orphan replies whose parent row is missing. Trees of at least ``PLANT_MIN_TREES``
also get planted NULs, literal Harmony markers, a synthetic reply and one over-long reply.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from distill_data.demo.synth import (HARMONY_MARKERS, RTL_SNIPPETS, insert_at_random,
                                     long_varied_text, sentence, words)

DETOXIFY_FIELDS = ("toxicity", "severe_toxicity", "obscene", "identity_attack", "insult",
                   "threat", "sexual_explicit")
OASST2_SCHEMA = pa.schema([
    pa.field("message_id", pa.string()),
    pa.field("parent_id", pa.string()),
    pa.field("user_id", pa.string()),
    pa.field("created_date", pa.string()),
    pa.field("text", pa.string()),
    pa.field("role", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("review_count", pa.int32()),
    pa.field("review_result", pa.bool_()),
    pa.field("deleted", pa.bool_()),
    pa.field("rank", pa.int32()),
    pa.field("synthetic", pa.bool_()),
    pa.field("model_name", pa.string()),
    pa.field("detoxify", pa.struct([pa.field(n, pa.float64()) for n in DETOXIFY_FIELDS])),
    pa.field("message_tree_id", pa.string()),
    pa.field("tree_state", pa.string()),
    pa.field("emojis", pa.struct([pa.field("name", pa.list_(pa.string())),
                                  pa.field("count", pa.list_(pa.int32()))])),
    pa.field("labels", pa.struct([pa.field("name", pa.list_(pa.string())),
                                  pa.field("value", pa.list_(pa.float64())),
                                  pa.field("count", pa.list_(pa.int32()))])),
])
OASST2_COLUMNS = tuple(OASST2_SCHEMA.names)

#: Fixed fake content hashes in the file names, as Hugging Face writes them.
TRAIN_FILE = "train-00000-of-00001-4c5f1e2a9b7d3e60.parquet"
VALIDATION_FILE = "validation-00000-of-00001-9d2b6a8c1f3e7054.parquet"
PLANT_MIN_TREES = 20

#: Per-tree language weights: English well under half, Spanish second.
_LANGS = ("en", "es", "ru", "de", "zh", "fr", "pt-BR", "uk-UA", "ca", "it", "ja", "pl", "nb-NO",
          "nl", "eu", "hu", "bar", "swg")
_LANG_WEIGHTS = (38, 26, 8, 5, 4, 4, 3, 2, 2, 2, 1.5, 1, 0.5, 0.5, 0.5, 0.5, 0.2, 0.2)
#: Vocabulary to write a language with (Bavarian and Swabian borrow German).
_TEXT_LANG = {"bar": "de", "swg": "de"}
_EMOJI_NAMES = ("+1", "-1", "_skip_reply", "_skip_ranking", "_skip_labeling", "red_flag",
                "heart", "laugh")
_PROMPT_LABELS = ("spam", "lang_mismatch", "pii", "not_appropriate", "hate_speech",
                  "sexual_content", "quality", "toxicity", "humor", "creativity", "violence")
_REPLY_LABELS = _PROMPT_LABELS[:2] + ("fails_task",) + _PROMPT_LABELS[2:] + ("helpfulness",)
_GRADED_LABELS = ("quality", "humor", "creativity", "helpfulness")
_MODELS = ("oasst-sft-4-pythia-12b", "gpt-3.5-turbo")
_EPOCH = dt.datetime(2023, 2, 5, tzinfo=dt.timezone.utc)


def _quota(rng: random.Random, population: tuple, weights: tuple, k: int) -> list:
    """``k`` values in proportion to ``weights`` (largest remainder), in random order.

    Exact proportions rather than independent draws, so that even a small demo keeps English
    under half and Spanish second.
    """
    total = sum(weights)
    exact = [w * k / total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: k - sum(counts)]:
        counts[i] += 1
    values = [v for v, c in zip(population, counts) for _ in range(c)]
    rng.shuffle(values)
    return values


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _text(rng: random.Random, lang: str, role: str) -> str:
    tl = _TEXT_LANG.get(lang, lang)
    q = "？" if tl in ("zh", "ja") else "?"
    if role == "prompter":
        lead = " ".join(sentence(rng, tl, 5, 12) for _ in range(rng.randint(0, 2)))
        return (lead + " " if lead else "") + sentence(rng, tl, 4, 10)[:-1] + q
    parts = [" ".join(sentence(rng, tl) for _ in range(rng.randint(2, 5)))]
    for _ in range(rng.randint(0, 3)):
        r = rng.random()
        if r < 0.3:
            parts.append("\n".join(f"{i}. {sentence(rng, tl, 4, 10)}" for i in range(1, rng.randint(3, 6))))
        elif r < 0.4 and tl == "en":
            parts.append(f"```python\nprint({words(rng, 'en', 3)!r})\n```")
        else:
            parts.append(" ".join(sentence(rng, tl) for _ in range(rng.randint(2, 5))))
    return "\n\n".join(parts)


def _detoxify(rng: random.Random, lang: str) -> dict | None:
    if rng.random() < (0.08 if lang == "en" else 0.3):
        return None
    return {n: round(rng.random() ** 6 * (0.9 if n == "toxicity" else 0.2), 8) for n in DETOXIFY_FIELDS}


def _emojis(rng: random.Random) -> dict | None:
    r = rng.random()
    if r < 0.05:
        return None
    if r < 0.4:
        return {"name": [], "count": []}
    names = rng.sample(_EMOJI_NAMES, k=rng.randint(1, 3))
    return {"name": names, "count": [rng.randint(1, 6) for _ in names]}


def _labels(rng: random.Random, role: str, review_count: int) -> dict | None:
    if review_count == 0:
        return None
    names = list(_PROMPT_LABELS if role == "prompter" else _REPLY_LABELS)
    counts = [rng.randint(1, review_count) for _ in names]
    values = []
    for name, c in zip(names, counts):  # flags are rarely raised; quality-like labels vary
        p = rng.random() if name in _GRADED_LABELS else 0.05
        values.append(sum(rng.random() < p for _ in range(c)) / c)
    return {"name": names, "value": values, "count": counts}


def _message(rng: random.Random, parent: dict | None, role: str, lang: str, tree_id: str | None,
             created: dt.datetime) -> dict:
    message_id = _uuid(rng)
    review_count = rng.choices(range(6), weights=(3, 5, 10, 40, 25, 17))[0]
    review_result = None if review_count == 0 else rng.random() >= 0.05
    return {
        "message_id": message_id,
        "parent_id": parent["message_id"] if parent else None,
        "user_id": _uuid(rng),
        "created_date": created.isoformat(),
        "text": _text(rng, lang, role),
        "role": role,
        "lang": lang,
        "review_count": review_count,
        "review_result": review_result,
        "deleted": rng.random() < 0.025,
        "rank": None,
        "synthetic": False,
        "model_name": None,
        "detoxify": _detoxify(rng, lang),
        "message_tree_id": tree_id or message_id,
        "tree_state": "ready_for_export",
        "emojis": _emojis(rng),
        "labels": _labels(rng, role, review_count),
    }


def _later(rng: random.Random, when: dt.datetime) -> dt.datetime:
    """A reply's creation time: minutes to days after its parent."""
    return when + dt.timedelta(minutes=rng.randint(1, 3000), microseconds=rng.randint(1, 999_999))


#: Chance that a reply at a given depth (messages from the root) gets a follow-up prompt:
#: threads run to 7 prompter turns, most stop after one or two.
_P_FOLLOW = (0.4, 0.45, 0.4, 0.35, 0.3, 0.3, 0.25, 0.25, 0.2, 0.2, 0.15, 0.15, 0.0)


def _tree(rng: random.Random, lang: str, min_turns: int = 1) -> list[dict]:
    """All messages of one tree, in tree order. Along one path from the root (the *spine*:
    each message's first child) every reply gets a follow-up until the thread has
    ``min_turns`` prompter messages, and every prompt there gets at least two replies."""
    start = _EPOCH + dt.timedelta(seconds=rng.randint(0, 200 * 86400),
                                  microseconds=rng.randint(1, 999_999))
    root = _message(rng, None, "prompter", lang, None, start)
    if rng.random() < 0.97:  # a tree is exported once its first prompt passed review: rarely deleted later
        root.update(review_result=True, review_count=max(root["review_count"], 1), deleted=False)
    tree_id = root["message_id"]
    messages = [root]
    stack = [(root, 0, start, min_turns > 1)]
    while stack:
        parent, depth, when, spine = stack.pop()
        # threads grow from messages that passed review; one deleted (or re-reviewed) later
        # keeps what was already below it, so a failed message rarely has children
        failed = not parent["review_result"] or parent["deleted"]
        if parent["role"] == "prompter":
            k = rng.choices((1, 2, 3, 4), weights=(30, 35, 25, 10))[0]
            if failed and not spine and rng.random() < 0.7:
                k = 0
            if spine:
                k = max(k, 2)
            ranks = list(range(k))
            rng.shuffle(ranks)
            ranked = rng.random() < 0.85
            children = []
            for rank in ranks:
                when_c = _later(rng, when)
                child = _message(rng, parent, "assistant", lang, tree_id, when_c)
                failed = not child["review_result"] or child["deleted"]
                unranked = not ranked or (failed and rng.random() < 0.7)
                child["rank"] = None if unranked else rank
                children.append((child, depth + 1, when_c, False))
        else:
            force = spine and depth < 2 * min_turns - 1
            p_follow = _P_FOLLOW[min(depth, len(_P_FOLLOW) - 1)] * (0.2 if failed else 1.0)
            k = rng.choice((1, 1, 2)) if force or rng.random() < p_follow else 0
            children = []
            for _ in range(k):
                when_c = _later(rng, when)
                children.append((_message(rng, parent, "prompter", lang, tree_id, when_c), depth + 1, when_c, False))
        if spine and children:
            children[0] = children[0][:3] + (True,)
            if parent["role"] == "prompter":  # the spine continues through a reply that can be the example
                children[0][0].update(review_result=True, review_count=3, deleted=False)
        messages.extend(c[0] for c in children)
        stack.extend(reversed(children))
    return messages


def _spoil_ancestors(rng: random.Random, messages: list[dict]) -> None:
    """Mark a message in the middle of a deep thread deleted and another one not reviewed, so
    that the replies below them cannot be examples (a thread stays as exported: oasst2 keeps
    the rows under a deleted message)."""
    children = {}
    for m in messages:
        children.setdefault(m["parent_id"], []).append(m)
    inner = [m for m in messages if m["parent_id"] and m["message_id"] in children
             and any(c["message_id"] in children for c in children[m["message_id"]])]
    for m, change in zip(rng.sample(inner, k=min(2, len(inner))),
                         ({"deleted": True}, {"review_result": False})):
        m.update(change)


def _drop_follow_up(rng: random.Random, messages: list[dict]) -> list[dict]:
    """Remove one non-root prompt that has replies, so those replies become orphans."""
    parents = {m["parent_id"] for m in messages}
    candidates = [m for m in messages if m["role"] == "prompter" and m["parent_id"]
                  and m["message_id"] in parents]
    if not candidates:
        return messages
    gone = rng.choice(candidates)["message_id"]
    return [m for m in messages if m["message_id"] != gone]


def _set_synthetic(rng: random.Random, m: dict) -> None:
    m["synthetic"], m["model_name"] = True, rng.choice(_MODELS)


def _overlong(rng: random.Random, m: dict) -> None:
    m["lang"], m["text"] = "en", long_varied_text(rng, 60_000)


_PLANTS = (
    lambda rng, m: m.update(text=insert_at_random(rng, m["text"], "\x00")),
    *(lambda rng, m, mk=mk: m.update(text=insert_at_random(rng, m["text"], mk)) for mk in HARMONY_MARKERS),
    lambda rng, m: m.update(text=insert_at_random(rng, m["text"], RTL_SNIPPETS[0])),
    lambda rng, m: m.update(deleted=True),
    lambda rng, m: m.update(review_result=False, rank=None),
    lambda rng, m: m.update(review_result=None, review_count=0, labels=None),
    lambda rng, m: m.update(detoxify=None, emojis=None),
    _set_synthetic,
    _overlong,
)


def oasst2_messages(n_trees: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train rows, validation rows), each shuffled; deterministic given the arguments."""
    rng = random.Random(f"oasst2:{seed}")
    langs = _quota(rng, _LANGS, _LANG_WEIGHTS, n_trees)
    plant = n_trees >= PLANT_MIN_TREES
    if plant:  # the rare codes at least once, on distinct trees other than en/es ones
        others = [i for i, lang in enumerate(langs) if lang not in ("en", "es")]
        for i, lang in zip(rng.sample(others, k=5), ("pt-BR", "uk-UA", "nb-NO", "bar", "swg")):
            langs[i] = lang
    in_validation = [rng.random() < 0.05 for _ in range(n_trees)]
    if n_trees >= 2 and not any(in_validation):
        in_validation[-1] = True
    orphan_tree = rng.choice([i for i in range(n_trees) if not in_validation[i]]) if plant else -1
    # long threads: one in 12 trees (at least one when planting) runs to 5-7 prompter turns,
    # two of them with a deleted or unreviewed message in the middle
    deep = {i: rng.randint(5, 7) for i in rng.sample(range(n_trees), k=max(int(plant), n_trees // 12))}
    spoiled = set(rng.sample(sorted(deep), k=min(2, len(deep)))) if plant else set()

    train: list[dict] = []
    validation: list[dict] = []
    for i, lang in enumerate(langs):
        messages = _tree(rng, lang, min_turns=2 if i == orphan_tree else deep.get(i, 1))
        if i == orphan_tree or rng.random() < 0.01:
            messages = _drop_follow_up(rng, messages)
        if i in spoiled:
            _spoil_ancestors(rng, messages)
        (validation if in_validation[i] else train).extend(messages)
    if plant:
        replies = [m for m in train if m["role"] == "assistant" and m["lang"] == "en"]
        for apply, m in zip(_PLANTS, rng.sample(replies, k=len(_PLANTS))):
            apply(rng, m)
        prompts = [m for m in train if m["role"] == "prompter"]
        for snippet, m in zip(("\x00", "<|start|>assistant"), rng.sample(prompts, k=2)):
            m["text"] = insert_at_random(rng, m["text"], snippet)
    rng.shuffle(train)
    rng.shuffle(validation)
    return train, validation


def make_oasst2_table(rows: Iterable[dict]) -> pa.Table:
    """An ``OASST2_SCHEMA`` table from rows that may give only a few fields.

    Defaults: a deterministic UUID ``message_id``; ``role`` ``assistant`` when ``parent_id`` is
    given, else ``prompter``; ``message_tree_id`` the root found through the given rows; an
    English, reviewed (3, True), undeleted, unranked, non-synthetic message with empty emojis
    and null detoxify/labels. Unknown keys raise.
    """
    rows = list(rows)
    full = []
    for i, row in enumerate(rows):
        unknown = set(row) - set(OASST2_COLUMNS)
        if unknown:
            raise ValueError(f"unknown oasst2 columns: {sorted(unknown)}")
        out = {
            "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"oasst2-plant-{i}")),
            "parent_id": None, "user_id": "00000000-0000-4000-8000-000000000000",
            "created_date": "2023-02-05T12:00:00.000001+00:00", "text": "", "role": None,
            "lang": "en", "review_count": 3, "review_result": True, "deleted": False, "rank": None,
            "synthetic": False, "model_name": None, "detoxify": None, "message_tree_id": None,
            "tree_state": "ready_for_export", "emojis": {"name": [], "count": []}, "labels": None,
        }
        out.update(row)
        if out["role"] is None:
            out["role"] = "assistant" if out["parent_id"] else "prompter"
        full.append(out)
    parent_of = {r["message_id"]: r["parent_id"] for r in full}
    for r in full:
        if r["message_tree_id"] is None:
            node, seen = r["message_id"], set()
            while parent_of.get(node) and node not in seen:
                seen.add(node)
                node = parent_of[node]
            r["message_tree_id"] = node
    return pa.Table.from_pylist(full, schema=OASST2_SCHEMA)


def write_oasst2_source(out_dir: str | Path, n_trees: int, seed: int) -> list[Path]:
    """Write ``out_dir/data/{train,validation}-00000-of-00001-<hash>.parquet``."""
    data = Path(out_dir) / "data"
    data.mkdir(parents=True, exist_ok=True)
    train, validation = oasst2_messages(n_trees, seed)
    paths = []
    for name, rows in ((TRAIN_FILE, train), (VALIDATION_FILE, validation)):
        table = make_oasst2_table(rows)
        pq.write_table(table, data / name, compression="snappy",
                       row_group_size=max(1, table.num_rows), write_statistics=True)
        paths.append(data / name)
    return paths
