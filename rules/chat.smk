# OpenAssistant/oasst2 -> helpfulness_oasst2_15m: one budgeted job (budget.py); the real
# source runs out before the token budget, and the manifest says so.

import functools

from distill_data.budget import find_input_files
from distill_data.fingerprint import raw_fingerprints
from distill_data.io import SourceError

CHAT = config["chat"]


@functools.cache
def _chat_listing():
    """(files, None) or ([the folder], problem), as for code."""
    try:
        return find_input_files(CHAT["input_dir"], "*.parquet", "config key chat.input_dir", recursive=True), None
    except SourceError as exc:
        return [CHAT["input_dir"]], str(exc)


RAW_PROBLEMS["chat"] = lambda: _chat_listing()[1]


def chat_files(wildcards):
    """The message files (or the missing folder: see RAW_PROBLEMS)."""
    return _chat_listing()[0]


localrules: helpfulness_oasst2_15m


rule chat_build:
    """One example per prompt: its best reviewed reply, with the thread before it (unless
    chat.include_history is false); English target by hash; until the token budget."""
    input:
        files=chat_files,
        vocab=VOCAB_FILE,
        decontam=decontam_index_input,  # [] unless decontam.benchmarks lists some
    output:
        manifest=dataset_manifest("chat"),
    params:
        dataset=CHAT["dataset_name"],
        input_dir=CHAT["input_dir"],
        target=CHAT["target_total_tokens"],
        english_frac=CHAT["english_frac"],
        rank="--require-rank-zero" if CHAT["require_rank_zero"] else "--no-require-rank-zero",
        history="--include-history" if CHAT["include_history"] else "--no-include-history",
        order=CHAT["order"],
        encoding=encoding_flags(),
        decontam=decontam_flags(),
        raw=lambda w: None if raw_problem("chat") else raw_fingerprints(chat_files(w)),  # content, so a replaced file reruns the job
        code=code_version(*RENDER_CODE, "budget.py", "spread.py", *DECONTAM_CODE, "builders/oasst2.py",
                          script_path("build_oasst2_distill.py")),
    log:
        os.path.join(LOGS, "chat", "build.log"),
    benchmark:
        os.path.join(LOGS, "chat", "build.benchmark.tsv")
    threads: THREADS["budgeted"]
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{PYTHON} {SCRIPTS}/build_oasst2_distill.py --input-dir {params.input_dir:q} "
        "--output-dir $(dirname {output.manifest:q}) --dataset-name {params.dataset} "
        "--target-total-tokens {params.target} --english-frac {params.english_frac} {params.rank} {params.history} --order {params.order} "
        "--tokenizer-dir $(dirname {input.vocab:q}) --threads {threads} {params.encoding} {params.decontam} --batch-size {BATCH_SIZE} 2> {log:q}"


rule helpfulness_oasst2_15m:
    input:
        builder_target_input("chat", "helpfulness_oasst2_15m"),
        checked("chat"),  # validated, report items made (rules/validate.smk, report.smk)
