"""The rebuild matrix: after the demo mix is built, each kind of change reruns exactly the jobs
it makes stale, read from the "Job stats" of `snakemake -n phase1_mix_8k_665m`. One test per
row of the table in profiles/slurm/README.md ("Rebuilds"). Also the content fingerprint that
lets a profile ignore modification times of raw inputs without missing a replaced file.

Raw inputs here are over 1 MB, like every real shard: Snakemake (>= 9.18) compares the checksum
of smaller inputs before it reruns for a newer mtime, which would hide the behaviour of
real-size files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from distill_data.demo.__main__ import write_demo
from distill_data.demo.nemotron import write_nemotron_jsonl
from distill_data.demo.synth import write_synth_source
from distill_data.fingerprint import EDGE, SAMPLE, raw_fingerprint
from workflow_helpers import PROJECT, copy_project, dry_run_jobs, snakemake, with_checks, write_config

MIX = "phase1_mix_8k_665m"
DEMO_CONFIG = "config.matrix.yaml"  # config.demo.yaml with a private copy of the tokenizer folder
PROFILE = ["--profile", "profiles/local"]
# profiles/default is applied to every run (the plain command); this opts out, to show what
# Snakemake does on its own.
BARE = ["--workflow-profile", "none"]
# Without mtime among the triggers: what one would try first, and what does not help (see README).
NO_MTIME = ["--rerun-triggers", "code", "params", "input", "software-env"]
SNAKEMAKE_CHECKSUM_LIMIT = 1_000_000  # --max-checksum-file-size default

MERGE = with_checks({"merge_mix": 1, MIX: 1})
REMERGE = {"mix_near_duplicates": 1, **MERGE}  # a rebuilt input: its near-duplicates are looked for again
SYNTH_AFTER_PLAN = with_checks({"synth_plan": 1, "synth_encode": 6, "synth_finalize": 1})


@pytest.fixture(scope="module")
def demo(tmp_path_factory, vocab_dir):
    project = copy_project(tmp_path_factory.mktemp("rebuild_matrix") / "project")
    config = yaml.safe_load((PROJECT / "config.demo.yaml").read_text())
    shutil.copytree(vocab_dir, project / "tokenizer")  # so that a test may touch it
    for path in (project / "tokenizer").iterdir():
        path.chmod(0o644)
    config["tokenizer_dir"] = str(project / "tokenizer")
    write_config(project / DEMO_CONFIG, config)
    write_demo(project / "demo" / "raw")
    snakemake(project, MIX, "-j", "2", "--configfile", DEMO_CONFIG)
    return project


def raw(demo: Path, which: str) -> Path:
    path = demo / {
        "synth": "demo/raw/pleias_synth/synth_034.parquet",
        "math": "demo/raw/nvidia__Nemotron-Math-v2/data/low.jsonl",
        "vocab": "tokenizer/o200k_base.tiktoken",
    }[which]
    assert path.stat().st_size > SNAKEMAKE_CHECKSUM_LIMIT, f"{path} must be larger than Snakemake's checksum limit"
    return path


def jobs(demo: Path, *args: str, config: str = DEMO_CONFIG) -> dict[str, int]:
    return dry_run_jobs(demo, MIX, *args, "--configfile", config)


def variant(demo: Path, name: str, **changes) -> str:
    config = yaml.safe_load((demo / DEMO_CONFIG).read_text())
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    return str(write_config(demo / f"variant_{name}.yaml", config))


class Restored:
    """Put a file's bytes and modification time back after the test changed them."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.data, stat = self.path.read_bytes(), self.path.stat()
        self.times = (stat.st_atime_ns, stat.st_mtime_ns)
        return self.path

    def __exit__(self, *exc):
        if self.path.read_bytes() != self.data:
            self.path.write_bytes(self.data)
        os.utime(self.path, ns=self.times)


def replace_content(path: Path, keep_mtime: bool) -> None:
    """Another file of the same kind under the same name (a re-download, a fixed upstream file)."""
    times = (path.stat().st_atime_ns, path.stat().st_mtime_ns)
    other = path.parent / f"other_{path.name}"
    if path.suffix == ".parquet":
        write_synth_source(path.parent, [other.name], 1500, seed=999)
    else:
        write_nemotron_jsonl(other, 3000, seed=999)
    os.replace(other, path)
    if keep_mtime:  # cp -p, rsync -a
        os.utime(path, ns=times)


def touch(path: Path) -> None:
    path.touch()


# --- nothing changed ---------------------------------------------------------------------------

