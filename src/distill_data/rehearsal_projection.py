"""The rehearsal's projection to the real size: per-rule CPU seconds scaled by tokens, the real
job counts and threads, and a greedy list schedule of the rule graph on one node.

Pure arithmetic on the measured per-rule numbers (`distill_data.rehearsal` measures them), so
that it is unit-tested without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SYNTH_SHARDS = 54
# Upstream rules of each rule of the mix target (the rules/*.smk graph). A rule in PER_SHARD
# runs once per SYNTH shard; an edge between two per-shard rules joins shard i to shard i.
RULE_DEPS = {
    "stage_tokenizer": [],
    "decontam_index": [],   # only with decontam.benchmarks; the scans and builds then wait for it
    "synth_link": [],
    "synth_scan": ["synth_link", "decontam_index"],
    "synth_plan": ["synth_scan"],
    "synth_encode": ["synth_plan", "stage_tokenizer"],
    "synth_finalize": ["synth_encode", "stage_tokenizer"],
    "code_build": ["stage_tokenizer", "decontam_index"],
    "math_build": ["stage_tokenizer", "decontam_index"],
    "chat_build": ["stage_tokenizer", "decontam_index"],
    "mix_near_duplicates": ["synth_finalize", "code_build", "math_build", "chat_build"],
    "merge_mix": ["mix_near_duplicates", "synth_finalize", "code_build", "math_build", "chat_build"],
    **{f"validate_{n}": [b] for n, b in (("synth", "synth_finalize"), ("code", "code_build"),
                                          ("math", "math_build"), ("chat", "chat_build"))},
    "validate_mix": ["merge_mix", "synth_finalize", "code_build", "math_build", "chat_build"],
    **{f"report_{n}": [f"validate_{n}"] for n in ("synth", "code", "math", "chat", "mix")},
}
PER_SHARD = {"synth_link", "synth_scan", "synth_encode"}
# The chain the issue names, and the builders that run alongside it.
SYNTH_CHAIN = ("synth_scan", "synth_plan", "synth_encode", "synth_finalize", "merge_mix")
BUDGETED = ("code_build", "math_build", "chat_build")


@dataclass
class RuleCost:
    """One rule at the real size: its jobs, the cores each reserves, seconds per job."""
    rule: str
    jobs: int
    cores: int
    seconds: float  # wall seconds of one job


@dataclass
class Job:
    rule: str
    index: int
    seconds: float
    cores: int
    deps: list = field(default_factory=list)  # indices into the job list
    start: float = 0.0
    end: float = 0.0


def expand(costs: dict[str, RuleCost]) -> list[Job]:
    """The jobs of the rules present in `costs`, with their dependencies (rules absent from
    `costs` are left out, and so are edges to them)."""
    jobs: list[Job] = []
    ids: dict[str, list[int]] = {}
    for rule in RULE_DEPS:
        if rule not in costs:
            continue
        cost = costs[rule]
        ids[rule] = []
        for i in range(cost.jobs):
            deps = []
            for up in RULE_DEPS[rule]:
                if up not in ids:
                    continue
                if rule in PER_SHARD and up in PER_SHARD and len(ids[up]) == cost.jobs:
                    deps.append(ids[up][i])
                else:
                    deps += ids[up]
            ids[rule].append(len(jobs))
            jobs.append(Job(rule, i, cost.seconds, cost.cores, deps))
    return jobs


def bottom_levels(jobs: list[Job]) -> list[float]:
    """Each job's longest path to the end of the graph, its own time included (jobs are in
    topological order)."""
    down = [job.seconds for job in jobs]
    for j in range(len(jobs) - 1, -1, -1):
        for d in jobs[j].deps:
            down[d] = max(down[d], jobs[d].seconds + down[j])
    return down


def list_schedule(jobs: list[Job], cores: int) -> float:
    """Greedy list scheduling on `cores`: whenever cores free up, start the ready jobs with the
    longest path to the end first (a job that does not fit lets a smaller one start). Sets each
    job's start and end; returns the makespan."""
    priority = bottom_levels(jobs)
    waiting = {j for j in range(len(jobs))}
    running: list[int] = []
    free, now = cores, 0.0
    done: set[int] = set()
    while waiting or running:
        ready = sorted((j for j in waiting if all(d in done for d in jobs[j].deps)),
                       key=lambda j: (-priority[j], j))
        for j in ready:
            need = min(jobs[j].cores, cores)
            if need <= free:
                free -= need
                waiting.discard(j)
                running.append(j)
                jobs[j].start, jobs[j].end = now, now + jobs[j].seconds
        if not running:
            raise ValueError("the job graph has a cycle or a job needs more cores than the node has")
        now = min(jobs[j].end for j in running)
        for j in [j for j in running if jobs[j].end <= now]:
            running.remove(j)
            done.add(j)
            free += min(jobs[j].cores, cores)
    return max((job.end for job in jobs), default=0.0)


def critical_path(jobs: list[Job]) -> list[str]:
    """The rules along the chain that ends last: from the last job back through the dependency
    that finished last (runs of the same rule collapsed)."""
    if not jobs:
        return []
    j = max(range(len(jobs)), key=lambda k: (jobs[k].end, k))
    chain = [jobs[j].rule]
    while jobs[j].deps:
        j = max(jobs[j].deps, key=lambda k: (jobs[k].end, k))
        if jobs[j].rule != chain[-1]:
            chain.append(jobs[j].rule)
    return chain[::-1]


def chain_seconds(costs: dict[str, RuleCost], rules, cores: int) -> float:
    """Seconds of a chain of rules if each ran alone on the node: a rule's jobs in waves of as
    many as fit."""
    total = 0.0
    for rule in rules:
        if rule in costs:
            cost = costs[rule]
            per_wave = max(1, cores // max(1, min(cost.cores, cores)))
            total += -(-cost.jobs // per_wave) * cost.seconds
    return total


def project(costs: dict[str, RuleCost], cores: int) -> dict:
    """The schedule's summary: makespan, the critical path, per-rule start and end, and the
    SYNTH chain against the longest budgeted builder."""
    jobs = expand(costs)
    makespan = list_schedule(jobs, cores)
    spans = {}
    for job in jobs:
        start, end = spans.get(job.rule, (job.start, job.end))
        spans[job.rule] = (min(start, job.start), max(end, job.end))
    return {
        "cores": cores,
        "makespan_s": makespan,
        "critical_path": critical_path(jobs),
        "rule_spans": {rule: {"start_s": s, "end_s": e} for rule, (s, e) in spans.items()},
        "synth_chain_s": chain_seconds(costs, SYNTH_CHAIN, cores),
        "budgeted_s": {rule: costs[rule].seconds for rule in BUDGETED if rule in costs},
    }
