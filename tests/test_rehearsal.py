"""The benchmark's rehearsal mode (python -m distill_data.bench rehearsal): the projection's
list schedule on made-up numbers, a tiny rehearsal through the plain Snakemake command, and the
generated block of docs/benchmarks.md against its saved JSON."""

from __future__ import annotations

import json
import re

from distill_data import bench
from distill_data.rehearsal_projection import RULE_DEPS, RuleCost, chain_seconds, expand, list_schedule, project
from distill_data.rehearsal_report import DOCS_JSON, docs_block
from workflow_helpers import copy_project

COSTS = {  # rule: (jobs, cores, seconds per job)
    "synth_scan": (2, 1, 3.0), "synth_plan": (1, 1, 1.0), "synth_encode": (2, 1, 5.0),
    "synth_finalize": (1, 2, 2.0), "code_build": (1, 4, 6.0), "merge_mix": (1, 2, 1.0),
}


def made_up() -> dict[str, RuleCost]:
    return {rule: RuleCost(rule, jobs, cores, seconds) for rule, (jobs, cores, seconds) in COSTS.items()}


def test_list_schedule_on_made_up_numbers():
    """Four cores: the two scans start first (longest path to the end, 12 s), the 4-core code
    build waits until all four are free (after the encodes, t=9) and takes priority over the
    finalize (path 7 s against 3 s), which therefore starts at 15; the merge ends at 18."""
    jobs = expand(made_up())
    makespan = list_schedule(jobs, cores=4)
    spans = {(j.rule, j.index): (j.start, j.end) for j in jobs}
    assert makespan == 18.0
    assert spans == {("synth_scan", 0): (0, 3), ("synth_scan", 1): (0, 3), ("synth_plan", 0): (3, 4),
                     ("synth_encode", 0): (4, 9), ("synth_encode", 1): (4, 9), ("code_build", 0): (9, 15),
                     ("synth_finalize", 0): (15, 17), ("merge_mix", 0): (17, 18)}
    summary = project(made_up(), cores=4)
    assert summary["critical_path"] == ["synth_scan", "synth_plan", "synth_encode", "synth_finalize", "merge_mix"]
    # the chain alone: scans in one wave (3) + plan (1) + encodes in one wave (5) + finalize (2) + merge (1)
    assert summary["synth_chain_s"] == chain_seconds(made_up(), ["synth_scan", "synth_plan", "synth_encode",
                                                                 "synth_finalize", "merge_mix"], 4) == 12.0
    # eight cores: the code build starts at once and the chain alone sets the wall time
    assert project(made_up(), cores=8)["makespan_s"] == 12.0
    # per-shard edges join shard i to shard i, other edges every job
    jobs = expand({"synth_link": RuleCost("synth_link", 3, 1, 1.0), "synth_scan": RuleCost("synth_scan", 3, 1, 1.0),
                   "synth_plan": RuleCost("synth_plan", 1, 1, 1.0)})
    assert [j.deps for j in jobs] == [[], [], [], [0], [1], [2], [3, 4, 5]]


def table_rows(text: str, head: str) -> dict[str, list[str]]:
    block = text.split(head, 1)[1].split("\n\n", 1)[0]
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:])}


def test_tiny_rehearsal_measures_every_rule_and_projects(tmp_path, capsys):
    project_copy = copy_project(tmp_path / "project")
    out = tmp_path / "rehearsal"
    assert bench.main(["rehearsal", "--out", str(out), "--tokens", "1e6", "--jobs", "2",
                       "--project", str(project_copy)]) == 0
    text = capsys.readouterr().out
    assert text == (out / "rehearsal.md").read_text()
    rules = table_rows(text, "| rule | jobs | wall s")
    # every rule of the mix target, one row each (no decontam_index: the rehearsal lists no benchmark)
    assert set(rules) == set(RULE_DEPS) - {"decontam_index"} and "mix_near_duplicates" in rules
    for rule, (jobs, wall, cpu, tokens, _, peak, _) in rules.items():
        assert int(jobs) >= 1, rule
        if rule not in ("synth_link", "stage_tokenizer"):  # a few ms: nothing for Snakemake to sample
            assert float(wall.split(" / ")[0]) > 0 and float(cpu.rstrip("*")) > 0, rule
            assert int(peak.split()[0].replace(",", "")) > 0, rule
    assert int(rules["synth_scan"][0]) == int(rules["synth_encode"][0]) >= 2
    for rule in ("synth_encode", "synth_finalize", "code_build", "math_build", "chat_build", "merge_mix"):
        assert rules[rule][3].endswith("M") and float(rules[rule][3][:-1]) > 0, rule
    data = json.loads((out / "rehearsal.json").read_text())
    assert data["noop_nothing_to_do"] and data["noop_s"] > 0 and data["dryrun_s"] > 0
    assert re.search(r"the same command again: [\d.]+ s \(nothing to be done\); its dry run \(`-n`\): [\d.]+ s", text)
    assert {t["job"].split(" ")[0] for t in data["targets"]} == {"synth_encode", "code_build", "math_build",
                                                                 "chat_build", "merge_mix", "every"}
    path = re.search(r"critical path: ([\w →]+)\.", text).group(1).split(" → ")
    assert path == data["projection"]["critical_path"] and set(path) <= set(RULE_DEPS) and "merge_mix" in path
    assert data["projection"]["makespan_s"] > 0 and "Assumptions:" in text
    # the rehearsal's config: the real parameters, the budgets scaled
    config = (out / "config.yaml").read_text()
    assert "target_total_tokens: 82707" in config and "target_total_tokens: 22556" in config  # 55M, 15M × 1e6 / 665M


def test_docs_block_is_generated_from_the_saved_run(capsys):
    assert bench.main(["rehearsal", "--from-json", str(DOCS_JSON)]) == 0
    assert capsys.readouterr().out == docs_block()