def test_nothing_changed_nothing_to_do(demo):
    assert jobs(demo) == {}
    assert jobs(demo, *BARE) == {}
    assert jobs(demo, *PROFILE) == {}


# --- parameters --------------------------------------------------------------------------------

def test_a_synth_parameter_reruns_synth_from_its_plan_and_the_merge(demo):
    assert jobs(demo, config=variant(demo, "keep", synth={"global_keep": 0.25})) == {**SYNTH_AFTER_PLAN, **REMERGE}


def test_the_merge_seed_reruns_the_merge_only(demo):
    assert jobs(demo, config=variant(demo, "seed", merge={"seed": 7})) == MERGE


def test_a_shard_added_to_the_list_scans_only_that_shard(demo):
    raw_dir = demo / "demo" / "raw" / "pleias_synth"
    write_synth_source(raw_dir, ["synth_099.parquet"], 1500, seed=5)
    listing = demo / "seven_shards.txt"
    listing.write_text((demo / "demo" / "raw" / "synth_phase1_shards.txt").read_text() + "synth_099.parquet\n")
    try:
        got = jobs(demo, config=variant(demo, "seven", synth={"shard_list": str(listing)}))
    finally:
        (raw_dir / "synth_099.parquet").unlink()
    assert got == with_checks({"synth_link": 1, "synth_scan": 1, "synth_plan": 1, "synth_encode": 7, "synth_finalize": 1, **REMERGE})


# --- code --------------------------------------------------------------------------------------

CODE_ROWS = {
    "builders/opencode.py": {"code_build": 1, **REMERGE},
    "builders/nemotron.py": {"math_build": 1, **REMERGE},
    "builders/oasst2.py": {"chat_build": 1, **REMERGE},
    "builders/synth.py": {"synth_scan": 6, **SYNTH_AFTER_PLAN, **REMERGE},
    # the shared renderer: every builder's encoding (not the SYNTH scans, which do not render)
    "render.py": {"synth_encode": 6, "synth_finalize": 1, "code_build": 1, "math_build": 1, "chat_build": 1, **REMERGE},
    "merge.py": MERGE,
    "minhash.py": REMERGE,
}


@pytest.mark.parametrize("module", list(CODE_ROWS))
def test_editing_code_reruns_the_jobs_that_run_it(demo, module):
    with Restored(demo / "src" / "distill_data" / module) as source:
        source.write_text(source.read_text() + "\n# an edit\n")
        got = jobs(demo)
    assert got == with_checks(CODE_ROWS[module])


# --- raw inputs --------------------------------------------------------------------------------

SHARD_RESCANNED = {"synth_scan": 1, **SYNTH_AFTER_PLAN, **REMERGE}


def test_a_replaced_synth_shard_reruns_synth_and_the_merge(demo):
    with Restored(raw(demo, "synth")) as shard:
        replace_content(shard, keep_mtime=False)
        assert jobs(demo, *BARE) == {"synth_link": 1, **SHARD_RESCANNED}  # by mtime (the link is redone too)
        assert jobs(demo) == jobs(demo, *PROFILE) == SHARD_RESCANNED      # by its content fingerprint


def test_a_replaced_synth_shard_with_its_old_mtime_is_still_rescanned(demo):
    with Restored(raw(demo, "synth")) as shard:
        replace_content(shard, keep_mtime=True)
        assert jobs(demo) == SHARD_RESCANNED
        assert jobs(demo, *PROFILE) == SHARD_RESCANNED


def test_a_replaced_math_file_reruns_math_and_the_merge(demo):
    with Restored(raw(demo, "math")) as lines:
        replace_content(lines, keep_mtime=False)
        assert jobs(demo) == with_checks({"math_build": 1, **REMERGE})
        assert jobs(demo, *PROFILE) == with_checks({"math_build": 1, **REMERGE})


def budgeted_raw(demo: Path, job: str) -> tuple[Path, bytes]:
    """A raw file of a budgeted builder, and other content of the same kind to put in its place."""
    raw_dir = demo / "demo" / "raw"
    if job == "code_build":
        shards = sorted((raw_dir / "nvidia__OpenCodeInstruct" / "data").glob("*.parquet"))
        return shards[0], shards[1].read_bytes()
    if job == "math_build":
        target = raw(demo, "math")
        other = demo / "other_low.jsonl"
        write_nemotron_jsonl(other, 3000, seed=999)
        data = other.read_bytes()
        other.unlink()
        return target, data
    files = sorted((raw_dir / "OpenAssistant__oasst2").rglob("*.parquet"))
    validation = next(f for f in files if "validation" in f.name)
    train = next(f for f in files if "train" in f.name)
    return validation, train.read_bytes()


