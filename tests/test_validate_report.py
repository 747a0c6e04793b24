"""Issue 10: the demo mix built by one Snakemake command comes with the validator's reports and
the report items; `snakemake --report` collects them into report.html; the validator finds and
names each corruption of a copy; the inspector shows rows of every dataset and of the mix; the
rule graph in docs/ is current; every job leaves a benchmark file and progress lines."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_data import show
from distill_data.demo.__main__ import write_demo
from distill_data.validate import CHECKS, MIX_CHECKS, Options, sha256_file, validate
from workflow_helpers import PROJECT, copy_project, snakemake

TARGET = "phase1_mix_8k_665m"
DATASETS = {"synth": "synth_distill_phase1_high_550m", "code": "code_opencodeinstruct_55m",
            "math": "math_nemotron_v2_low_55m", "chat": "helpfulness_oasst2_15m", "mix": TARGET}
CATEGORIES = ("1. Accounting", "2. Token histograms", "3. Mix composition", "4. Decoded samples", "5. Validation")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The README's demo (generated sources, config.demo.yaml), its mix target and its report."""
    root = tmp_path_factory.mktemp("demo_report")
    project = copy_project(root / "project")
    shutil.copy2(PROJECT / "config.demo.yaml", project / "config.demo.yaml")
    write_demo(project / "demo" / "raw")
    snakemake(project, TARGET, "-j", "2", "--configfile", "config.demo.yaml")
    report = root / "report.html"
    snakemake(project, "--configfile", "config.demo.yaml", "--report", str(report), TARGET)
    out = project / "demo" / "distillation_1"
    return {"project": project, "out": out, "work": out / "_work", "report": report}


def dataset_dir(demo, name: str) -> Path:
    return demo["out"] / DATASETS[name]


def inputs_of(demo) -> list[tuple[str, Path]]:
    return [(name, dataset_dir(demo, name)) for name in ("synth", "code", "math", "chat")]


# --- the built demo -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DATASETS))
def test_every_target_is_validated_in_full(demo, name):
    report = json.loads((demo["work"] / "validate" / f"{name}.json").read_text())
    manifest = json.loads((dataset_dir(demo, name) / "manifest.json").read_text())
    assert report["ok"] and report["failed_checks"] == []
    expected = set(CHECKS) | (set(MIX_CHECKS) if name == "mix" else set())
    assert set(report["checks"]) == expected
    rows = manifest["accounting"]["rows_written_total"]
    assert sum(report["rows"].values()) == rows > 0
    # the demo is small: every row goes through the openai-harmony round trip
    assert report["checks"]["harmony"]["checked"] == report["harmony_round_trip"]["rows"] == rows
    for check in ("labels", "spans", "last_token", "max_seq_len", "unique_ids"):
        assert report["checks"][check]["checked"] == rows
    if name != "mix":   # built after issue 8: split groups exist and the split rule is recomputed
        assert report["checks"]["split_rule"]["checked"] == rows
        assert report["checks"]["split_groups"]["checked"] == rows
        assert report["settings"]["split_by"] == "group"


def _report_results(path: Path) -> tuple[dict, dict]:
    text = path.read_text(encoding="utf-8")
    results = json.loads(re.search(r'<script id="results">\s*var results = (\{.*?\});?\s*</script>', text, re.S).group(1))
    categories = json.loads(re.search(r'<script id="categories">\s*var categories = (\{.*?\});?\s*</script>', text, re.S).group(1))
    return results, categories


def _payload(item: dict) -> bytes:
    return base64.b64decode(item["data_uri"].split("base64,", 1)[1])


