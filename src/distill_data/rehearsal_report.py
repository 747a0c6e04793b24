"""The rehearsal's tables: the issue's targets, the projection's inputs, and the markdown that
`python -m distill_data.bench rehearsal` prints and writes into docs/benchmarks.md (between
the rehearsal markers, from docs/rehearsal.json, so that the figures are generated, not typed).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .rehearsal_projection import PER_SHARD, RULE_DEPS, SYNTH_SHARDS, RuleCost, project

PROJECT = Path(__file__).resolve().parents[2]
DOCS = PROJECT / "docs" / "benchmarks.md"
DOCS_JSON = PROJECT / "docs" / "rehearsal.json"
BEGIN, END = "<!-- rehearsal:begin -->", "<!-- rehearsal:end -->"
TARGET = "phase1_mix_8k_665m"
REAL_MIX = 665e6
# Each source's real share: SYNTH's planned yield, the budgets of code and math, chat's cap.
REAL_TOKENS = {"synth": 550e6, "code": 55e6, "math": 55e6, "chat": 15e6}
REAL_TOKENS["mix"] = sum(REAL_TOKENS.values())
PEAK_LIMIT_MB = 1.5e9 / 2**20   # 1.5 GB in MiB (Snakemake's max_rss unit)
RATIO_TARGETS = {"synth": ("synth_encode", 0.70), "code": ("code_build", 0.60), "math": ("math_build", 0.60),
                 "chat": ("chat_build", 0.60)}
MERGE_TARGET = 50e6
REAL_SHARD_ROWS = 155_000          # rows of a real Phase-1 shard
ROW_SCALED = ("synth_scan", "synth_plan")   # their work grows with the rows of the shards


def scaled_by(rule: str) -> str | None:
    """The dataset whose tokens a rule's work grows with (None: a fixed cost)."""
    if rule in ("stage_tokenizer", "synth_link", "decontam_index"):  # the index: the benchmarks' size
        return None
    if rule.startswith("synth_"):
        return "synth"
    if rule in ("merge_mix", "mix_near_duplicates"):
        return "mix"
    head, _, tail = rule.partition("_")
    return head if tail == "build" else tail


def real_threads(rule: str, threads: dict) -> int:
    """The threads a rule's job has in config.yaml (synth_finalize's 2 are fixed in rules/synth.smk)."""
    return {"synth_encode": threads["encode"], "synth_finalize": 2, "code_build": threads["budgeted"],
            "math_build": threads["budgeted"], "chat_build": threads["budgeted"], "merge_mix": threads["merge"]}.get(rule, 1)


def targets(data: dict) -> list[dict]:
    rules = {r["rule"]: r for r in data["rules"]}
    rows = []
    for name, (rule, goal) in RATIO_TARGETS.items():
        if data["raw_encode"] and rule in rules and rules[rule]["cpu"] > 0:
            ratio = data["raw_encode"][name]["raw_cpu"] / rules[rule]["cpu"]
            rows.append({"job": rule, "what": "raw encode_ordinary CPU s / job CPU s", "measured": ratio,
                         "target": goal, "met": ratio >= goal})
    if "merge_mix" in rules:
        merge = rules["merge_mix"]
        speed = merge["tokens"] / merge["wall_sum"]
        rows.append({"job": "merge_mix", "what": "tokens/s (wall)", "measured": speed, "target": MERGE_TARGET,
                     "met": speed >= MERGE_TARGET})
    heaviest = max(data["rules"], key=lambda r: r["peak_mb"])
    rows.append({"job": f"every job (highest: {heaviest['rule']})", "what": "peak RSS MiB",
                 "measured": heaviest["peak_mb"], "target": PEAK_LIMIT_MB, "met": heaviest["peak_mb"] <= PEAK_LIMIT_MB})
    return rows


