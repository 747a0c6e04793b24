"""Issue 17, "the first hour": what a new user hits, each with a real build of the demo.

One demo build per module (a private copy of the project); tests that damage it repair it
(a rebuild) before they end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distill_data.demo.__main__ import write_demo
from workflow_helpers import PROJECT, copy_project, snakemake

MIX = "phase1_mix_8k_665m"
CONFIG = "config.demo.yaml"
OUT = "demo/distillation_1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, vocab_dir):
    project = copy_project(tmp_path_factory.mktemp("first_hour") / "project")
    shutil.copy2(PROJECT / CONFIG, project / CONFIG)
    write_demo(project / "demo" / "raw")
    snakemake(project, "-j", "2", "--configfile", CONFIG, "--", MIX)
    return project


def console(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


# --- 1. the README's --config override builds (not only dry-runs) ------------------------------

def test_merge_seed_override_from_the_readme_builds_and_validates(demo):
    override = ["--config", 'merge={"seed": 7}']
    try:
        snakemake(demo, "-j", "2", "--configfile", CONFIG, *override, "--", MIX)
        mix = json.loads((demo / OUT / MIX / "manifest.json").read_text())
        assert mix["params"]["seed"] == 7
        report = json.loads((demo / OUT / "_work" / "validate" / "mix.json").read_text())
        assert report["ok"] and report["settings"]["seed"] == 7
    finally:
        snakemake(demo, "-j", "2", "--configfile", CONFIG, "--", MIX)


# --- 2. the validator CLI on a mix, as a user types it ---------------------------------------

def validate_cli(demo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill_data.validate", *args], cwd=demo, capture_output=True,
                          text=True, timeout=600, env=snakemake_env(demo))


def snakemake_env(demo: Path) -> dict:
    import os
    return dict(os.environ, PYTHONPATH=str(demo / "src"))


def test_validate_cli_on_the_mix_alone_gives_a_short_verdict(demo):
    done = validate_cli(demo, f"{OUT}/{MIX}", "--sample-rows", "200", "--report", "mix_by_hand.json")
    assert done.returncode == 0, console(done)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{MIX}: OK ("), lines
    assert len(lines) <= 2, lines
    assert " ERROR " not in done.stderr, done.stderr
    report = json.loads((demo / "mix_by_hand.json").read_text())
    assert report["kind"] == "mix" and report["checks"]["mix_rows"]["ok"] and report["checks"]["mix_rows"]["checked"]
    assert report["settings"]["split_by"] == "group"     # recorded in the mix manifest, per input
    mix = json.loads((demo / OUT / MIX / "manifest.json").read_text())
    assert {entry["split"]["split_by"] for entry in mix["inputs"]} == {"group"}
    details = validate_cli(demo, f"{OUT}/{MIX}", "--sample-rows", "0", "--details")
    assert details.returncode == 0 and "mix_composition" in details.stdout and "split_rule" in details.stdout


# --- 3. a damaged dataset stops the run, naming the file and the rebuild -------------------------

CHAT = "helpfulness_oasst2_15m"


def test_a_deleted_or_truncated_part_file_stops_the_run_with_its_rebuild(demo):
    part = demo / OUT / CHAT / "train" / "part-00000.parquet"
    kept = part.read_bytes()
    try:
        part.unlink()
        done = snakemake(demo, "-n", "--configfile", CONFIG, "--", MIX, check=False)
        assert done.returncode == 1
        error = [line for line in console(done).splitlines() if line.startswith("Error: ")]
        assert error == [f"Error: {OUT}/{CHAT}/train/part-00000.parquet is missing (listed in {OUT}/{CHAT}/"
                         "manifest.json): the dataset is damaged. Rebuild it: snakemake --forcerun chat_build "
                         "-- <target>"], console(done)
        assert "Traceback" not in console(done)
        part.write_bytes(kept[: len(kept) // 2])
        done = snakemake(demo, "-n", "--configfile", CONFIG, "--", MIX, check=False)
        assert done.returncode == 1 and f"bytes, {OUT}/{CHAT}/manifest.json lists {len(kept):,}" in console(done)
        # the command it names is the way out
        forced = snakemake(demo, "-n", "--forcerun", "chat_build", "--configfile", CONFIG, "--", MIX)
        assert "chat_build" in forced.stdout
    finally:
        part.write_bytes(kept)
    assert "Nothing to be done" in snakemake(demo, "-n", "--configfile", CONFIG, "--", MIX).stdout


# --- 5. the tools find the staged vocabulary; nothing is written beside it ------------------------

def test_show_and_validate_find_the_staged_vocabulary(demo):
    import os
    env = {k: v for k, v in snakemake_env(demo).items() if k != "TIKTOKEN_ENCODINGS_BASE"}
    for tool, args in (("show", ["--sample", "1", "--color", "never"]), ("validate", ["--sample-rows", "5"])):
        done = subprocess.run([sys.executable, "-m", f"distill_data.{tool}", f"{OUT}/{CHAT}", *args], cwd=demo,
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, console(done)
    done = subprocess.run([sys.executable, "-m", "distill_data.show", str(demo / "nowhere"), "--sample", "1"],
                          cwd=demo, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "no staged copy of o200k_base.tiktoken in " in done.stderr
    # the render self-check's record went under the work folder, not beside any vocabulary
    assert list((demo / OUT / "_work" / "render_check").glob("render-check-*.json"))
    assert not (demo / OUT / "_work" / "tokenizer" / ".render_check").exists()
    assert os.environ.get("TIKTOKEN_ENCODINGS_BASE") and not (Path(os.environ["TIKTOKEN_ENCODINGS_BASE"]) / ".render_check").exists()


# --- 8. documented names and examples match what the workflow does ---------------------------------

def test_the_slurm_readme_names_only_rules_that_exist(demo):
    import re
    listed = snakemake(demo, "--list-rules", "--configfile", CONFIG).stdout.split()
    text = (PROJECT / "profiles" / "slurm" / "README.md").read_text()
    section = text[text.index("## Resources"):].split("\n## ")[0]   # the table of rules and resources
    table = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for line in table for name in re.findall(r"`([a-z_0-9<>]+)`", line.split("|")[1])}
    for name in named:
        pattern = re.compile("^" + re.escape(name).replace("<dataset>", "[a-z0-9_]+") + "$")
        assert any(pattern.match(rule) for rule in listed), f"profiles/slurm/README.md names a rule {name!r} that does not exist"
    assert not re.search(r"\b\d+ `sbatch` jobs", (PROJECT / "profiles" / "slurm" / "README.md").read_text())


def test_the_inspector_example_in_the_docs_is_what_show_prints(demo):
    readme = (PROJECT / "docs" / "inspecting.md").read_text()
    example = readme[readme.index("```text\nnemotron_math:"):].split("\n")[1]
    row_id = example.split()[0]
    done = subprocess.run([sys.executable, "-m", "distill_data.show", f"{OUT}/{MIX}", "--id", row_id, "--color", "never"],
                          cwd=demo, capture_output=True, text=True, timeout=120, env=snakemake_env(demo))
    assert done.returncode == 0, console(done)
    assert example in done.stdout.splitlines(), (example, done.stdout[:400])


# --- 4. a missing raw input and a changed setting: stop and say so ----------------------------------

def test_a_changed_budget_with_its_raw_input_gone_stops_the_mix(demo):
    moved = ["--config", 'code={"input_dir": "/nowhere/code", "target_total_tokens": 400000}']
    done = snakemake(demo, "-n", "--configfile", CONFIG, *moved, "--", MIX, check=False)
    assert done.returncode == 1, console(done)
    error = [line for line in console(done).splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "/nowhere/code" in error[0], console(done)
    assert "code.target_total_tokens: built with 300000, configured 400000" in error[0]
    assert "Traceback" not in console(done)
    # the same missing input with the settings it was built with: the built dataset is merged, said once
    same = snakemake(demo, "-n", "--configfile", CONFIG, "--config", 'code={"input_dir": "/nowhere/code"}', "--", MIX)
    assert "merging the built dataset" in same.stderr


# --- 6. every missing raw input at once, one line each, no traceback --------------------------------

def test_all_missing_raw_inputs_are_reported_at_once(demo):
    gone = ["--config", 'code={"input_dir": "/nowhere/code"}', 'math={"input_files": ["/nowhere/low.jsonl"]}']
    done = snakemake(demo, "-n", "--configfile", CONFIG, *gone, "--", "all", check=False)
    assert done.returncode == 1
    text = console(done)
    assert "Error: 2 raw inputs cannot be read:" in text and "Traceback" not in text, text[-2000:]
    assert "  /nowhere/code (config key code.input_dir): no such folder" in text
    assert "  config key math.input_files: no such file(s): /nowhere/low.jsonl" in text


def test_run_from_another_directory_names_where_relative_paths_were_taken_from(tmp_path):
    """The README's demo config has relative paths: run from elsewhere, the error says which
    directory they were taken from (issue 17, item 6), in one message, no traceback."""
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(PROJECT / "Snakefile"),
                           "--configfile", str(PROJECT / "config.demo.yaml"), "--", MIX],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    text = console(done)
    assert done.returncode == 1 and "Traceback" not in text and 'File "' not in text, text[-2000:]
    assert "Error: shard list demo/raw/synth_phase1_shards.txt does not exist (config key synth.shard_list)" in text
    assert (f"are taken from the working directory {tmp_path.resolve()}, not from the workflow's folder {PROJECT}"
            in text)
    assert "output_root: demo/distillation_1" in text


# --- 7. the report shows tables, not raw JSON; report.html is not committed --------------------------

def test_report_tables_hold_no_raw_json(demo):
    import html
    import re
    for name in ("mix", "synth", "code", "math", "chat"):
        page = (demo / OUT / "_work" / "report" / name / "accounting.html").read_text()
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", page)]
        assert not [c for c in cells if c.startswith("{")], (name, [c for c in cells if c.startswith("{")][:2])
    assert "/report.html" in (PROJECT / ".gitignore").read_text().splitlines()


def test_the_readme_is_for_newcomers_and_links_every_docs_page():
    readme = (PROJECT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in sorted((PROJECT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    ci = (PROJECT / ".ci" / "run").read_text()
    for command in ("pip install torch==2.13.0", "pip install -e '.[test]'", "pytest"):
        assert command in ci and command in readme


def test_no_report_figure_cuts_off_a_title_or_label(demo, tmp_path):
    from distill_data.report_items import composition_png, read_spans, tokens_png
    validation = json.loads((demo / OUT / "_work" / "validate" / "mix.json").read_text())
    assert composition_png(validation, MIX, tmp_path / "composition.png") == []
    for name in ("synth_distill_phase1_high_550m", MIX):
        folder = demo / OUT / name
        spans = read_spans(folder, json.loads((folder / "manifest.json").read_text()))
        assert tokens_png(spans, name, tmp_path / "tokens.png") == []