def test_the_report_holds_plots_and_tables_of_every_dataset(demo):
    results, categories = _report_results(demo["report"])
    assert sorted(categories) == list(CATEGORIES)
    for category, per_dataset in categories.items():
        wanted = {DATASETS["mix"]} if category == "3. Mix composition" else set(DATASETS.values())
        assert set(per_dataset) == wanted, category
    by_item = {}
    for item in results.values():
        by_item[(item["labels"]["dataset"], item["labels"]["item"])] = item
    for name, dataset in DATASETS.items():
        manifest = json.loads((dataset_dir(demo, name) / "manifest.json").read_text())
        png = _payload(by_item[(dataset, "tokens")])
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        accounting = _payload(by_item[(dataset, "accounting")]).decode()
        assert "<table>" in accounting and "rows read" in accounting
        assert f"{manifest['accounting']['rows_read']:,}" in accounting
        for reason, count in manifest["accounting"]["dropped"].items():
            assert f"<td>{reason}</td><td class=\"n\">{count:,}</td>" in accounting
        samples = _payload(by_item[(dataset, "samples")]).decode()
        assert samples.count("<pre>") == 3 and "class=\"trained\"" in samples
        assert re.search(r'<span class="trained">[^<]*&lt;\|return\|&gt;</span></pre>', samples)
        validation = _payload(by_item[(dataset, "validation")]).decode()
        assert "all checks passed" in validation and "<td>harmony</td><td>ok</td>" in validation
    composition = _payload(by_item[(TARGET, "composition")])
    assert composition.startswith(b"\x89PNG") and len(composition) > 10_000
    mix_accounting = _payload(by_item[(TARGET, "accounting")]).decode()
    assert "realised share" in mix_accounting and all(f"<td>{n}</td>" in mix_accounting for n in ("synth", "code", "math", "chat"))


def test_every_job_has_a_benchmark_file_next_to_its_log(demo):
    logs = sorted((demo["work"] / "logs").rglob("*.log"))
    assert len(logs) >= 20
    for log in logs:
        bench = log.with_name(log.stem + ".benchmark.tsv")
        assert bench.is_file(), log
        header, values = bench.read_text().splitlines()[:2]
        assert header.split("\t")[:3] == ["s", "h:m:s", "max_rss"] and float(values.split("\t")[0]) >= 0


def test_long_jobs_log_rows_tokens_rate_and_eta(demo):
    logs = demo["work"] / "logs"
    pattern = re.compile(r"[\d,]+ rows of [\d,]+, .*tokens.*rows/s, .*tokens/s, [\d.]+% done, ETA \S+, elapsed")
    for log in ("synth/encode/synth_010.log", "merge/merge_mix.log", "validate/mix.log", "validate/synth.log"):
        assert pattern.search((logs / log).read_text()), log
    budget = re.compile(r"[\d,]+ rows, [\d.]+k tokens of [\d.]+[kM], .*rows/s, .*tokens/s, [\d.]+% done, ETA")
    for log in ("code/build.log", "math/build.log", "chat/build.log"):
        assert budget.search((logs / log).read_text()), log
    assert re.search(r"scan synth_010.parquet: [\d,]+ rows of [\d,]+, .*rows/s", (logs / "synth/scan/synth_010.log").read_text())


def test_the_rule_graph_in_docs_is_current(demo):
    """docs/rulegraph.dot (pictured in README.md as docs/rulegraph.svg) is what Snakemake
    draws now: same rules, same edges (Snakemake lists edges in no fixed order)."""
    done = snakemake(demo["project"], "--configfile", "config.demo.yaml", "--rulegraph", "dot", "--", "all")

    def graph(text: str):
        labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', text, re.M))
        edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", text, re.M)}
        return set(labels.values()), edges

    committed = graph((PROJECT / "docs" / "rulegraph.dot").read_text())
    assert graph(done.stdout) == committed, ("the rule graph changed: regenerate docs/rulegraph.dot and .svg "
                                             "(docs/development.md, 'The rule graph')")
    assert {"validate_mix", "report_mix", "merge_mix"} <= committed[0]


# --- the validator on corrupted copies ----------------------------------------------------------

def copy_dataset(demo, name: str, tmp_path: Path) -> Path:
    dest = tmp_path / DATASETS[name]
    shutil.copytree(dataset_dir(demo, name), dest)
    return dest


def rewrite(directory: Path, relpath: str, table: pa.Table) -> None:
    """Replace a part file and record its new sha256 and rows in the manifest (so that only
    the corruption inside the rows remains)."""
    path = directory / relpath
    pq.write_table(table, path, compression="zstd")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entries in manifest["files"].values():
        for entry in entries:
            if entry["path"] == relpath:
                entry.update(sha256=sha256_file(path), rows=table.num_rows, bytes=path.stat().st_size)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def set_cell(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column,
                            pa.array(values, table.schema.field(column).type))


