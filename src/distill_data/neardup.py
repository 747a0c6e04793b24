"""Near-duplicate prompts across the mix's inputs, and the keep-one policy (rule
`mix_near_duplicates`, before `merge_mix`).

Every row of every input (both splits) gives its **prompt**: the user side of the
conversation, i.e. the tokens between the system message's `<|end|>` and
`spans.assistant_token_start`, less the `<|start|>user<|message|>` that opens it and the
`<|end|><|start|>assistant` that closes it, decoded. For a chat row with history that is the
whole thread shown (earlier turns with their Harmony markers, then the last user message), so
that two threads ending in the same short follow-up ("Can you make it shorter?") are not
duplicates; a SYNTH prompt is cut before its `\\n\\nReference:\\n` seed text, so that queries on
one seed text are not duplicates of each other. Prompts are compared as sets of word k-grams
of their normalized text by MinHash + LSH (`minhash.py`); the likely pairs are read again and
those whose exact Jaccard similarity reaches the threshold are joined into clusters.

Rows of one input with the same `source.split_group` are one problem by that builder's own
rule (several answers to one math problem, the turns of one oasst2 thread): they are never a
pair here, and they stay or go together. They already sit on one side of the split, and exact
copies (prompt and answer) were dropped by the builder.

**Policy (keep one)**: in each cluster the row of the input listed first in `priority` stays,
ties broken by the smallest `u(id, seed, "neardup")` (then the id), with the rows of its
problem (same input and split group); the others are listed as drops with the kept row. The merge leaves the drops out, so no near-duplicate pair is in the
mix at all, let alone on both sides of its split; the summary counts the clusters that
straddled the split before the policy.

Output: a parquet drop list (input, split, id, kept_input, kept_split, kept_id, cluster,
jaccard), its summary in the file's metadata (`near_duplicates`) and as JSON.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import minhash
from .hashing import unit_hash
from .progress import Progress
from .schema import SPLITS
from .tokenizer import sha256_file
from .writer import write_json, write_parquet

log = logging.getLogger("distill_data")

METADATA_KEY = b"near_duplicates"
SYNTH_REFERENCE = "\n\nReference:\n"
DROP_REASON = "near_duplicate"
DROP_SCHEMA = pa.schema([("input", pa.string()), ("split", pa.string()), ("id", pa.string()),
                         ("kept_input", pa.string()), ("kept_split", pa.string()), ("kept_id", pa.string()),
                         ("cluster", pa.int64()), ("jaccard", pa.float64())])
PROMPT_CHARS = 200     # of each sample cluster's prompts in the summary


class NearDuplicateError(ValueError):
    """A drop list that does not fit the inputs, or a row whose prompt cannot be found."""


@dataclass(frozen=True)
class NearDupParams:
    threshold: float = 0.8
    num_perm: int = 128
    shingle_words: int = 5
    seed: int = 1337
    priority: tuple[str, ...] = ("math", "code", "chat", "synth")
    samples: int = 5

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise NearDuplicateError(f"--threshold must be in (0, 1), not {self.threshold}")
        if self.num_perm < 2 or self.shingle_words < 1:
            raise NearDuplicateError("--num-perm must be at least 2 and --shingle-words at least 1")

    def lsh(self) -> tuple[int, int]:
        return minhash.lsh_params(self.threshold, self.num_perm)

    def to_dict(self) -> dict:
        bands, rows = self.lsh()
        return {"threshold": self.threshold, "num_perm": self.num_perm, "bands": bands, "rows_per_band": rows,
                "shingle": f"word {self.shingle_words}-grams of the normalized prompt",
                "shingle_words": self.shingle_words, "seed": self.seed, "priority": list(self.priority)}


# --- prompts ---------------------------------------------------------------------------------

class PromptReader:
    """The prompt text of contract rows (see the module doc), from their token ids."""

    def __init__(self, encoding):
        self.encoding = encoding   # tiktoken.Encoding of o200k_harmony
        self.end = encoding.encode_single_token("<|end|>")

    def prompts(self, batch: pa.RecordBatch, where: str) -> list[str]:
        ids = batch.column("input_ids")
        values = ids.values.to_numpy(zero_copy_only=False)
        offsets = ids.offsets.to_numpy()
        starts = pc.struct_field(batch.column("spans"), "assistant_token_start").to_numpy(zero_copy_only=False)
        out = []
        for k in range(batch.num_rows):
            row = values[offsets[k]:offsets[k] + starts[k]]
            ends = np.flatnonzero(row == self.end)
            if not len(ends) or ends[0] + 4 > len(row) - 3:
                raise NearDuplicateError(f"{where}: row {batch.column('id')[k].as_py()!r}: no user message between "
                                         "the system message and spans.assistant_token_start")
            text = self.encoding.decode(row[ends[0] + 4:len(row) - 3].tolist(), errors="replace")
            cut = text.find(SYNTH_REFERENCE)
            out.append(text[:cut] if cut >= 0 else text)
        return out


@dataclass
class Rows:
    """Every row hashed: its input, split, id, signature (rows with an empty prompt are counted
    apart and never clustered)."""

    names: list[str]
    input_index: list[int] = field(default_factory=list)
    split_index: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # source.split_group as an integer, -1: none
    signatures: list[np.ndarray] = field(default_factory=list)
    hashed: dict = field(default_factory=dict)       # name -> split -> rows
    empty: Counter = field(default_factory=Counter)  # name -> rows without prompt words


def hash_inputs(inputs, params: NearDupParams, reader: PromptReader, batch_size: int = 1024) -> tuple[Rows, np.ndarray]:
    """Read every row of every input (merge.MixInput), both splits; (rows, signatures)."""
    rows = Rows([inp.name for inp in inputs])
    hasher = minhash.WordHasher(params.shingle_words)
    seeds = minhash.permutation_seeds(params.num_perm, params.seed)
    total = sum(sum(inp.rows.values()) for inp in inputs)
    progress = Progress("near-duplicates: hashing", total_rows=total)
    for i, inp in enumerate(inputs):
        rows.hashed[inp.name] = {split: 0 for split in SPLITS}
        for s, split in enumerate(SPLITS):
            for path in inp.files[split]:
                handle = pq.ParquetFile(path)
                for batch in handle.iter_batches(batch_size=batch_size, columns=["id", "source", "input_ids", "spans"]):
                    texts = reader.prompts(batch, f"input {inp.name}: {path}")
                    shingles = [hasher.shingles(t) for t in texts]
                    present = [k for k, sh in enumerate(shingles) if len(sh)]
                    rows.empty[inp.name] += batch.num_rows - len(present)
                    ids = batch.column("id").to_pylist()
                    groups = split_groups(batch)
                    for k in present:
                        rows.input_index.append(i)
                        rows.split_index.append(s)
                        rows.ids.append(ids[k])
                        rows.groups.append(groups[k])
                    if present:
                        rows.signatures.append(minhash.signatures([shingles[k] for k in present], seeds))
                    rows.hashed[inp.name][split] += len(present)
                    progress.update(batch.num_rows, 0)
    progress.done()
    sig = np.concatenate(rows.signatures) if rows.signatures else np.zeros((0, params.num_perm), np.uint32)
    rows.signatures = []
    return rows, sig


def split_groups(batch: pa.RecordBatch) -> list[int]:
    """Each row's `source.split_group` (hex) as an integer; -1 where the row has none."""
    source = batch.column("source")
    if source.type.get_field_index("split_group") < 0:
        return [-1] * batch.num_rows
    return [int(g, 16) if g else -1 for g in pc.struct_field(source, "split_group").to_pylist()]