def project_costs(data: dict, node_cores: int, threads: dict | None = None) -> dict:
    """Per rule at the real size, then the schedule (rehearsal_projection.project)."""
    threads = threads or yaml.safe_load((PROJECT / "config.yaml").read_text())["threads"]
    costs, rows = {}, {}
    for r in data["rules"]:
        rule = r["rule"]
        dataset = scaled_by(rule)
        factor = REAL_TOKENS[dataset] / data["dataset_tokens"][dataset] if dataset else 1.0
        if rule in ROW_SCALED:  # work per row read, not per token written
            factor = SYNTH_SHARDS * REAL_SHARD_ROWS / (data["sizes"]["synth_shards"] * data["sizes"]["synth_rows_per_shard"])
        jobs = SYNTH_SHARDS if rule in PER_SHARD else 1
        cores = min(real_threads(rule, threads), node_cores)
        if r["cpu"] > 0:
            parallel = min(max(r["cpu"] / r["wall_sum"], 1.0), cores)
            seconds = r["cpu"] * factor / jobs / parallel
        else:
            parallel, seconds = 1.0, r["wall_sum"] * factor / jobs
        costs[rule] = RuleCost(rule, jobs, cores, seconds)
        rows[rule] = {"jobs": jobs, "threads": cores, "factor": factor, "cpu": r["cpu"] * factor,
                      "parallel": parallel, "seconds_per_job": seconds}
    schedule = project(costs, node_cores)
    for rule, span in schedule.pop("rule_spans").items():
        rows[rule].update(span)
    factor = REAL_TOKENS["mix"] / data["dataset_tokens"]["mix"]
    disk = {k: v * factor for k, v in data["disk"].items()}
    return {**schedule, "rules": rows, "disk": disk, "disk_factor": factor}


# --- markdown -------------------------------------------------------------------------------------

def _order(rules: list[str]) -> list[str]:
    known = list(RULE_DEPS)
    return sorted(rules, key=lambda r: (known.index(r) if r in known else len(known), r))


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def _tokens(n) -> str:
    return f"{n / 1e6:.2f}M" if n else ""


def rule_table(data: dict) -> list[str]:
    lines = ["| rule | jobs | wall s (sum / max) | CPU s | tokens | tokens/s/core | peak RSS | output bytes |",
             "|---|---|---|---|---|---|---|---|"]
    rules = {r["rule"]: r for r in data["rules"]}
    for name in _order(list(rules)):
        r = rules[name]
        mark = "*" if r["cpu"] != r["cpu_sampled"] else ""
        tps = f"{r['tokens'] / r['cpu'] / 1e6:.2f}M" if r["tokens"] and r["cpu"] else ""
        lines.append(f"| {name} | {r['jobs']} | {r['wall_sum']:.1f} / {r['wall_max']:.1f} | {r['cpu']:.1f}{mark} | "
                     f"{_tokens(r['tokens'])} | {tps} | {r['peak_mb']:,.0f} MiB | {_mb(r['disk_bytes'])} |")
    return lines


def target_table(data: dict) -> list[str]:
    lines = ["| job | measure | measured | target | |", "|---|---|---|---|---|"]
    for t in data["targets"]:
        if t["what"].startswith("tokens/s"):
            measured, goal = f"{t['measured'] / 1e6:.1f}M", f"≥ {t['target'] / 1e6:.0f}M"
        elif t["what"].startswith("peak"):
            measured, goal = f"{t['measured']:,.0f}", f"≤ {t['target']:,.0f}"
        else:
            measured, goal = f"{t['measured']:.2f}", f"≥ {t['target']:.2f}"
        gap = "met" if t["met"] else f"gap: {100 * (1 - min(t['measured'], t['target']) / max(t['measured'], t['target'])):.0f}% short"
        lines.append(f"| {t['job']} | {t['what']} | {measured} | {goal} | {gap} |")
    return lines


def projection_table(data: dict) -> list[str]:
    p = data["projection"]
    lines = ["| rule | jobs | threads | CPU s (scaled) | × scale | s per job | start s | end s |",
             "|---|---|---|---|---|---|---|---|"]
    for name in _order(list(p["rules"])):
        r = p["rules"][name]
        lines.append(f"| {name} | {r['jobs']} | {r['threads']} | {r['cpu']:,.0f} | {r['factor']:.1f} | "
                     f"{r['seconds_per_job']:,.1f} | {r['start_s']:,.0f} | {r['end_s']:,.0f} |")
    return lines