def run(directory: Path, inputs=(), **options) -> dict:
    return validate(directory, Options(**({"sample_rows": 50} | options)), inputs)


def first_problem(report: dict, check: str) -> dict:
    return report["checks"][check]["examples"][0]


def test_a_flipped_label_is_found(demo, tmp_path):
    d = copy_dataset(demo, "code", tmp_path)
    table = pq.read_table(d / "train/part-00000.parquet")
    labels = table.column("labels")[5].as_py()
    start = table.column("spans")[5].as_py()["assistant_token_start"]
    labels[start + 2] = -100                      # a trained token no longer trained
    rewrite(d, "train/part-00000.parquet", set_cell(table, "labels", 5, labels))
    report = run(d)
    assert report["failed_checks"] == ["labels"]
    problem = first_problem(report, "labels")
    assert problem["row"] == 5 and problem["id"] == table.column("id")[5].as_py()
    assert f"label at token {start + 2} (from assistant_token_start {start})" in problem["problem"]


def test_a_wrong_span_is_found(demo, tmp_path):
    d = copy_dataset(demo, "math", tmp_path)
    table = pq.read_table(d / "train/part-00000.parquet")
    spans = table.column("spans")[3].as_py()
    spans["final_token_count"] += 1
    rewrite(d, "train/part-00000.parquet", set_cell(table, "spans", 3, spans))
    report = run(d, sample_rows=None)
    assert "spans" in report["failed_checks"] and "harmony" in report["failed_checks"]
    assert first_problem(report, "spans")["row"] == 3
    assert "!= " in first_problem(report, "spans")["problem"]


def test_a_truncated_part_file_is_found(demo, tmp_path):
    d = copy_dataset(demo, "synth", tmp_path)
    path = d / "train/part-00000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report = run(d)
    assert "files" in report["failed_checks"]
    problems = [e for e in report["checks"]["files"]["examples"] if e["file"] == str(path)]
    assert any("sha256" in e["problem"] for e in problems)
    assert any("not a readable parquet file" in e["problem"] for e in problems)