@pytest.mark.parametrize("job", ["code_build", "math_build", "chat_build"])
def test_a_budgeted_raw_file_replaced_with_its_old_mtime_is_rebuilt(demo, job):
    target, other = budgeted_raw(demo, job)
    with Restored(target) as path:
        times = (path.stat().st_atime_ns, path.stat().st_mtime_ns)
        path.write_bytes(other)
        os.utime(path, ns=times)  # cp -p, rsync -a: only the content tells
        assert jobs(demo) == with_checks({job: 1, **REMERGE})


def test_touching_a_synth_shard_reruns_its_builder_only_without_the_workflow_profile(demo):
    with Restored(raw(demo, "synth")) as shard:
        touch(shard)
        by_mtime = {"synth_link": 1, **SHARD_RESCANNED}
        assert jobs(demo, *BARE) == by_mtime
        # Snakemake 9.27 compares mtimes whatever --rerun-triggers says (the mtime trigger is
        # no longer consulted), so leaving mtime out does not help...
        assert jobs(demo, *BARE, *NO_MTIME) == by_mtime
        # ...while profiles/default (every run) judges SYNTH shards by content: nothing to do.
        assert jobs(demo) == jobs(demo, *PROFILE) == {}


def test_touching_the_math_file_reruns_math_only_without_the_workflow_profile(demo):
    with Restored(raw(demo, "math")) as lines:
        touch(lines)
        assert jobs(demo, *BARE) == with_checks({"math_build": 1, **REMERGE})
        assert jobs(demo) == jobs(demo, *PROFILE) == {}


def test_touching_the_tokenizer_vocabulary_reruns_nothing(demo):
    """The jobs read a staged copy, rerun only when the vocabulary's sha256 changes
    (tests/test_plain_command.py): a touched or copied vocabulary is the same vocabulary."""
    with Restored(raw(demo, "vocab")) as vocab:
        touch(vocab)
        assert jobs(demo, *BARE) == {}
        assert jobs(demo) == jobs(demo, *PROFILE) == {}


# --- the content fingerprint -------------------------------------------------------------------

def test_fingerprint_ignores_place_and_time_and_sees_content(tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"a": 1}\n' * 1000)
    copy = tmp_path / "copy" / "small.jsonl"
    copy.parent.mkdir()
    shutil.copy(small, copy)
    os.utime(copy, (1, 1))
    link = tmp_path / "link.jsonl"
    link.symlink_to(small)
    assert raw_fingerprint(small) == raw_fingerprint(copy) == raw_fingerprint(link)
    copy.write_bytes(b'{"a": 1}\n' * 999 + b'{"a": 2}\n')  # same size, a small file is hashed whole
    assert raw_fingerprint(copy) != raw_fingerprint(small)
    assert raw_fingerprint(small).startswith(f"{small.stat().st_size}:")


def test_fingerprint_of_a_large_file_samples_it(tmp_path):
    size = 2 * EDGE + 64 * SAMPLE
    base = bytes(range(256)) * (size // 256)
    path = tmp_path / "big.jsonl"

    def fingerprint_with(offset: int) -> str:
        data = bytearray(base)
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        return raw_fingerprint(path)

    path.write_bytes(base)
    original = raw_fingerprint(path)
    assert fingerprint_with(10) != original                   # the first MiB
    assert fingerprint_with(len(base) - 10) != original       # the last MiB
    path.write_bytes(base + b"x")
    assert raw_fingerprint(path) != original                  # the size
    # What it does not see, as documented: a same-size edit between the samples.
    first_sample = EDGE + (len(base) - 2 * EDGE - SAMPLE) // 17
    assert fingerprint_with(first_sample - 100) == original
    assert fingerprint_with(first_sample + 100) != original


def test_fingerprint_of_a_parquet_file_covers_its_footer(tmp_path):
    rows = 300_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "x": pa.array([i % 97 for i in range(rows)], pa.int32())})
    path = tmp_path / "shard.parquet"
    pq.write_table(table, path, row_group_size=50_000, compression="none")
    assert path.stat().st_size > 2 * EDGE + 16 * SAMPLE
    original = raw_fingerprint(path)
    changed = table.set_column(1, "x", pa.array([1000 if i == rows // 3 else i % 97 for i in range(rows)], pa.int32()))
    pq.write_table(changed, path, row_group_size=50_000, compression="none")
    assert raw_fingerprint(path) != original  # one value in the middle: the column statistics move
