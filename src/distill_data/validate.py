"""An independent check of a published dataset or mix, from its files and CONTRACT.md alone.

    python -m distill_data.validate DIR [--report OUT.json] [--sample-rows N] ...
    python -m distill_data.validate MIX_DIR --input synth=DIR --input code=DIR ...  (the mix)

It never imports builder or merge code: the rules (hash, split, normalization, columns, spans,
Harmony rendering) are re-implemented here from CONTRACT.md, and only the tokenizer loader
and openai-harmony are shared. Every check has a name; the JSON report lists each one with the
rows it looked at, whether it passed, and the first failures (file, row, id, what is wrong).
The exit status is 1 when any check fails, 2 when the dataset cannot be read at all.

Checks on every dataset (and on the mix):
  files            every listed part file exists, has its sha256 and row count; none unlisted;
                   fixed rows per file
  columns          column names and Arrow types
  lengths          input_ids, labels and attention_mask of equal length; attention_mask all 1
  labels           -100 before spans.assistant_token_start, equal to input_ids from there on
  spans            assistant_token_start + analysis + final = len(input_ids), all >= 0
  last_token       the last token is <|return|>
  max_seq_len      no row longer than max_seq_len
  unique_ids       ids unique across both splits
  split_rule       the split recomputed from the row (builders; the mix: see mix_rows)
  split_groups     no source.split_group in both splits (when the field exists)
  harmony          sampled rows parse with openai-harmony into system / user (/ earlier turns) /
                   [analysis] / final with the configured `Reasoning:` level, re-render to the
                   same ids, and their spans match the parse
  manifest_counts  rows, token statistics and distributions in the manifest match the files
  accounting       rows read = rows written + Σ drops
Mix only:
  mix_rows         every input row exactly once (by id, against the inputs' files and
                   manifests), with its input's spans, train only from train, each input's
                   rows in their own order; with near-duplicate drops: every input row once
                   unless the mix's near_duplicates.parquet (by its sha256 in the manifest)
                   lists it, no listed row in the mix, the kept row of each listed one in it,
                   and the drop counts in the manifest those of the list
  mix_composition  every prefix of a split within one row's weight of the split's composition
                   (the bound interleave.py promises), manifest shares as realised
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .progress import Progress
from .tokenizer import TokenizerError, load_tokenizer, vocab_dir_for

log = logging.getLogger("distill_data")

SPLITS = ("train", "validation")
IGNORE = -100
MAX_FAILURES = 10            # failures listed per check (all are counted)
REPORT_VERSION = 1
SYNTH_REFERENCE = "\n\nReference:\n"

CHECKS = ("files", "columns", "lengths", "labels", "spans", "last_token", "max_seq_len", "unique_ids",
          "split_rule", "split_groups", "harmony", "manifest_counts", "accounting")
MIX_CHECKS = ("mix_rows", "mix_composition")

SPANS_TYPE = pa.struct([("assistant_token_start", pa.int32()), ("analysis_token_count", pa.int32()),
                        ("final_token_count", pa.int32())])
COLUMN_TYPES = {
    "id": pa.string(),
    "input_ids": pa.list_(pa.int32()),
    "labels": pa.list_(pa.int32()),
    "attention_mask": pa.list_(pa.int8()),
    "spans": SPANS_TYPE,
}
CANONICAL_SOURCE = pa.struct([("dataset", pa.string()), ("language", pa.string()), ("exercise", pa.string()),
                              ("meta_json", pa.string())])
COLUMNS = ("id", "source", "input_ids", "labels", "attention_mask", "spans")


class ValidationError(RuntimeError):
    """The dataset cannot be validated at all (no manifest, unreadable JSON)."""


# --- the contract's rules, re-implemented -----------------------------------------------------

def unit_hash(value: str, seed: int, salt: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{salt}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def expected_split(group_value: str, seed: int, train_frac: float) -> str:
    return "validation" if unit_hash(group_value, seed, "split") < 1 - train_frac else "train"


_WHITESPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """NFKC, whitespace runs -> one space, stripped, case-folded (CONTRACT.md)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def group_hash(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=8).hexdigest()


def own_id(row_id: str) -> str:
    """The source's own id: the row id without its `dataset:` prefix."""
    return row_id.split(":", 1)[1] if ":" in row_id else row_id


# --- the report -------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    checked: int = 0
    failures: int = 0
    examples: list = field(default_factory=list)
    skipped: str | None = None
    notes: list = field(default_factory=list)

    def fail(self, message: str, **where) -> None:
        self.failures += 1
        if len(self.examples) < MAX_FAILURES:
            self.examples.append({"problem": message, **where})

    def to_dict(self) -> dict:
        out = {"ok": self.failures == 0, "checked": self.checked, "failures": self.failures,
               "examples": self.examples}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.notes:
            out["notes"] = self.notes
        return out


class Report:
    def __init__(self, names: Sequence[str]):
        self.checks = {name: Check(name) for name in names}

    def __getitem__(self, name: str) -> Check:
        return self.checks[name]

    @property
    def ok(self) -> bool:
        return all(c.failures == 0 for c in self.checks.values())

    def failed(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.failures]


# --- reading ----------------------------------------------------------------------------------