# --- clusters and the policy -----------------------------------------------------------------

def find_clusters(inputs, rows: Rows, sig: np.ndarray, params: NearDupParams,
                  reader: PromptReader) -> tuple[list[list[int]], dict, np.ndarray]:
    """(clusters as row indices, pair counts, rank of every row)."""
    # a rank independent of the inputs' order: u(id), then input name and id
    keys = [(unit_hash(row_id, params.seed, "neardup"), rows.names[i], row_id)
            for i, row_id in zip(rows.input_index, rows.ids)]
    rank = np.empty(len(keys), np.int64)
    rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    bands, per_band = params.lsh()
    pairs = minhash.likely_pairs(sig, params.threshold, bands, per_band, rank, problems(rows))
    a, b = pairs.left, pairs.right
    hasher = minhash.WordHasher(params.shingle_words)
    texts = read_prompts(inputs, rows, set(a.tolist()) | set(b.tolist()), reader)
    sets = {r: np.unique(hasher.shingles(text)) for r, text in texts.items()}
    exact = minhash.exact_jaccard(sets, a, b)
    near = exact >= params.threshold
    found = minhash.clusters(a[near].tolist(), b[near].tolist())
    return found, {"candidate_pairs": pairs.candidates, "estimated_pairs": len(a), "verified_pairs": int(near.sum())}, rank


