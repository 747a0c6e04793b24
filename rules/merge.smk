# The four builder datasets -> phase1_mix_8k_665m: one job that writes the interleaved mix and,
# next to it, manifest.json, stats.json and samples.md (all inside the folder it swaps into
# place, so they can never describe another build of the mix).

MERGE = config["merge"]
# The builders merged: each name is its config section and the mix's `source.dataset`.
MERGE_INPUTS = MERGE["inputs"]
MIX_DIR = os.path.join(OUT, MERGE["dataset_name"])
NEAR_DUP = MERGE["near_duplicates"]
NEAR_DUP_DIR = os.path.join(WORK, "near_duplicates", MERGE["dataset_name"])


def mix_input_flags(wildcards, input):
    return " ".join(f"--input {name}={shlex.quote(os.path.dirname(input[name]))}" for name in MERGE_INPUTS)


rule mix_near_duplicates:
    """Near-duplicate prompts within and across the mix's inputs (MinHash + LSH on word
    shingles): the rows to leave out, one kept per cluster by merge.near_duplicates.priority."""
    input:
        **{name: intact_manifest(name) for name in MERGE_INPUTS},
        vocab=VOCAB_FILE,
    output:
        drops=os.path.join(NEAR_DUP_DIR, "drops.parquet"),
        summary=os.path.join(NEAR_DUP_DIR, "summary.json"),
    params:
        inputs=mix_input_flags,
        flags=cli_flags({key: NEAR_DUP[key] for key in ("threshold", "num_perm", "shingle_words", "priority", "seed")}),
        # (merge.py only opens the inputs for it: editing the merge reruns the merge alone)
        code=code_version("neardup.py", "minhash.py", "text.py", "hashing.py", "writer.py", "progress.py",
                          script_path("find_near_duplicates.py")),
    log:
        os.path.join(LOGS, "merge", "mix_near_duplicates.log"),
    benchmark:
        os.path.join(LOGS, "merge", "mix_near_duplicates.benchmark.tsv")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PYTHON} {SCRIPTS}/find_near_duplicates.py {params.inputs} --output {output.drops:q} "
        "--summary {output.summary:q} {params.flags} --tokenizer-dir $(dirname {input.vocab:q}) 2> {log:q}"


localrules: phase1_mix_8k_665m


rule merge_mix:
    """Every row of the four datasets once (less the near-duplicates, when enabled), in the canonical schema, interleaved by a seeded
    schedule weighted by merge.weight_by; stats and decoded samples alongside."""
    input:
        **{name: intact_manifest(name) for name in MERGE_INPUTS},
        **({"drop_list": rules.mix_near_duplicates.output.drops} if NEAR_DUP["enabled"] else {}),
        vocab=VOCAB_FILE,
    output:
        manifest=os.path.join(MIX_DIR, "manifest.json"),
        stats=os.path.join(MIX_DIR, "stats.json"),
        samples=os.path.join(MIX_DIR, "samples.md"),
    params:
        inputs=mix_input_flags,
        drop_list=lambda w, input: f"--drop-list {shlex.quote(input.drop_list)}" if NEAR_DUP["enabled"] else "",
        flags=cli_flags({
            "seed": MERGE["seed"],
            "weight_by": MERGE["weight_by"],
            "rows_per_shard": MERGE["rows_per_file"],
            "samples_per_input": MERGE["samples_per_input"],
        }),
        code=code_version("merge.py", "neardup.py", "mix_report.py", "interleave.py", "writer.py", "dataset.py", "schema.py",
                          "stats.py", "hashing.py", "cli.py", script_path("merge_distill_datasets.py")),
    log:
        os.path.join(LOGS, "merge", "merge_mix.log"),
    benchmark:
        os.path.join(LOGS, "merge", "merge_mix.benchmark.tsv")
    threads: THREADS["merge"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PYTHON} {SCRIPTS}/merge_distill_datasets.py {params.inputs} --output-dir $(dirname {output.manifest:q}) "
        "{params.drop_list} {params.flags} --threads {threads} --tokenizer-dir $(dirname {input.vocab:q}) 2> {log:q}"


rule phase1_mix_8k_665m:
    input:
        mix_input_check,
        rules.merge_mix.output,
        checked("mix"),  # validated against its inputs, report items made
        [checked(name) for name in MERGE_INPUTS],  # and the inputs' own, for the report