def load_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    if not path.is_file():
        raise ValidationError(f"{path} does not exist: is {directory} a published dataset?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValidationError(f"{path} is not readable JSON ({exc})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_files(directory: Path, manifest: dict, report: Report, rows_per_file: int | None) -> dict:
    """{split: [(path, rows)]} of the listed part files that are readable and match."""
    check = report["files"]
    listed = manifest.get("files")
    readable: dict[str, list] = {split: [] for split in SPLITS}
    if not isinstance(listed, dict):
        check.fail("manifest has no `files` listing")
        return readable
    for split in SPLITS:
        entries = listed.get(split)
        if not isinstance(entries, list):
            check.fail(f"manifest `files` has no {split} list")
            continue
        for k, entry in enumerate(entries):
            check.checked += 1
            path = directory / entry.get("path", "")
            where = {"file": str(path)}
            if not path.is_file():
                check.fail("listed in the manifest but does not exist", **where)
                continue
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                check.fail(f"sha256 {digest} differs from the manifest's {entry.get('sha256')}", **where)
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                check.fail(f"not a readable parquet file ({exc})", **where)
                continue
            if rows != entry.get("rows"):
                check.fail(f"{rows} rows, the manifest says {entry.get('rows')}", **where)
            if rows_per_file and k < len(entries) - 1 and rows != rows_per_file:
                check.fail(f"{rows} rows in a part file that is not the last (rows_per_file {rows_per_file})", **where)
            if path.name != f"part-{k:05d}.parquet":
                check.fail(f"listed as part {k} of {split}, expected part-{k:05d}.parquet", **where)
            readable[split].append((path, rows))
        present = {p.name for p in (directory / split).glob("part-*.parquet")}
        for extra in sorted(present - {Path(e.get("path", "")).name for e in entries}):
            check.fail("part file not listed in the manifest", file=str(directory / split / extra))
    return readable


def check_columns(path: Path, schema: pa.Schema, report: Report, mix: bool) -> bool:
    """True if the file has the contract's columns (else the row checks skip it)."""
    check = report["columns"]
    check.checked += 1
    ok = True
    for name in COLUMNS:
        if name not in schema.names:
            check.fail(f"no column {name!r} (has {', '.join(schema.names)})", file=str(path))
            ok = False
            continue
        kind = schema.field(name).type
        if name == "source":
            want = CANONICAL_SOURCE if mix else None
            if not pa.types.is_struct(kind) or (want is not None and kind != want) or \
                    (want is None and (kind.num_fields == 0 or kind.field(0).name != "dataset")):
                check.fail(f"column 'source' has type {kind}, expected "
                           f"{want if want is not None else 'a struct starting with dataset'}", file=str(path))
                ok = False
        elif kind != COLUMN_TYPES[name]:
            check.fail(f"column {name!r} has type {kind}, expected {COLUMN_TYPES[name]}", file=str(path))
            ok = False
    extra = [n for n in schema.names if n not in COLUMNS]
    if extra:
        check.fail(f"unexpected column(s) {', '.join(extra)}", file=str(path))
    return ok


# --- token checks, vectorised over one file -----------------------------------------------------

@dataclass
class TokenTally:
    """Token statistics of one split, as the manifest reports them."""

    values: dict = field(default_factory=lambda: {k: [] for k in ("prompt", "analysis", "final", "total")})

    def add(self, prompt, analysis, final) -> None:
        for key, array in (("prompt", prompt), ("analysis", analysis), ("final", final),
                           ("total", prompt + analysis + final)):
            self.values[key].append(np.asarray(array, dtype=np.int64))

    def stats(self, key: str) -> dict:
        arrays = self.values[key]
        v = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        if not len(v):
            return {"count": 0, "sum": 0, "min": None, "max": None}
        return {"count": int(len(v)), "sum": int(v.sum()), "min": int(v.min()), "max": int(v.max())}


def check_tokens(table: pa.Table, path: Path, report: Report, *, return_id: int, max_seq_len: int) -> np.ndarray:
    """Lengths, labels, spans, last token and length of every row; returns the rows' lengths."""
    n = table.num_rows
    ids_col = table.column("input_ids").combine_chunks()
    lab_col = table.column("labels").combine_chunks()
    att_col = table.column("attention_mask").combine_chunks()
    row_ids = table.column("id").to_pylist()
    lengths = pc.list_value_length(ids_col).to_numpy(zero_copy_only=False).astype(np.int64)
    lab_len = pc.list_value_length(lab_col).to_numpy(zero_copy_only=False).astype(np.int64)
    att_len = pc.list_value_length(att_col).to_numpy(zero_copy_only=False).astype(np.int64)
    spans = table.column("spans").combine_chunks()
    start = pc.struct_field(spans, "assistant_token_start").to_numpy(zero_copy_only=False).astype(np.int64)
    analysis = pc.struct_field(spans, "analysis_token_count").to_numpy(zero_copy_only=False).astype(np.int64)
    final = pc.struct_field(spans, "final_token_count").to_numpy(zero_copy_only=False).astype(np.int64)

    def where(i):
        return {"file": str(path), "row": int(i), "id": row_ids[i]}

    for name in ("lengths", "labels", "spans", "last_token", "max_seq_len"):
        report[name].checked += n

    bad = np.flatnonzero((lab_len != lengths) | (att_len != lengths))
    for i in bad:
        report["lengths"].fail(f"input_ids {lengths[i]}, labels {lab_len[i]}, attention_mask {att_len[i]} tokens", **where(i))
    flat_att = att_col.flatten().to_numpy(zero_copy_only=False)
    if len(flat_att) and (flat_att != 1).any() and not len(bad):
        offsets = att_col.offsets.to_numpy()
        rows = np.unique(np.searchsorted(offsets, np.flatnonzero(flat_att != 1), side="right") - 1)
        for i in rows:
            report["lengths"].fail("attention_mask is not all ones", **where(i))

    bad_spans = np.flatnonzero((start < 0) | (analysis < 0) | (final < 1) | (start + analysis + final != lengths))
    for i in bad_spans:
        report["spans"].fail(f"assistant_token_start {start[i]} + analysis {analysis[i]} + final {final[i]} "
                             f"!= {lengths[i]} tokens", **where(i))

    flat_ids = ids_col.flatten().to_numpy(zero_copy_only=False)
    offsets = ids_col.offsets.to_numpy().astype(np.int64)
    ends = offsets[1:]
    nonempty = lengths > 0
    last_ok = np.zeros(n, dtype=bool)
    last_ok[nonempty] = flat_ids[ends[nonempty] - 1] == return_id
    for i in np.flatnonzero(~last_ok):
        got = int(flat_ids[ends[i] - 1]) if lengths[i] else None
        report["last_token"].fail(f"last token is {got}, not <|return|> ({return_id})", **where(i))

    for i in np.flatnonzero(lengths > max_seq_len):
        report["max_seq_len"].fail(f"{lengths[i]} tokens > max_seq_len {max_seq_len}", **where(i))

    if not len(bad):   # labels: same offsets as input_ids
        flat_lab = lab_col.flatten().to_numpy(zero_copy_only=False)
        lab_offsets = lab_col.offsets.to_numpy().astype(np.int64)
        if len(flat_lab) == len(flat_ids) and (lab_offsets == offsets).all():
            position = np.arange(len(flat_ids), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
            want = np.where(position < np.repeat(np.clip(start, 0, None), lengths), IGNORE, flat_ids)
            wrong = np.flatnonzero(flat_lab != want)
            if len(wrong):
                rows = np.searchsorted(offsets, wrong, side="right") - 1
                first = {}
                for token, row in zip(wrong, rows):
                    first.setdefault(int(row), int(token - offsets[row]))
                for row, pos in first.items():
                    side = "before" if pos < start[row] else "from"
                    report["labels"].fail(f"label at token {pos} ({side} assistant_token_start {start[row]}) is "
                                          f"{int(flat_lab[offsets[row] + pos])}, expected "
                                          f"{int(want[offsets[row] + pos])}", **where(row))
    else:
        report["labels"].notes.append(f"{path}: labels not compared (lengths differ)")
    return lengths


# --- Harmony round trip ---------------------------------------------------------------------

class HarmonyChecker:
    """Parse a row with openai-harmony, check its structure, re-render, compare."""

    def __init__(self, tokenizer, effort: str):
        from openai_harmony import ReasoningEffort, SystemContent

        self.enc = tokenizer.harmony
        self.decode = tokenizer.tiktoken.decode
        self.effort = effort
        self.system = (SystemContent.new().with_reasoning_effort(ReasoningEffort(effort.capitalize()))
                       .with_conversation_start_date(None))
        self.return_id = self.enc.encode("<|return|>", allowed_special={"<|return|>"})[0]
        self.end_id = self.enc.encode("<|end|>", allowed_special={"<|end|>"})[0]
        self.seconds = 0.0
        self.rows = 0
        self.tokens = 0

    def check(self, ids: list[int], spans: dict) -> str | None:
        """None when the row is right, else what is wrong."""
        started = time.perf_counter()
        try:
            return self._check(ids, spans)
        finally:
            self.seconds += time.perf_counter() - started
            self.rows += 1
            self.tokens += len(ids)

    def _check(self, ids, spans) -> str | None:
        from openai_harmony import Conversation, Message, RenderConversationConfig, Role

        try:
            messages = self.enc.parse_messages_from_completion_tokens(ids, None)
        except Exception as exc:  # openai_harmony.HarmonyError and friends
            return f"openai-harmony cannot parse it ({exc})"
        roles = [(m.author.role, m.channel) for m in messages]
        if len(messages) < 3 or roles[0][0] != Role.SYSTEM:
            return f"expected system, user, …, final; got {self._describe(roles)}"
        system_text = "".join(getattr(c, "text", "") for c in messages[0].content)
        if f"Reasoning: {self.effort}" not in system_text.splitlines():
            return f"system message has no 'Reasoning: {self.effort}' line"
        body = roles[1:]
        if body[-1] != (Role.ASSISTANT, "final"):
            return f"last message is not assistant/final: {self._describe(roles)}"
        has_analysis = len(body) >= 2 and body[-2] == (Role.ASSISTANT, "analysis")
        prompt = body[:-2] if has_analysis else body[:-1]
        # user, (assistant final, user)*
        if not prompt or len(prompt) % 2 == 0 or any(
                role != ((Role.USER, None) if k % 2 == 0 else (Role.ASSISTANT, "final")) for k, role in enumerate(prompt)):
            return f"prompt turns are not user (, assistant final, user)*: {self._describe(roles)}"
        rebuilt = [Message.from_role_and_content(Role.SYSTEM, self.system)]
        for message in messages[1:]:
            text = "".join(getattr(c, "text", "") for c in message.content)
            rebuilt_message = Message.from_role_and_content(message.author.role, text)
            if message.channel:
                rebuilt_message = rebuilt_message.with_channel(message.channel)
            rebuilt.append(rebuilt_message)
        rendered = self.enc.render_conversation_for_training(Conversation.from_messages(rebuilt),
                                                             RenderConversationConfig(auto_drop_analysis=False))
        if list(rendered) != list(ids):
            first = next((k for k, (a, b) in enumerate(zip(rendered, ids)) if a != b), min(len(rendered), len(ids)))
            return (f"re-rendered by openai-harmony it differs from input_ids at token {first} "
                    f"({len(rendered)} vs {len(ids)} tokens)")
        start = len(self.enc.render_conversation_for_completion(
            Conversation.from_messages(rebuilt[:1 + len(prompt)]), Role.ASSISTANT))
        analysis = (ids.index(self.end_id, start) + 1 - start) if has_analysis else 0
        want = (start, analysis, len(ids) - start - analysis)
        got = (spans["assistant_token_start"], spans["analysis_token_count"], spans["final_token_count"])
        if got != want:
            return f"spans {got} but the parse gives (assistant_token_start, analysis, final) = {want}"
        return None

    @staticmethod
    def _describe(roles) -> str:
        return " / ".join(f"{r.value}{'/' + c if c else ''}" for r, c in roles)


# --- split rule -------------------------------------------------------------------------------

class SplitRule:
    """Recomputes a builder row's split group and split from the row itself."""

    def __init__(self, split_by: str, seed: int, train_frac: float, tokenizer, system_len: int):
        self.split_by = split_by
        self.seed = seed
        self.train_frac = train_frac
        self.decode_bytes = tokenizer.tiktoken.decode_bytes
        self.system_len = system_len     # tokens of the system message: the user turn follows

    def user_text(self, ids: Sequence[int], start: int) -> str:
        """The (single) user message: <|start|>user<|message|> TEXT <|end|><|start|>assistant."""
        return self.decode_bytes(list(ids[self.system_len + 3:start - 3])).decode("utf-8", errors="replace")

    def group_value(self, row_id: str, source: dict, ids, start: int) -> tuple[str | None, str]:
        """(the group value, how it was found); None if it cannot be recomputed."""
        if self.split_by == "id" or "split_group" not in source:
            return own_id(row_id), "id"
        if "message_tree_id" in source:
            return source["message_tree_id"], "message_tree_id"
        prompt = self.user_text(ids, start)
        if "synth_id" in source:       # query + optional Reference: + seed text
            candidates = [prompt]
            at = prompt.find(SYNTH_REFERENCE)
            while at >= 0:
                candidates.append(prompt[:at])
                at = prompt.find(SYNTH_REFERENCE, at + 1)
            for candidate in candidates:
                value = normalize_prompt(candidate)
                if group_hash(value) == source["split_group"]:
                    return value, "query"
            return None, "no prefix of the prompt (query, before each Reference: separator) has this split_group"
        return normalize_prompt(prompt), "prompt"

    def check(self, row_id: str, source: dict, split: str, ids, start: int) -> str | None:
        value, how = self.group_value(row_id, source, ids, start)
        if value is None:
            return how
        if "split_group" in source and group_hash(value) != source["split_group"]:
            return f"split_group {source['split_group']} is not blake2b of the {how} ({group_hash(value)})"
        want = expected_split(value, self.seed, self.train_frac)
        if want != split:
            return f"in {split}, but u({how}, {self.seed}, 'split') puts it in {want}"
        return None


# --- one dataset --------------------------------------------------------------------------------

@dataclass
class Options:
    sample_rows: int | None = None        # Harmony round trip on about this many rows; None = all
    max_seq_len: int | None = None        # None = the manifest's params
    seed: int | None = None
    train_frac: float | None = None
    reasoning_level: str | None = None
    split_by: str | None = None           # None = the manifest's (datasets built before it: id)
    tokenizer_dir: str | None = None


def _param(options_value, manifest: dict, key: str, default, report: Report):
    params = manifest.get("params", {})
    in_manifest = params.get(key, params.get("reasoning_effort") if key == "reasoning_level" else None)
    if options_value is not None and in_manifest is not None and in_manifest != options_value:
        report["manifest_counts"].fail(f"manifest params.{key} = {in_manifest!r}, configured {options_value!r}")
    if options_value is not None:
        return options_value
    return in_manifest if in_manifest is not None else default


def mix_inputs(directory: Path, manifest: dict) -> list[tuple[str, Path]]:
    """A mix's inputs as its manifest records them: (name, folder relative to the mix's)."""
    out = []
    for entry in manifest.get("inputs", []):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("path"):
            raise ValidationError(f"{directory / 'manifest.json'}: inputs[] without name and path; "
                                  "give the inputs with --input NAME=DIR")
        out.append((entry["name"], (directory / entry["path"]).resolve()))
    return out


def validate(directory: Path, options: Options, inputs: Sequence[tuple[str, Path]] = ()) -> dict:
    """Validate a builder dataset (no inputs) or a mix (its inputs: (name, dir)); the report."""
    directory = Path(directory)
    started = time.perf_counter()
    manifest = load_manifest(directory)
    if not inputs and manifest.get("builder") == "merge":
        inputs = mix_inputs(directory, manifest)   # the mix names its inputs' folders
    mix = bool(inputs)
    report = Report(CHECKS + (MIX_CHECKS if mix else ()))
    params = manifest.get("params", {})
    max_seq_len = _param(options.max_seq_len, manifest, "max_seq_len", 8192, report)
    seed = _param(options.seed, manifest, "seed", 1337, report)
    train_frac = _param(options.train_frac, manifest, "train_frac", 0.99, report)
    effort = _param(options.reasoning_level, manifest, "reasoning_level", "high", report)
    tokenizer = load_tokenizer(vocab_dir_for(directory, options.tokenizer_dir))
    harmony = HarmonyChecker(tokenizer, effort)
    from openai_harmony import Message, Role
    system_len = len(tokenizer.harmony.render(Message.from_role_and_content(Role.SYSTEM, harmony.system)))
    if mix:   # the mix inherits its inputs' splits: the rule they were split by, as recorded
        split_by = ", ".join(sorted({str((entry.get("split") or {}).get("split_by") or "not recorded")
                                     for entry in manifest.get("inputs", [])})) or None
    else:
        split_by = _param(options.split_by, manifest, "split_by", "id", report)
    rule = None if mix else SplitRule(split_by, seed, train_frac, tokenizer, system_len)

    files = check_files(directory, manifest, report, params.get("rows_per_file"))
    total_rows = sum(rows for split in SPLITS for _, rows in files[split])
    sample_rows = options.sample_rows
    sample_frac = 1.0 if sample_rows is None or sample_rows >= total_rows else sample_rows / max(total_rows, 1)
    progress = Progress(f"validate {manifest.get('dataset', directory.name)}", total_rows=total_rows)

    seen: dict[str, str] = {}
    groups: dict[str, dict] = {split: {} for split in SPLITS}
    tallies = {split: TokenTally() for split in SPLITS}
    counted = {split: 0 for split in SPLITS}
    distributions: dict[str, Counter] = defaultdict(Counter)
    mix_order: dict[str, list] = {split: [] for split in SPLITS}   # (input name, id, spans) per row
    for split in SPLITS:
        for path, _ in files[split]:
            handle = pq.ParquetFile(path)
            if not check_columns(path, handle.schema_arrow, report, mix):
                continue
            try:
                table = handle.read()
            except (pa.ArrowException, OSError) as exc:
                report["files"].fail(f"unreadable data ({exc})", file=str(path))
                continue
            lengths = check_tokens(table, path, report, return_id=harmony.return_id, max_seq_len=max_seq_len)
            counted[split] += table.num_rows
            spans = table.column("spans").to_pylist()
            tallies[split].add(*(np.array([s[k] for s in spans], np.int64) for k in
                                 ("assistant_token_start", "analysis_token_count", "final_token_count")))
            row_ids = table.column("id").to_pylist()
            sources = table.column("source").to_pylist()
            input_ids = table.column("input_ids")
            for i, (row_id, source) in enumerate(zip(row_ids, sources)):
                where = {"file": str(path), "row": i, "id": row_id}
                report["unique_ids"].checked += 1
                if row_id in seen:
                    report["unique_ids"].fail(f"id already in {seen[row_id]}", **where)
                else:
                    seen[row_id] = f"{split} ({path.name} row {i})"
                meta = source
                if mix:
                    mix_order[split].append((source.get("dataset"), row_id, spans[i]))
                    try:
                        meta = json.loads(source.get("meta_json") or "{}")
                    except ValueError:
                        report["mix_rows"].fail("source.meta_json is not JSON", **where)
                        meta = {}
                    for key in ("dataset", "language", "exercise"):
                        distributions[key][source.get(key) if source.get(key) is not None else "null"] += 1
                else:
                    for key, value in source.items():
                        distributions[key][value if value is not None else "null"] += 1
                group = meta.get("split_group") if isinstance(meta, dict) else None
                if group is not None:
                    report["split_groups"].checked += 1
                    groups[split].setdefault(group, row_id)
                ids = None
                if rule is not None:
                    report["split_rule"].checked += 1
                    ids = input_ids[i].values.to_numpy(zero_copy_only=False).tolist() if lengths[i] else []
                    problem = rule.check(row_id, source, split, ids, spans[i]["assistant_token_start"])
                    if problem:
                        report["split_rule"].fail(problem, **where)
                if sample_frac >= 1.0 or unit_hash(row_id, seed, "validate") < sample_frac:
                    report["harmony"].checked += 1
                    if ids is None:
                        ids = input_ids[i].values.to_numpy(zero_copy_only=False).tolist() if lengths[i] else []
                    problem = harmony.check(ids, spans[i])
                    if problem:
                        report["harmony"].fail(problem, **where)
            progress.update(table.num_rows, int(lengths.sum()))
    progress.done()

    both = set(groups["train"]) & set(groups["validation"])
    for group in sorted(both)[:MAX_FAILURES * 10]:
        report["split_groups"].fail(f"split_group {group} in both splits",
                                    train_id=groups["train"][group], validation_id=groups["validation"][group])
    if len(both) > MAX_FAILURES * 10:
        report["split_groups"].failures += len(both) - MAX_FAILURES * 10
    listed_groups = manifest.get("split_groups")
    if isinstance(listed_groups, dict) and report["split_groups"].checked:
        report["manifest_counts"].checked += 1
        got = {"train": len(groups["train"]), "validation": len(groups["validation"])}
        if listed_groups.get("groups") not in (None, got):
            report["manifest_counts"].fail(f"split_groups.groups = {listed_groups.get('groups')}, the files give {got}")
        if listed_groups.get("in_both_splits") not in (None, len(both)):
            report["manifest_counts"].fail(f"split_groups.in_both_splits = {listed_groups.get('in_both_splits')}, "
                                           f"the files give {len(both)}")
    if not report["split_groups"].checked:
        report["split_groups"].skipped = "no source.split_group field (dataset built before split groups)"
    if mix:
        report["split_rule"].skipped = "the mix inherits its inputs' splits: see mix_rows (train only from train)"

    check_manifest_counts(manifest, report, counted, tallies, distributions, mix)
    check_accounting(manifest, report)
    extra = {}
    if mix:
        extra = check_mix(manifest, report, inputs, mix_order, params.get("weight_by", "assistant_tokens"),
                          Path(directory))
    seconds = time.perf_counter() - started
    result = {
        "report_version": REPORT_VERSION,
        "dataset": manifest.get("dataset"),
        "path": str(directory),
        "kind": "mix" if mix else "dataset",
        "ok": report.ok,
        "failed_checks": report.failed(),
        "rows": {split: counted[split] for split in SPLITS},
        "tokens": sum(t.stats("total")["sum"] for t in tallies.values()),
        "settings": {"max_seq_len": max_seq_len, "seed": seed, "train_frac": train_frac, "reasoning_level": effort,
                     "split_by": split_by,
                     "sample_rows": sample_rows},
        "harmony_round_trip": {"rows": harmony.rows, "tokens": harmony.tokens, "seconds": round(harmony.seconds, 3),
                               "rows_per_second": round(harmony.rows / harmony.seconds, 1) if harmony.seconds else None},
        "seconds": round(seconds, 3),
        "checks": {name: check.to_dict() for name, check in report.checks.items()},
        **extra,
    }
    return result


def check_manifest_counts(manifest: dict, report: Report, counted: dict, tallies: dict, distributions: dict,
                          mix: bool) -> None:
    check = report["manifest_counts"]
    accounting = manifest.get("accounting", {})
    written = accounting.get("rows_written", {})
    for split in SPLITS:
        check.checked += 1
        if written.get(split) != counted[split]:
            check.fail(f"accounting.rows_written.{split} = {written.get(split)}, the files hold {counted[split]}")
    if accounting.get("rows_written_total") != sum(counted.values()):
        check.fail(f"accounting.rows_written_total = {accounting.get('rows_written_total')}, the files hold "
                   f"{sum(counted.values())}")
    tokens = manifest.get("tokens", {})
    for split in SPLITS:
        for key in ("prompt", "analysis", "final", "total"):
            check.checked += 1
            got = tallies[split].stats(key)
            listed = tokens.get(split, {}).get(key, {})
            for stat in ("count", "sum", "min", "max"):
                if listed.get(stat) != got[stat]:
                    check.fail(f"tokens.{split}.{key}.{stat} = {listed.get(stat)}, the files give {got[stat]}")
    total = sum(t.stats("total")["sum"] for t in tallies.values())
    assistant = sum(t.stats("analysis")["sum"] + t.stats("final")["sum"] for t in tallies.values())
    for key, value in (("total_tokens", total), ("assistant_tokens", assistant)):
        check.checked += 1
        if manifest.get(key) != value:
            check.fail(f"{key} = {manifest.get(key)}, the files give {value}")
    for name, listed in (manifest.get("distributions") or {}).items():
        if name not in distributions:
            continue    # a distribution over something the rows do not carry
        check.checked += 1
        got = {str(k): v for k, v in distributions[name].items()}
        if {str(k): v for k, v in listed.items()} != got:
            check.fail(f"distributions.{name} = {listed}, the files give {dict(sorted(got.items()))}")


def _total(value) -> int:
    """A drop count, or a breakdown of one (reason -> category -> count) summed."""
    if isinstance(value, dict):
        return sum(_total(v) for v in value.values())
    return int(value or 0)


def check_accounting(manifest: dict, report: Report) -> None:
    check = report["accounting"]
    acc = manifest.get("accounting")
    check.checked += 1
    if not isinstance(acc, dict):
        check.fail("manifest has no accounting")
        return
    read, written = acc.get("rows_read"), acc.get("rows_written_total")
    dropped = _total(acc.get("dropped", {}))
    if acc.get("dropped_total") is not None and acc.get("dropped_total") != dropped:
        check.fail(f"dropped_total {acc.get('dropped_total')} != Σ dropped {dropped}")
    if sum(_total(v) for v in (acc.get("rows_written") or {}).values()) != written:
        check.fail(f"rows_written_total {written} != Σ rows_written {acc.get('rows_written')}")
    if read != (written or 0) + dropped:
        check.fail(f"rows read {read} != rows written {written} + Σ drops {dropped}")
    reasons = manifest.get("drop_reasons")
    if isinstance(reasons, list):
        unknown = sorted(set(acc.get("dropped", {})) - set(reasons))
        if unknown:
            check.fail(f"drops under reason(s) the builder does not declare: {', '.join(unknown)}")


# --- the mix ------------------------------------------------------------------------------------

def check_mix(manifest: dict, report: Report, inputs: Sequence[tuple[str, Path]], order: dict,
              weight_by: str, mix_dir: Path) -> dict:
    rows = report["mix_rows"]
    listed = {entry.get("name"): entry for entry in manifest.get("inputs", [])}
    names = [name for name, _ in inputs]
    if sorted(listed) != sorted(names):
        rows.fail(f"the manifest's inputs are {sorted(listed)}, the inputs given are {sorted(names)}")
    # every input row: id -> (input, split, position in that input's split, spans)
    where_from: dict[str, tuple] = {}
    expected = {split: Counter() for split in SPLITS}
    for name, directory in inputs:
        directory = Path(directory)
        try:
            input_manifest = load_manifest(directory)
        except ValidationError as exc:
            rows.fail(str(exc), input=name)
            continue
        digest = sha256_file(directory / "manifest.json")
        if name in listed and listed[name].get("manifest_sha256") != digest:
            rows.fail(f"input {name}: its manifest.json (sha256 {digest[:12]}…) is not the one the mix was "
                      f"built from ({str(listed[name].get('manifest_sha256'))[:12]}…)", input=name)
        for split in SPLITS:
            position = 0
            for entry in input_manifest.get("files", {}).get(split, []):
                path = directory / entry["path"]
                try:
                    table = pq.read_table(path, columns=["id", "spans"])
                except (pa.ArrowException, OSError) as exc:
                    rows.fail(f"input {name}: {path} is unreadable ({exc})", input=name)
                    continue
                for row_id, spans in zip(table.column("id").to_pylist(), table.column("spans").to_pylist()):
                    where_from[row_id] = (name, split, position, spans)
                    position += 1
                expected[split][name] += table.num_rows
            if name in listed and listed[name].get("rows", {}).get(split) != expected[split][name]:
                rows.fail(f"input {name}: the mix manifest says {listed[name].get('rows', {}).get(split)} "
                          f"{split} rows, its files hold {expected[split][name]}", input=name)
    dropped = near_duplicate_drops(manifest, report, where_from, directory=mix_dir)
    found: set[str] = set()
    last_position: dict[tuple, int] = {}
    for split in SPLITS:
        for k, (name, row_id, spans) in enumerate(order[split]):
            rows.checked += 1
            where = {"split": split, "row": k, "id": row_id}
            origin = where_from.get(row_id)
            if origin is None:
                rows.fail("not a row of any input", **where)
                continue
            if row_id in dropped:
                rows.fail(f"listed as a near-duplicate drop (of {dropped[row_id]}), but in the mix", **where)
            if row_id in found:
                rows.fail(f"input row appears more than once (input {origin[0]})", **where)
                continue
            found.add(row_id)
            if origin[0] != name:
                rows.fail(f"source.dataset is {name!r} but the row comes from input {origin[0]!r}", **where)
            if origin[1] != split:
                rows.fail(f"in the mix's {split} but from {origin[0]}'s {origin[1]} split", **where)
            if origin[3] != spans:
                rows.fail(f"spans {spans} differ from the input row's {origin[3]}", **where)
            key = (origin[0], split)
            if origin[1] == split and last_position.get(key, -1) > origin[2]:
                rows.fail(f"out of {origin[0]}'s order (its row {origin[2]} after row {last_position[key]})", **where)
            last_position[key] = max(last_position.get(key, -1), origin[2])
    for row_id, kept in dropped.items():
        if kept not in found:
            rows.fail(f"listed as a near-duplicate of {kept}, which is not in the mix either", id=row_id)
    missing = [row_id for row_id in where_from if row_id not in found and row_id not in dropped]
    for row_id in missing[:MAX_FAILURES]:
        rows.fail(f"input row missing from the mix (input {where_from[row_id][0]}, {where_from[row_id][1]})", id=row_id)
    if len(missing) > MAX_FAILURES:
        rows.failures += len(missing) - MAX_FAILURES
    return {"composition": check_composition(manifest, report, order, names, weight_by)}


def near_duplicate_drops(manifest: dict, report: Report, where_from: dict, directory: Path) -> dict[str, str]:
    """The rows the mix lists as near-duplicate drops (id -> the kept id of its cluster), read
    from its near_duplicates.parquet and checked against the manifest and the inputs."""
    rows = report["mix_rows"]
    section = manifest.get("near_duplicates")
    if not section:
        return {}
    listed = section.get("file") or {}
    path = directory / str(listed.get("path", "near_duplicates.parquet"))
    rows.checked += 1
    try:
        digest = sha256_file(path)
        table = pq.read_table(path, columns=["input", "split", "id", "kept_id"])
    except (OSError, pa.ArrowException) as exc:
        rows.fail(f"the near-duplicate drop list {path} is unreadable ({exc})")
        return {}
    if digest != listed.get("sha256") or table.num_rows != listed.get("rows"):
        rows.fail(f"{path} (sha256 {digest[:12]}…, {table.num_rows} rows) is not the drop list the manifest "
                  f"lists (sha256 {str(listed.get('sha256'))[:12]}…, {listed.get('rows')} rows)")
    dropped: dict[str, str] = {}
    per_input: dict[str, Counter] = defaultdict(Counter)
    for name, split, row_id, kept in zip(*(table.column(c).to_pylist() for c in ("input", "split", "id", "kept_id"))):
        origin = where_from.get(row_id)
        if origin is None or origin[:2] != (name, split):
            rows.fail(f"the drop list names a row of input {name}'s {split} split that is not there", id=row_id)
            continue
        dropped[row_id] = kept
        per_input[name][split] += 1
    counted = (manifest.get("accounting") or {}).get("dropped", {}).get("near_duplicate", 0)
    if counted != table.num_rows:
        rows.fail(f"accounting.dropped.near_duplicate = {counted}, the drop list has {table.num_rows} rows")
    for entry in manifest.get("inputs", []):
        want = {split: per_input[entry.get("name")][split] for split in SPLITS}
        if entry.get("near_duplicate_drops", {split: 0 for split in SPLITS}) != want:
            rows.fail(f"input {entry.get('name')}: near_duplicate_drops {entry.get('near_duplicate_drops')}, "
                      f"the drop list gives {want}")
    return dropped


def _weight(spans: dict, weight_by: str) -> int:
    if weight_by == "rows":
        return 1
    assistant = spans["analysis_token_count"] + spans["final_token_count"]
    return assistant if weight_by == "assistant_tokens" else assistant + spans["assistant_token_start"]


def check_composition(manifest: dict, report: Report, order: dict, names: Sequence[str], weight_by: str) -> dict:
    """The prefix bound (|A_i(P) - s_i A(P)| <= B, the largest row weight) on the written order,
    the manifest's realised shares, and each input's share of rows per 1% of the split (for the
    report's plot)."""
    check = report["mix_composition"]
    composition = manifest.get("composition", {})
    out = {}
    for split in SPLITS:
        rows = order[split]
        check.checked += 1
        if not rows:
            out[split] = {"rows": 0}
            continue
        index = {name: k for k, name in enumerate(names)}
        labels = np.array([index.get(name, -1) for name, _, _ in rows], dtype=np.int64)
        weights = np.array([_weight(spans, weight_by) for _, _, spans in rows], dtype=np.int64)
        if weights.sum() == 0:
            weights = np.ones(len(rows), dtype=np.int64)
        total = int(weights.sum())
        bound = int(weights.max())
        cumulative = np.cumsum(weights)
        worst = 0.0
        shares = {}
        for k, name in enumerate(names):
            own = np.cumsum(np.where(labels == k, weights, 0))
            w_i = int(own[-1])
            # exact: |A_i * W - W_i * A| <= B * W, in Python integers beyond int64's reach
            scaled = own * total - w_i * cumulative if total < 2**31 else None
            if scaled is not None:
                dev = int(np.abs(scaled).max())
                ok = dev <= bound * total
                dev = dev / total
            else:
                dev = float(np.abs(own - (w_i / total) * cumulative).max())
                ok = dev <= bound * (1 + 1e-9)
            worst = max(worst, dev)
            if not ok:
                check.fail(f"{split}: input {name} strays {dev:.1f} ({weight_by}) from its share in some prefix, "
                           f"more than one row's worth (B = {bound})", split=split, input=name)
            shares[name] = w_i / total
            listed = composition.get(split, {}).get("inputs", {}).get(name, {}).get("realised_share")
            if listed is not None and abs(listed - shares[name]) > 1e-6:
                check.fail(f"{split}: manifest realised_share of {name} is {listed}, the files give "
                           f"{shares[name]:.8f}", split=split, input=name)
        # share of rows of each input in each 1% of the split's rows (the report's plot); a
        # split under 1000 rows in tenths (a 1% slice of a few rows says nothing)
        steps = 100 if len(rows) >= 1000 else 10
        buckets = np.minimum((np.arange(len(rows)) * steps) // len(rows), steps - 1)
        sizes = np.bincount(buckets, minlength=steps)
        per_bucket = {}
        for k, name in enumerate(names):
            counts = np.bincount(buckets[labels == k], minlength=steps)
            per_bucket[name] = [round(float(c / s), 6) if s else None for c, s in zip(counts, sizes)]
        out[split] = {"rows": len(rows), "weight_by": weight_by, "bound_B": bound,
                      "max_deviation": round(worst, 3), "max_deviation_in_B": round(worst / bound, 6) if bound else 0.0,
                      "shares": {n: round(s, 8) for n, s in shares.items()},
                      "buckets": steps, "row_share_per_bucket": per_bucket}
    return out


# --- command line -------------------------------------------------------------------------------

def summary_lines(result: dict) -> list[str]:
    lines = [f"{result['dataset']}: {'OK' if result['ok'] else 'FAILED: ' + ', '.join(result['failed_checks'])} "
             f"({result['rows']['train']} + {result['rows']['validation']} rows, {result['tokens']:,} tokens, "
             f"{result['seconds']} s; Harmony round trip on {result['harmony_round_trip']['rows']} rows, "
             f"{result['harmony_round_trip']['rows_per_second']} rows/s)"]
    for name, check in result["checks"].items():
        state = "skipped" if check.get("skipped") and not check["checked"] else ("ok" if check["ok"] else "FAILED")
        lines.append(f"  {name:16} {state:8} {check['checked']:>9} checked, {check['failures']} failures")
        for example in check["examples"][:3]:
            lines.append("      " + "; ".join(f"{k}={v}" for k, v in example.items() if k != "problem")
                         + f": {example['problem']}")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distill_data.validate",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path, help="a published dataset folder (manifest.json, train/, validation/)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=DIR",
                   help="the directory is a mix: each input dataset, by its short name (default: the folders "
                        "the mix's manifest records)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--details", action="store_true", help="print every check (rows checked, failures, examples)")
    p.add_argument("--json", action="store_true", help="print the whole JSON report on stdout")
    p.add_argument("--sample-rows", type=int, default=None,
                   help="Harmony round trip on about this many rows (chosen by hash of the id); default all")
    p.add_argument("--max-seq-len", type=int, help="the configured max_seq_len (default: the manifest's)")
    p.add_argument("--seed", type=int, help="the configured seed (default: the manifest's)")
    p.add_argument("--train-frac", type=float, help="the configured train_frac (default: the manifest's)")
    p.add_argument("--reasoning-level", choices=("low", "medium", "high"), help="default: the manifest's")
    p.add_argument("--split-by", choices=("group", "id"), help="the configured split rule (default: the manifest's)")
    p.add_argument("--tokenizer-dir", help="folder with o200k_base.tiktoken (default: $TIKTOKEN_ENCODINGS_BASE, "
                   "else the copy the workflow staged under <output_root>/_work/tokenizer)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    inputs = []
    for spec in args.input:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            log.error("--input %r: expected NAME=DIR", spec)
            return 2
        inputs.append((name, Path(directory)))
    if args.sample_rows is not None and args.sample_rows < 0:
        log.error("--sample-rows must be >= 0")
        return 2
    options = Options(sample_rows=args.sample_rows, max_seq_len=args.max_seq_len, seed=args.seed,
                      train_frac=args.train_frac, reasoning_level=args.reasoning_level,
                      split_by=args.split_by, tokenizer_dir=args.tokenizer_dir)
    try:
        result = validate(args.directory, options, inputs)
    except (ValidationError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    text = json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.report.with_name(args.report.name + ".partial")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.report)
    if args.json:
        sys.stdout.write(text)
    lines = summary_lines(result)
    if args.report:   # a job's log (stderr) keeps every check
        for line in lines:
            log.info("%s", line)
    print(lines[0])   # the verdict, one line
    if args.details or not result["ok"]:
        shown = lines[1:] if args.details else [line for line in lines[1:] if " FAILED " in line or line.startswith("      ")]
        print("\n".join(shown))
    if not args.details and not args.json:
        print("  (every check: --details; the JSON report: --report FILE or --json)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
