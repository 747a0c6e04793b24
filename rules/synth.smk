# PleIAs/SYNTH -> synth_distill_phase1_high_550m
#   synth_link (per shard) -> synth_scan (per shard) -> synth_plan -> synth_encode (per shard)
#   -> synth_finalize

from distill_data.fingerprint import raw_fingerprint
from distill_data.shardlist import ShardListError, read_shard_list

SYNTH = config["synth"]
SYNTH_WORK = os.path.join(WORK, SYNTH["dataset_name"])
try:
    SYNTH_SHARDS = read_shard_list(SYNTH["shard_list"], SYNTH["raw_root"])  # {stem: absolute target}
except ShardListError as exc:
    stop(f"{exc} (config key synth.shard_list)")
# Checked here, not left to the link jobs: Snakemake silently keeps an existing dataset whose
# inputs can no longer be made, so a mistyped or vanished shard would otherwise go unnoticed.
# A machine without the SYNTH source at all (no raw_root) can still build the other targets, and
# merge a SYNTH dataset built elsewhere (RAW_PROBLEMS, rules/common.smk).
_missing = [target for target in SYNTH_SHARDS.values() if not os.path.exists(target)]
if _missing and os.path.isdir(SYNTH["raw_root"]):
    stop(f"{len(_missing)} shard(s) of {SYNTH['shard_list']} do not exist: " + ", ".join(_missing))
_SYNTH_PROBLEM = None if os.path.isdir(SYNTH["raw_root"]) else f"config key synth.raw_root: {SYNTH['raw_root']}: no such folder"
RAW_PROBLEMS["synth"] = lambda: _SYNTH_PROBLEM
SYNTH_CODE = code_version(*DECONTAM_CODE, "builders/synth.py", "builders/synth_plan.py", "builders/synth_check.py", "text.py", "io.py", "hashing.py", "stats.py", "writer.py",
                          script_path("build_synth_distill.py"))
SYNTH_ENCODE_CODE = code_version(*RENDER_CODE, "builders/synth.py", "builders/synth_plan.py", script_path("build_synth_distill.py"))


def synth_link(stem):
    return os.path.join(SYNTH["subset_dir"], f"{stem}.parquet")


def synth_shard_input(stem):
    """The shard's link, or (raw source missing) the missing raw file itself, so that the job
    cannot be created and a SYNTH dataset built before is kept as it is."""
    return SYNTH_SHARDS[stem] if _SYNTH_PROBLEM else synth_link(stem)


def synth_work(kind, stem="{shard}", suffix=""):
    return os.path.join(SYNTH_WORK, kind, f"{stem}{suffix}")


SYNTH_FLAGS = cli_flags({
    "english_frac": SYNTH["english_frac"],
    "memorization_cap": SYNTH["memorization_cap"],
    "global_keep": SYNTH["global_keep"],
    "no_seed_text": not SYNTH["include_seed_text"],
    "append_rag_sources": SYNTH["append_rag_sources"],
    "no_result_check": not SYNTH["result_check"],
    "shares_by": SYNTH["shares_by"],
})


wildcard_constraints:
    shard=r"[^/]+",


localrules: synth_phase1, synth_link, synth_plan, synth_distill_phase1_high_550m


rule synth_link:
    """One symlink in the subset folder; its target is a param, so editing one line of the
    shard list relinks only that shard."""
    input:
        target=lambda w: SYNTH_SHARDS[w.shard],
    output:
        link=os.path.join(SYNTH["subset_dir"], "{shard}.parquet"),
    params:
        target=lambda w: SYNTH_SHARDS[w.shard],
    log:
        os.path.join(LOGS, "synth", "link", "{shard}.log"),
    benchmark:
        os.path.join(LOGS, "synth", "link", "{shard}.benchmark.tsv")
    shell:
        "ln -sfn {params.target:q} {output.link:q} 2> {log:q}"


rule synth_phase1:
    """The Phase-1 subset: every listed shard linked."""
    input:
        [synth_link(stem) for stem in SYNTH_SHARDS],