def problems(rows: Rows) -> np.ndarray:
    """A number per row, equal for the rows of one problem (one input, one split group); a row
    without a split group is a problem of its own."""
    numbers: dict[tuple[int, int], int] = {}
    out = np.empty(len(rows.ids), np.int64)
    for r, (i, g) in enumerate(zip(rows.input_index, rows.groups)):
        out[r] = numbers.setdefault((i, g), len(numbers)) if g >= 0 else -1 - r
    return out


def apply_policy(rows: Rows, sig: np.ndarray, found: list[list[int]], rank: np.ndarray,
                 params: NearDupParams) -> tuple[pa.Table, dict, list]:
    """The drop list (one row per dropped row), the summary's cluster counts and the sample
    clusters (the first few by cluster id: (cluster id, kept row, members))."""
    order = {name: k for k, name in enumerate(params.priority)}
    unlisted = len(order)

    def priority(name: str) -> tuple[int, str]:   # inputs missing from priority: after, by name
        return (order.get(name, unlisted), "" if name in order else name)

    drops = {name: [] for name in DROP_SCHEMA.names}
    sizes, within, across, straddling = Counter(), Counter(), Counter(), 0
    dropped = {name: {split: 0 for split in SPLITS} for name in rows.names}
    described = []
    for members in found:
        kept = min(members, key=lambda r: (priority(rows.names[rows.input_index[r]]), int(rank[r])))
        cluster_id = int(rank[kept])
        sizes[len(members)] += 1
        sources = sorted({rows.names[rows.input_index[r]] for r in members})
        if len(sources) == 1:
            within[sources[0]] += 1
        else:
            across["+".join(sources)] += 1
        straddling += len({rows.split_index[r] for r in members}) > 1
        kept_problem = (rows.input_index[kept], rows.groups[kept])
        for r in sorted(members, key=lambda r: int(rank[r])):
            if r == kept or (rows.groups[r] >= 0 and (rows.input_index[r], rows.groups[r]) == kept_problem):
                continue
            name = rows.names[rows.input_index[r]]
            split = SPLITS[rows.split_index[r]]
            dropped[name][split] += 1
            for column, value in (("input", name), ("split", split), ("id", rows.ids[r]),
                                  ("kept_input", rows.names[rows.input_index[kept]]),
                                  ("kept_split", SPLITS[rows.split_index[kept]]), ("kept_id", rows.ids[kept]),
                                  ("cluster", cluster_id),
                                  ("jaccard", round(float((sig[r] == sig[kept]).mean()), 6))):
                drops[column].append(value)
        described.append((cluster_id, kept, members))
    table = pa.table(drops, schema=DROP_SCHEMA).sort_by([("cluster", "ascending"), ("input", "ascending"),
                                                         ("id", "ascending")])
    counts = {
        "clusters": len(found),
        "rows_in_clusters": sum(len(m) for m in found),
        "cluster_sizes": [{"size": size, "clusters": n} for size, n in sorted(sizes.items())],
        "clusters_within_one_input": dict(sorted(within.items())),
        "clusters_across_inputs": dict(sorted(across.items())),
        "clusters_straddling_the_split_before_the_policy": straddling,
        "dropped": dropped,
        "dropped_total": sum(sum(d.values()) for d in dropped.values()),
    }
    return table, counts, sorted(described)[:params.samples]