def test_an_edited_manifest_count_is_found(demo, tmp_path):
    d = copy_dataset(demo, "chat", tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["accounting"]["rows_written"]["validation"] += 1
    (d / "manifest.json").write_text(json.dumps(manifest))
    report = run(d)
    assert report["failed_checks"] == ["manifest_counts", "accounting"]
    assert first_problem(report, "manifest_counts")["problem"].startswith("accounting.rows_written.validation")
    assert "rows_written_total" in first_problem(report, "accounting")["problem"]


def test_a_row_moved_between_splits_is_found(demo, tmp_path):
    d = copy_dataset(demo, "synth", tmp_path)
    train = pq.read_table(d / "train/part-00000.parquet")
    validation = pq.read_table(d / "validation/part-00000.parquet")
    moved = train.slice(7, 1)
    rewrite(d, "train/part-00000.parquet", pa.concat_tables([train.slice(0, 7), train.slice(8)]))
    rewrite(d, "validation/part-00000.parquet", pa.concat_tables([validation, moved]))
    report = run(d)
    assert "split_rule" in report["failed_checks"]
    problem = first_problem(report, "split_rule")
    assert problem["id"] == moved.column("id")[0].as_py()
    assert "in validation, but u(query, 1337, 'split') puts it in train" in problem["problem"]


def test_a_split_group_in_both_splits_is_found(demo, tmp_path):
    d = copy_dataset(demo, "chat", tmp_path)
    validation = pq.read_table(d / "validation/part-00000.parquet")
    group = validation.column("source")[0].as_py()["split_group"]
    train = pq.read_table(d / "train/part-00000.parquet")
    source = train.column("source")[0].as_py() | {"split_group": group}
    rewrite(d, "train/part-00000.parquet", set_cell(train, "source", 0, source))
    report = run(d)
    assert "split_groups" in report["failed_checks"]
    assert first_problem(report, "split_groups")["problem"] == f"split_group {group} in both splits"


def test_a_foreign_token_in_the_prompt_fails_the_harmony_round_trip(demo, tmp_path):
    d = copy_dataset(demo, "chat", tmp_path)
    table = pq.read_table(d / "train/part-00000.parquet")
    ids = table.column("input_ids")[2].as_py()
    ids[3] = 200006                               # <|start|> inside the system message (not trained)
    rewrite(d, "train/part-00000.parquet", set_cell(table, "input_ids", 2, ids))
    report = run(d, sample_rows=None)
    assert report["failed_checks"] == ["harmony"]
    assert first_problem(report, "harmony")["row"] == 2


def test_an_overlong_row_and_a_missing_return_are_found(demo, tmp_path):
    d = copy_dataset(demo, "code", tmp_path)
    table = pq.read_table(d / "train/part-00000.parquet")
    ids = table.column("input_ids")[1].as_py()
    labels = table.column("labels")[1].as_py()
    ids[-1] = labels[-1] = 200007                 # <|end|> instead of <|return|>
    table = set_cell(set_cell(table, "input_ids", 1, ids), "labels", 1, labels)
    rewrite(d, "train/part-00000.parquet", table)
    longest = json.loads((d / "manifest.json").read_text())["tokens"]["all"]["total"]["max"]
    report = run(d, max_seq_len=longest - 1)
    assert {"last_token", "max_seq_len"} <= set(report["failed_checks"])
    assert first_problem(report, "last_token")["row"] == 1
    assert f"> max_seq_len {longest - 1}" in first_problem(report, "max_seq_len")["problem"]


def copy_mix(demo, tmp_path: Path) -> Path:
    return copy_dataset(demo, "mix", tmp_path)


def test_a_duplicated_id_in_the_mix_is_found(demo, tmp_path):
    d = copy_mix(demo, tmp_path)
    table = pq.read_table(d / "train/part-00000.parquet")
    first = table.column("id")[0].as_py()
    rewrite(d, "train/part-00000.parquet", set_cell(table, "id", 1, first))
    report = run(d, inputs_of(demo))
    assert {"unique_ids", "mix_rows"} <= set(report["failed_checks"])
    assert first_problem(report, "unique_ids") == {"problem": first_problem(report, "unique_ids")["problem"],
                                                    "file": str(d / "train/part-00000.parquet"), "row": 1, "id": first}
    problems = [e["problem"] for e in report["checks"]["mix_rows"]["examples"]]
    assert any("more than once" in p for p in problems) and any("missing from the mix" in p for p in problems)


def test_a_mix_row_from_the_wrong_split_is_found(demo, tmp_path):
    d = copy_mix(demo, tmp_path)
    train = pq.read_table(d / "train/part-00000.parquet")
    validation = pq.read_table(d / "validation/part-00000.parquet")
    rewrite(d, "train/part-00000.parquet", pa.concat_tables([train, validation.slice(0, 1)]))
    rewrite(d, "validation/part-00000.parquet", validation.slice(1))
    report = run(d, inputs_of(demo))
    assert "mix_rows" in report["failed_checks"]
    assert any("in the mix's train but from" in e["problem"] and e["id"] == validation.column("id")[0].as_py()
               for e in report["checks"]["mix_rows"]["examples"])


def test_a_mix_that_breaks_the_prefix_bound_is_found(demo, tmp_path):
    d = copy_mix(demo, tmp_path)
    paths = sorted((d / "train").glob("part-*.parquet"))
    train = pa.concat_tables([pq.read_table(p) for p in paths])
    dataset = np.array(train.column("source").combine_chunks().field("dataset").to_pylist())
    order = np.concatenate([np.flatnonzero(dataset == name) for name in ("synth", "code", "math", "chat")])
    grouped = train.take(pa.array(order))          # each input's rows in their order, one input after another
    start = 0
    for path in paths:
        rows = pq.ParquetFile(path).metadata.num_rows
        rewrite(d, f"train/{path.name}", grouped.slice(start, rows))
        start += rows
    report = run(d, inputs_of(demo))
    assert report["failed_checks"] == ["mix_composition"]
    assert "more than one row's worth" in first_problem(report, "mix_composition")["problem"]


def test_the_validator_command_names_the_failed_check(demo, tmp_path):
    d = copy_dataset(demo, "chat", tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["accounting"]["rows_read"] += 3
    (d / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, "-m", "distill_data.validate", str(d), "--report", str(tmp_path / "r.json"),
                           "--sample-rows", "10"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "FAILED: accounting" in done.stderr and "rows read" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["failed_checks"] == ["accounting"]


# --- the inspector ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DATASETS))
def test_the_inspector_shows_rows_of_every_dataset(demo, name, capsys):
    d = dataset_dir(demo, name)
    assert show.main([str(d), "--sample", "2", "--seed", "7", "--split", "validation", "--color", "never"]) == 0
    out = capsys.readouterr().out
    validation_ids = pq.read_table(d / "validation/part-00000.parquet", columns=["id"]).column("id").to_pylist()
    shown = re.findall(r"^(\S+:\S+)   \(validation, validation/part-00000.parquet row (\d+)\)$", out, re.M)
    assert len(shown) == 2 and all(validation_ids[int(row)] == row_id for row_id, row in shown)
    row_id = shown[0][0]
    assert show.main([str(d), "--id", row_id, "--color", "never"]) == 0
    one = capsys.readouterr().out
    table = pq.read_table(d / "validation/part-00000.parquet")
    row = table.slice(validation_ids.index(row_id), 1).to_pylist()[0]
    spans = row["spans"]
    assert (f"spans: assistant_token_start {spans['assistant_token_start']}, analysis_token_count "
            f"{spans['analysis_token_count']}, final_token_count {spans['final_token_count']}") in one
    assert f"tokens: {len(row['input_ids'])} = prompt {spans['assistant_token_start']}" in one
    text = one.split("Legend: ", 1)[1].split("\n", 1)[1]
    assert text.count("⟦") == 1 and text.count("⟪") == 1          # the prompt, then the trained part
    trained = text.split("⟪", 1)[1].split("⟫", 1)[0]
    assert trained.endswith("<|return|>") and "<|start|>user" not in trained
    assert "<|start|>system<|message|>" in text.split("⟦", 1)[1].split("⟧", 1)[0]
    for key, value in row["source"].items():
        if key != "meta_json":
            assert f"  {key}: {value}" in one
    if name == "mix":
        assert "meta_json (the input's own source struct):" in one and "    split_group: " in one
    assert "\x1b[" not in one
    assert show.main([str(d), "--id", row_id, "--color", "always"]) == 0
    assert "\x1b[32m" in capsys.readouterr().out


def test_the_inspector_names_a_missing_id(demo, capsys):
    assert show.main([str(dataset_dir(demo, "code")), "--id", "opencode:nope"]) == 2
    assert "no row with id opencode:nope" in capsys.readouterr().err


# --- the split rule before and after split groups ----------------------------------------------

def test_a_dataset_split_by_id_is_checked_by_the_id_rule(demo, tmp_path):
    """`split_by: id` (the original rule): split and split_group come from the row's own id."""
    out = tmp_path / "code_by_id"
    subprocess.run([sys.executable, str(demo["project"] / "workflow_scripts" / "build_opencode_distill.py"),
                    "--input-dir", str(demo["project"] / "demo/raw/nvidia__OpenCodeInstruct/data"),
                    "--output-dir", str(out), "--target-total-tokens", "60000", "--split-by", "id"],
                   check=True, capture_output=True)
    report = run(out)
    assert report["ok"] and report["settings"]["split_by"] == "id"
    assert report["checks"]["split_rule"]["checked"] == sum(report["rows"].values())
    # the same rows judged by the group rule: some sit on the wrong side
    wrong = run(out, split_by="group")
    assert "split_rule" in wrong["failed_checks"]
    assert "is not blake2b of the prompt" in first_problem(wrong, "split_rule")["problem"]


def test_a_dataset_built_before_split_groups_falls_back_to_the_id_rule(demo, tmp_path):
    """No `source.split_group`, no `params.split_by`: the split is checked by the id, and the
    split-group check says it was skipped."""
    d = copy_dataset(demo, "code", tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    tables = {split: pa.concat_tables([pq.read_table(d / e["path"]) for e in manifest["files"][split]])
              for split in ("train", "validation")}
    rows = pa.concat_tables(tables.values())
    source = rows.column("source").combine_chunks()
    fields = [f for f in source.type if f.name != "split_group"]
    old_source = pa.StructArray.from_arrays([source.field(f.name) for f in fields], fields=fields)
    rows = rows.set_column(rows.schema.get_field_index("source"), "source", old_source)
    by_id = np.array([unit_hash_split(i) for i in rows.column("id").to_pylist()])
    del manifest["params"]["split_by"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    for split, relpath in (("train", "train/part-00000.parquet"), ("validation", "validation/part-00000.parquet")):
        for extra in manifest["files"][split][1:]:
            (d / extra["path"]).unlink()
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["files"][split] = manifest["files"][split][:1]
        (d / "manifest.json").write_text(json.dumps(manifest))
        rewrite(d, relpath, rows.filter(pa.array(by_id == split)))
    report = run(d)
    assert report["settings"]["split_by"] == "id"
    assert report["checks"]["split_rule"]["ok"] and report["checks"]["split_rule"]["checked"] == rows.num_rows
    assert report["checks"]["split_groups"]["skipped"].startswith("no source.split_group field")
    assert not {"labels", "spans", "harmony", "split_rule", "unique_ids"} & set(report["failed_checks"])


def unit_hash_split(row_id: str, seed: int = 1337, train_frac: float = 0.99) -> str:
    """CONTRACT.md's split by id, written out here (independently of both builder and validator)."""
    import hashlib

    value = row_id.split(":", 1)[1]
    u = int.from_bytes(hashlib.blake2b(f"{seed}:split:{value}".encode(), digest_size=8).digest(), "big") / 2**64
    return "validation" if u < 1 - train_frac else "train"


# --- the Harmony round trip on multi-turn chat rows (CONTRACT.md: earlier turns in the prompt) ---

def _multi_turn(tokenizer, turns, analysis: str | None, final: str, effort: str = "high"):
    """input_ids and spans of a conversation rendered by openai-harmony itself."""
    from openai_harmony import Conversation, Message, RenderConversationConfig, Role

    from distill_data.render import harmony_system_content

    messages = [Message.from_role_and_content(Role.SYSTEM, harmony_system_content(effort))]
    for role, text in turns:
        message = Message.from_role_and_content(role, text)
        messages.append(message.with_channel("final") if role == Role.ASSISTANT else message)
    prompt = len(messages)
    if analysis:
        messages.append(Message.from_role_and_content(Role.ASSISTANT, analysis).with_channel("analysis"))
    messages.append(Message.from_role_and_content(Role.ASSISTANT, final).with_channel("final"))
    enc = tokenizer.harmony
    ids = list(enc.render_conversation_for_training(Conversation.from_messages(messages),
                                                    RenderConversationConfig(auto_drop_analysis=False)))
    start = len(enc.render_conversation_for_completion(Conversation.from_messages(messages[:prompt]), Role.ASSISTANT))
    end = enc.encode("<|end|>", allowed_special={"<|end|>"})[0]
    a = ids.index(end, start) + 1 - start if analysis else 0
    return ids, {"assistant_token_start": start, "analysis_token_count": a, "final_token_count": len(ids) - start - a}


def test_the_harmony_check_accepts_earlier_turns_and_names_a_bad_structure(tokenizer):
    from openai_harmony import Role

    from distill_data.validate import HarmonyChecker

    checker = HarmonyChecker(tokenizer, "high")
    thread = [(Role.USER, "Hi, what is 2+2?"), (Role.ASSISTANT, "4."), (Role.USER, "And <|end|> times 3?")]
    for analysis in ("They ask 4*3.", None):
        ids, spans = _multi_turn(tokenizer, thread, analysis, "12.")
        assert checker.check(ids, spans) is None
        wrong = dict(spans, assistant_token_start=spans["assistant_token_start"] - 1,
                     final_token_count=spans["final_token_count"] + 1)
        assert "but the parse gives" in checker.check(ids, wrong)
    ids, spans = _multi_turn(tokenizer, [(Role.USER, "a"), (Role.USER, "b")], None, "c")
    assert "prompt turns are not user (, assistant final, user)*" in checker.check(ids, spans)
    ids, spans = _multi_turn(tokenizer, thread, None, "12.", effort="low")
    assert checker.check(ids, spans) == "system message has no 'Reasoning: high' line"