def assumptions(data: dict) -> list[str]:
    p = data["projection"]
    rows = data["sizes"]["synth_shards"] * data["sizes"]["synth_rows_per_shard"]
    per_shard = data["dataset_tokens"]["synth"] / rows * REAL_SHARD_ROWS
    return [
        "CPU seconds grow linearly with tokens: each rule's measured CPU s × (real tokens ÷ rehearsal tokens) of the "
        "dataset it builds or reads (SYNTH 550M, code 55M, math 55M, chat 15M, mix 675M, the sum; stage_tokenizer "
        "and synth_link are fixed costs); synth_scan and synth_plan grow with the rows instead (54 real shards of "
        f"{REAL_SHARD_ROWS:,} rows against {rows:,} here). Fixed per-job costs (start, vocabulary) are scaled too.",
        f"The generated SYNTH rows give {per_shard / 1e6:.1f}M tokens per {REAL_SHARD_ROWS:,}-row shard under the "
        f"Phase-1 plan, the real 550M over 54 shards {550 / 54:.1f}M: scaled by tokens, the reading part of "
        f"synth_encode and the raw bytes are overestimated by up to {550e6 / 54 / per_shard:.1f}×.",
        f"Real job counts: {SYNTH_SHARDS} jobs each for synth_link, synth_scan and synth_encode, one for every other "
        "rule; threads as config.yaml (synth_finalize 2, as in rules/synth.smk).",
        "A job's wall time is its CPU s ÷ the parallelism it showed in the rehearsal (CPU s ÷ wall s, between 1 and "
        "its threads): more threads than the rehearsal's cores are not assumed to help.",
        f"Greedy list scheduling on {p['cores']} cores, each job reserving its threads, the job with the longest "
        "path to the end first; Snakemake's own start-up, DAG building and file checks are not included "
        "(see the dry-run time).",
        "Peak disk is the sum of raw, work and published bytes scaled by the mix's tokens (nothing is deleted "
        "during a run); the real code and math sources are larger than the part the budget reads.",
        "Memory is projected as measured: a SYNTH shard here has a real shard's rows; the budgeted builders "
        "hold one batch (chat: the thread index of its source, which is larger in reality).",
    ]


def render(data: dict) -> str:
    s = data["sizes"]
    b = s["budgets"]
    p = data["projection"]
    d = data["dataset_tokens"]
    lines = [
        f"Rehearsal of {d['mix'] / 1e6:.1f}M tokens ({s['fraction']:.3f} of the real sizes): SYNTH "
        f"{s['synth_shards']} shards × {s['synth_rows_per_shard']:,} rows → {_tokens(d['synth'])}, budgets code "
        f"{_tokens(b['code'])} → {_tokens(d['code'])}, math {_tokens(b['math'])} → {_tokens(d['math'])}, chat "
        f"{_tokens(b['chat'])} → {_tokens(d['chat'])}; `{data['command']}` from raw on {data['cpus']} CPUs, "
        f"load average {data['load_average'][0]} before and {data['load_average'][1]} after (a machine shared "
        "with other work: wall times are pessimistic, CPU times less so).",
        "",
        *rule_table(data),
        "",
        "Snakemake samples a job every 0.5 s for its first ~15 s, then every 30 s: a longer job's peak RSS can "
        "fall between samples, and its CPU time (marked \\*) is scaled from the last sample to the job's wall time.",
        "",
        f"Whole run from raw: **{data['run_s']:.0f} s**; the same command again: {data['noop_s']:.1f} s"
        f"{' (nothing to be done)' if data['noop_nothing_to_do'] else ' (IT RAN JOBS)'}; its dry run (`-n`): "
        f"{data['dryrun_s']:.1f} s. Work folder {_mb(data['disk']['work'])}, published {_mb(data['disk']['published'])}, "
        f"raw {_mb(data['disk']['raw'])}.",
        "",
    ]
    if data["targets"]:
        lines += ["Targets of issue #19 (raw encode: tiktoken `encode_ordinary`, one thread, on the very texts the "
                  "job wrote, fastest of three passes):", "", *target_table(data), ""]
    lines += [
        f"Projection to the real size on a {p['cores']}-core node:", "", *projection_table(data), "",
        f"Estimated wall time **{p['makespan_s'] / 60:.1f} min**; critical path: {' → '.join(p['critical_path'])}. "
        f"The SYNTH chain (scan → plan → encode → finalize → merge) alone takes {p['synth_chain_s'] / 60:.1f} min; "
        "the budgeted builders alongside it: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in p["budgeted_s"].items())
        + f". Peak disk {_mb(sum(p['disk'].values()))} (raw {_mb(p['disk']['raw'])}, work {_mb(p['disk']['work'])}, "
        f"published {_mb(p['disk']['published'])}).",
        "",
        "Assumptions:",
        "",
        *(f"- {a}" for a in assumptions(data)),
    ]
    return "\n".join(lines) + "\n"


def update_docs(data: dict, docs: Path = DOCS) -> None:
    text = docs.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs}: no {BEGIN} … {END} block to rewrite")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(f"{head}{BEGIN}\n{render(data)}{END}{tail}")


def docs_block(docs: Path = DOCS) -> str:
    """The generated block as docs/benchmarks.md holds it."""
    return docs.read_text().split(BEGIN, 1)[1].split(END, 1)[0][1:]


def saved() -> dict:
    return json.loads(DOCS_JSON.read_text())