def describe_samples(samples, rows: Rows, prompts: dict[int, str]) -> list[dict]:
    return [{"cluster": cluster_id, "size": len(members),
             "rows": [{"input": rows.names[rows.input_index[r]], "split": SPLITS[rows.split_index[r]],
                       "id": rows.ids[r], "kept": r == kept,
                       "prompt": " ".join(prompts.get(r, "").split())[:PROMPT_CHARS]}
                      for r in sorted(members, key=lambda r: (r != kept, r))]}
            for cluster_id, kept, members in samples]


def read_prompts(inputs, rows: Rows, wanted: set[int], reader: PromptReader) -> dict[int, str]:
    """The prompts of some rows (to verify, to show), read again by id."""
    by_input: dict[tuple[int, int], dict[str, int]] = {}
    for r in wanted:
        by_input.setdefault((rows.input_index[r], rows.split_index[r]), {})[rows.ids[r]] = r
    out = {}
    for (i, s), ids in sorted(by_input.items()):
        inp = inputs[i]
        for path in inp.files[SPLITS[s]]:
            table = pq.read_table(path, columns=["id", "input_ids", "spans"],
                                  filters=pc.field("id").isin(list(ids)))
            for batch in table.to_batches():
                for row_id, text in zip(batch.column("id").to_pylist(), reader.prompts(batch, str(path))):
                    out[ids[row_id]] = text
    return out


def find_near_duplicates(inputs, params: NearDupParams, encoding, batch_size: int = 1024) -> tuple[pa.Table, dict]:
    """The whole stage on opened inputs (merge.MixInput): (drop list, summary)."""
    reader = PromptReader(encoding)
    rows, sig = hash_inputs(inputs, params, reader, batch_size)
    log.info("near-duplicates: %d rows hashed (%d bytes of signatures); banding", len(rows.ids), sig.nbytes)
    found, pair_counts, rank = find_clusters(inputs, rows, sig, params, reader)
    table, counts, samples = apply_policy(rows, sig, found, rank, params)
    prompts = read_prompts(inputs, rows, {r for _, _, members in samples for r in members}, reader)
    summary = {
        "params": params.to_dict(),
        "inputs": {inp.name: {"manifest_sha256": inp.manifest_sha256, "rows": dict(inp.rows),
                              "rows_hashed": rows.hashed[inp.name], "rows_without_prompt_words": rows.empty[inp.name]}
                   for inp in inputs},
        **pair_counts,
        **counts,
        "sample_clusters": describe_samples(samples, rows, prompts),
    }
    return table, summary


def write_drop_list(table: pa.Table, summary: dict, path: Path, summary_path: Path | None = None) -> None:
    """The drop list with its summary in the file's metadata (one self-describing file)."""
    metadata = {METADATA_KEY: json.dumps(summary, sort_keys=True, ensure_ascii=False).encode()}
    write_parquet(table.replace_schema_metadata(metadata), Path(path))
    if summary_path is not None:
        write_json(Path(summary_path), summary)


# --- the merge's side ------------------------------------------------------------------------

@dataclass
class DropList:
    """A drop list as the merge uses it: name -> split -> ids, and the summary."""

    path: Path
    summary: dict
    ids: dict[str, dict[str, frozenset]]
    rows: int


