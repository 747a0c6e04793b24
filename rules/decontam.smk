# Benchmark decontamination (docs/decontamination.md): decontam_index hashes the configured
# benchmark files once; each builder (SYNTH's scan, code, math, chat) then drops the rows
# sharing a word n-gram with one, as `benchmark_<name>`. No benchmarks configured = no index
# job, no flag, every dataset as without this stage.

from distill_data.decontam.humaneval import DecontamError, expand
from distill_data.fingerprint import raw_fingerprints

DECONTAM = config["decontam"]
try:
    DECONTAM_BENCHMARKS = [expand(entry) for entry in DECONTAM["benchmarks"]]  # package entries resolved
except DecontamError as exc:
    raise WorkflowError(f"config key decontam.benchmarks: {exc}") from None
DECONTAM_INDEX = os.path.join(WORK, "decontam", "index.parquet")
# The modules a builder's benchmark check runs (a builder's code fingerprint includes them).
DECONTAM_CODE = ["decontam/__init__.py", "decontam/ngrams.py", "decontam/index.py", "decontam/match.py",
                 "decontam/humaneval.py"]


def decontam_index_input(wildcards):
    """Input function of the builders: the index, or nothing when no benchmark is configured."""
    return DECONTAM_INDEX if DECONTAM_BENCHMARKS else []


def decontam_flags():
    """The builders' flags ('' when off, so that their command is as without this stage)."""
    if not DECONTAM_BENCHMARKS:
        return ""
    return cli_flags({"decontam_index": DECONTAM_INDEX, "decontam_compare": DECONTAM["compare"],
                      "decontam_samples": DECONTAM["samples"]})


rule decontam_index:
    """The n-gram hashes of every configured benchmark text (sorted, with the benchmark of each),
    built once for every builder, and a summary (rows, texts, n-grams per benchmark)."""
    input:
        files=[path for entry in DECONTAM_BENCHMARKS for path in entry["files"]],
    output:
        index=DECONTAM_INDEX,
        summary=os.path.join(WORK, "decontam", "index.json"),
    params:
        benchmarks=json.dumps(DECONTAM["benchmarks"]),  # as configured: the job finds a package's file itself
        ngram=DECONTAM["ngram"],
        raw=lambda w, input: raw_fingerprints(list(input.files)),  # content, so a replaced file rebuilds the index
        code=code_version(*DECONTAM_CODE, "writer.py", script_path("build_decontam_index.py")),
    log:
        os.path.join(LOGS, "decontam", "index.log"),
    benchmark:
        os.path.join(LOGS, "decontam", "index.benchmark.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PYTHON} {SCRIPTS}/build_decontam_index.py --benchmarks {params.benchmarks:q} --ngram {params.ngram} "
        "--index {output.index:q} --summary {output.summary:q} 2> {log:q}"
