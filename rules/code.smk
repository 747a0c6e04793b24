# nvidia/OpenCodeInstruct -> code_opencodeinstruct_55m: one budgeted job (budget.py), the
# shards read in shuffled order (code.order head) or their row slices in a seeded order (spread)
# until the token budget is reached.

import functools

from distill_data.budget import find_input_files
from distill_data.fingerprint import raw_fingerprints
from distill_data.io import SourceError

CODE = config["code"]


@functools.cache
def _code_listing():
    """(shards, None) or ([the folder], problem): listed once, when a code target needs them."""
    try:
        return find_input_files(CODE["input_dir"], "*.parquet", "config key code.input_dir"), None
    except SourceError as exc:
        return [CODE["input_dir"]], str(exc)


RAW_PROBLEMS["code"] = lambda: _code_listing()[1]


def code_shards(wildcards):
    """The shards (or, when they cannot be listed, the missing folder: see RAW_PROBLEMS)."""
    return _code_listing()[0]


localrules: code_opencodeinstruct_55m


rule code_build:
    """Perfect-score rows (all unit tests passed) until the token budget; writes the
    dataset, its manifest and input_shards_order.txt."""
    input:
        shards=code_shards,
        vocab=VOCAB_FILE,
        decontam=decontam_index_input,  # [] unless decontam.benchmarks lists some
    output:
        manifest=dataset_manifest("code"),
    params:
        dataset=CODE["dataset_name"],
        input_dir=CODE["input_dir"],
        target=CODE["target_total_tokens"],
        shuffle="--shuffle-shards" if CODE["shuffle_shards"] else "--no-shuffle-shards",
        order=CODE["order"],
        block_rows=CODE["spread_block_rows"],
        encoding=encoding_flags(),
        decontam=decontam_flags(),
        raw=lambda w: None if raw_problem("code") else raw_fingerprints(code_shards(w)),  # content, so a replaced file reruns the job
        code=code_version(*RENDER_CODE, "budget.py", "spread.py", *DECONTAM_CODE, "builders/opencode.py",
                          script_path("build_opencode_distill.py")),
    log:
        os.path.join(LOGS, "code", "build.log"),
    benchmark:
        os.path.join(LOGS, "code", "build.benchmark.tsv")
    threads: THREADS["budgeted"]
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "{PYTHON} {SCRIPTS}/build_opencode_distill.py --input-dir {params.input_dir:q} "
        "--output-dir $(dirname {output.manifest:q}) --dataset-name {params.dataset} "
        "--target-total-tokens {params.target} {params.shuffle} --order {params.order} --spread-block-rows {params.block_rows} "
        "--tokenizer-dir $(dirname {input.vocab:q}) --threads {threads} {params.encoding} {params.decontam} --batch-size {BATCH_SIZE} 2> {log:q}"


rule code_opencodeinstruct_55m:
    input:
        builder_target_input("code", "code_opencodeinstruct_55m"),
        checked("code"),  # validated, report items made (rules/validate.smk, report.smk)
