# nvidia/Nemotron-Math-v2 (JSON lines) -> math_nemotron_v2_low_55m: one budgeted job
# (budget.py), the files streamed in the configured order (math.order head) or their blocks of
# lines in a seeded order (spread) until the token budget is reached.

from distill_data.fingerprint import raw_fingerprints

MATH = config["math"]


def _math_problem():
    missing = [p for p in MATH["input_files"] if not os.path.isfile(p)]
    return "config key math.input_files: no such file(s): " + ", ".join(missing) if missing else None


RAW_PROBLEMS["math"] = _math_problem


def math_files(wildcards):
    """The JSON-lines files, as configured (a missing one: see RAW_PROBLEMS)."""
    return list(MATH["input_files"])


localrules: math_nemotron_v2_low_55m


rule math_build:
    """Prompt, reasoning and answer of each line until the token budget; bad lines counted,
    a mostly unreadable file stops the job."""
    input:
        files=math_files,
        vocab=VOCAB_FILE,
        decontam=decontam_index_input,  # [] unless decontam.benchmarks lists some
    output:
        manifest=dataset_manifest("math"),
    params:
        dataset=MATH["dataset_name"],
        target=MATH["target_total_tokens"],
        tools="--drop-tool-rows" if MATH["drop_tool_rows"] else "--no-drop-tool-rows",
        max_bad=MATH["max_bad_line_frac"],
        order=MATH["order"],
        block_bytes=MATH["spread_block_bytes"],
        encoding=encoding_flags(),
        decontam=decontam_flags(),
        raw=lambda w: None if raw_problem("math") else raw_fingerprints(math_files(w)),  # content, so a replaced file reruns the job
        code=code_version(*RENDER_CODE, "budget.py", "spread.py", *DECONTAM_CODE, "builders/nemotron.py",
                          script_path("build_nemotron_math_distill.py")),
    log:
        os.path.join(LOGS, "math", "build.log"),
    benchmark:
        os.path.join(LOGS, "math", "build.benchmark.tsv")
    threads: THREADS["budgeted"]
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "{PYTHON} {SCRIPTS}/build_nemotron_math_distill.py --input-file {input.files:q} "
        "--output-dir $(dirname {output.manifest:q}) --dataset-name {params.dataset} "
        "--target-total-tokens {params.target} {params.tools} --max-bad-line-frac {params.max_bad} "
        "--order {params.order} --spread-block-bytes {params.block_bytes} "
        "--tokenizer-dir $(dirname {input.vocab:q}) --threads {threads} {params.encoding} {params.decontam} --batch-size {BATCH_SIZE} 2> {log:q}"


rule math_nemotron_v2_low_55m:
    input:
        builder_target_input("math", "math_nemotron_v2_low_55m"),
        checked("math"),  # validated, report items made (rules/validate.smk, report.smk)