rule synth_scan:
    """Quality verdict of every row, reading only the columns the filters need."""
    input:
        shard=lambda w: synth_shard_input(w.shard),
        decontam=decontam_index_input,  # [] unless decontam.benchmarks lists some
    output:
        mask=synth_work("scan", suffix=".mask.parquet"),
        summary=synth_work("scan", suffix=".json"),
    params:
        flags=cli_flags({"no_result_check": not SYNTH["result_check"], "shares_by": SYNTH["shares_by"]}),
        decontam=decontam_flags(),
        code=SYNTH_CODE,
        raw=lambda w: None if _SYNTH_PROBLEM else raw_fingerprint(SYNTH_SHARDS[w.shard]),  # content, so a replaced shard is rescanned
    log:
        os.path.join(LOGS, "synth", "scan", "{shard}.log"),
    benchmark:
        os.path.join(LOGS, "synth", "scan", "{shard}.benchmark.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PYTHON} {SCRIPTS}/build_synth_distill.py --stage scan --shard {input.shard:q} "
        "--scan-mask {output.mask:q} --scan-summary {output.summary:q} --batch-size {BATCH_SIZE} "
        "{params.flags} {params.decontam} 2> {log:q}"


rule synth_plan:
    """Duplicates across all shards (duplicate_content, in shard-list order) and the sampling
    rates (memorization cap, English target, global keep) from all scans."""
    input:
        summaries=[synth_work("scan", stem, ".json") for stem in SYNTH_SHARDS],
        masks=[synth_work("scan", stem, ".mask.parquet") for stem in SYNTH_SHARDS],
    output:
        plan=os.path.join(SYNTH_WORK, "plan.json"),
        duplicates=[synth_work("plan", stem, ".duplicates.json") for stem in SYNTH_SHARDS],
    params:
        shards=list(SYNTH_SHARDS.values()),  # the listed set, so a changed list is never missed
        flags=SYNTH_FLAGS,
        seed=COMMON["seed"],
        code=SYNTH_CODE,
    log:
        os.path.join(LOGS, "synth", "plan.log"),
    benchmark:
        os.path.join(LOGS, "synth", "plan.benchmark.tsv")
    shell:
        "{PYTHON} {SCRIPTS}/build_synth_distill.py --stage plan --scan-summary {input.summaries:q} "
        "--scan-mask {input.masks:q} --duplicates {output.duplicates:q} "
        "--plan {output.plan:q} --seed {params.seed} {params.flags} 2> {log:q}"


rule synth_encode:
    """Filter, sample, render and tokenize one shard."""
    input:
        shard=lambda w: synth_shard_input(w.shard),
        mask=synth_work("scan", suffix=".mask.parquet"),
        plan=rules.synth_plan.output.plan,
        duplicates=synth_work("plan", suffix=".duplicates.json"),
        vocab=VOCAB_FILE,
    output:
        train=synth_work("encoded", suffix=".train.arrow"),
        validation=synth_work("encoded", suffix=".validation.arrow"),
        stats=synth_work("encoded", suffix=".stats.json"),
    params:
        flags=SYNTH_FLAGS,
        encoding=encoding_flags(),
        encoded_dir=lambda w, output: os.path.dirname(output.train),
        code=SYNTH_ENCODE_CODE,
    log:
        os.path.join(LOGS, "synth", "encode", "{shard}.log"),
    benchmark:
        os.path.join(LOGS, "synth", "encode", "{shard}.benchmark.tsv")
    threads: THREADS["encode"]
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{PYTHON} {SCRIPTS}/build_synth_distill.py --stage encode --shard {input.shard:q} "
        "--scan-mask {input.mask:q} --plan {input.plan:q} --duplicates {input.duplicates:q} "
        "--encoded-dir {params.encoded_dir:q} "
        "--shard-stats {output.stats:q} --tokenizer-dir $(dirname {input.vocab:q}) --threads {threads} "
        "{params.flags} {params.encoding} --batch-size {BATCH_SIZE} 2> {log:q}"


rule synth_finalize:
    """Fixed-size part files in shard-list order, and the manifest; assembled aside."""
    input:
        shards=ancient([synth_shard_input(stem) for stem in SYNTH_SHARDS]),  # read for the manifest only
        summaries=[synth_work("scan", stem, ".json") for stem in SYNTH_SHARDS],
        stats=[synth_work("encoded", stem, ".stats.json") for stem in SYNTH_SHARDS],
        encoded=[synth_work("encoded", stem, f".{split}.arrow") for stem in SYNTH_SHARDS for split in ("train", "validation")],
        plan=rules.synth_plan.output.plan,
        vocab=VOCAB_FILE,
    output:
        manifest=dataset_manifest("synth"),
    params:
        flags=SYNTH_FLAGS,
        encoding=encoding_flags(),
        dataset=SYNTH["dataset_name"],
        encoded_dir=lambda w, input: os.path.dirname(input.encoded[0]),
        code=SYNTH_ENCODE_CODE,
    log:
        os.path.join(LOGS, "synth", "finalize.log"),
    benchmark:
        os.path.join(LOGS, "synth", "finalize.benchmark.tsv")
    threads: 2  # part files are compressed on both
    resources:
        mem_mb=2000,
        runtime=120,
    shell:
        "{PYTHON} {SCRIPTS}/build_synth_distill.py --stage finalize --dataset-name {params.dataset} "
        "--output-dir $(dirname {output.manifest:q}) --shard {input.shards:q} --scan-summary {input.summaries:q} "
        "--shard-stats {input.stats:q} --plan {input.plan:q} --encoded-dir {params.encoded_dir:q} "
        "--tokenizer-dir $(dirname {input.vocab:q}) --threads {threads} {params.flags} {params.encoding} "
        "--batch-size {BATCH_SIZE} 2> {log:q}"


rule synth_distill_phase1_high_550m:
    input:
        builder_target_input("synth", "synth_distill_phase1_high_550m"),
        checked("synth"),  # validated, report items made (rules/validate.smk, report.smk)