def read_drop_list(path: Path) -> DropList:
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise NearDuplicateError(f"drop list {path}: not a readable parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None or set(DROP_SCHEMA.names) - set(table.column_names):
        raise NearDuplicateError(f"drop list {path}: not written by the near-duplicate stage (no "
                                 f"{METADATA_KEY.decode()} metadata or columns {', '.join(DROP_SCHEMA.names)})")
    summary = json.loads(raw)
    ids: dict[str, dict[str, set]] = {}
    for name, split, row_id in zip(*(table.column(c).to_pylist() for c in ("input", "split", "id"))):
        ids.setdefault(name, {s: set() for s in SPLITS})[split].add(row_id)
    return DropList(path, summary, {n: {s: frozenset(v) for s, v in d.items()} for n, d in ids.items()},
                    table.num_rows)


def attach_drop_list(path: Path, inputs) -> DropList:
    """Read the drop list, check it was made from these inputs and give each input
    (merge.MixInput) its dropped ids."""
    drops = read_drop_list(path)
    check_drop_list(drops, inputs)
    for inp in inputs:
        inp.dropped = drops.ids.get(inp.name, {split: frozenset() for split in SPLITS})
    return drops


def check_drops_found(inputs, kept_rows: dict[str, list[int]]) -> None:
    """Every listed drop is a row of its input's split (else the list is for other data):
    `kept_rows[split][i]` rows of input i were found outside the list."""
    for i, inp in enumerate(inputs):
        for split in SPLITS:
            missing = inp.rows[split] - len(inp.dropped.get(split, ())) - kept_rows[split][i]
            if missing:
                raise NearDuplicateError(f"input {inp.name}: {missing} ids of the drop list are not rows of its "
                                         f"{split} split; rerun the near-duplicate stage (rule mix_near_duplicates)")


def mix_section(drops: DropList, copy: Path) -> dict:
    """The summary for the mix's manifest, the drop list copied to `copy` (inside the mix
    folder being assembled, which is swapped into place whole) with its sha256."""
    shutil.copyfile(drops.path, copy)
    return {**drops.summary, "file": {"path": copy.name, "rows": drops.rows, "bytes": copy.stat().st_size,
                                      "sha256": sha256_file(copy)}}


# An input that loses more than this share of its rows (at least WARN_MIN_ROWS of them) to the
# policy is a warning in the mix manifest and the log: a threshold set too low, or a source that
# repeats itself, should be seen before training.
WARN_SHARE = 0.5
WARN_MIN_ROWS = 20


def drop_warnings(drops: DropList, inputs) -> list[str]:
    """A log line per input that lost rows, and a warning where it lost most of them."""
    threshold = (drops.summary.get("params") or {}).get("threshold")
    found = []
    for inp in inputs:
        total = sum(inp.rows.values())
        lost = sum(len(ids) for ids in drops.ids.get(inp.name, {}).values())
        if lost:
            log.info("input %s: %d of %d rows left out as near-duplicates", inp.name, lost, total)
        if total >= WARN_MIN_ROWS and lost > WARN_SHARE * total:
            found.append(f"input {inp.name}: near-duplicates removed {lost:,} of its {total:,} rows (Jaccard at least "
                         f"merge.near_duplicates.threshold {threshold}); see the manifest's near_duplicates clusters")
    return found


def check_drop_list(drops: DropList, inputs) -> None:
    """The list was made from these very inputs (their manifests by sha256)."""
    made_from = drops.summary.get("inputs", {})
    for inp in inputs:
        listed = made_from.get(inp.name, {}).get("manifest_sha256")
        if listed != inp.manifest_sha256:
            raise NearDuplicateError(f"drop list {drops.path} was made from another build of input {inp.name} "
                                     f"(manifest sha256 {str(listed)[:12]}…, now {inp.manifest_sha256[:12]}…); "
                                     "rerun the near-duplicate stage (rule mix_near_duplicates)")
    unknown = sorted(set(drops.ids) - {inp.name for inp in inputs})
    if unknown:
        raise NearDuplicateError(f"drop list {drops.path} lists rows of input(s) not merged: {', '.join(unknown)}")
