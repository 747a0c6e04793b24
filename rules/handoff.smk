# Handoffs: a built dataset (the mix, or any builder's) in the forms trainers read unchanged,
# each written from the published parquet (never re-tokenized), checked against it, and shown
# in the report.  snakemake -j 4 handoff    (docs/training.md: which trainer takes which form)
#   <output_root>/handoff/<dataset>/disk/          save_to_disk DatasetDict (DistillKit disk_path)
#   <output_root>/handoff/<dataset>/packed/        packed rows, parquet (TRL padding-free)
#   <output_root>/handoff/<dataset>/packed_disk/   the packed rows as a DatasetDict (DistillKit prepacked)
#   <output_root>/handoff/<dataset>/megatron/      IndexedDataset files and --data-path lists

import importlib.util
import re

HANDOFF = config["handoff"]
HANDOFF_ROOT = os.path.join(OUT, "handoff")
HANDOFF_SEQ_LEN = HANDOFF["max_seq_len"] or COMMON["max_seq_len"]
# forms as configured -> the folders they write (packed writes two)
HANDOFF_FOLDERS = {"disk": ["disk"], "packed": ["packed", "packed_disk"], "megatron": ["megatron"]}
# published folder name -> short name (mix, synth, …), for every dataset a handoff can be made of
HANDOFF_NAMES = {os.path.basename(dataset_dir(name)): name for name in (*DATASET_SECTIONS, "mix")}
HANDOFF_CODE = code_version("handoff/source.py", "handoff/manifest.py", "writer.py", "progress.py",
                            script_path("make_handoff.py"), "handoff/cli.py")

wildcard_constraints:
    handoff_dataset="|".join(map(re.escape, HANDOFF_NAMES)),


def handoff_manifest(dataset, folder):
    return os.path.join(HANDOFF_ROOT, dataset, folder, "manifest.json")


def handoff_check(dataset, folder):
    return os.path.join(WORK, "validate", "handoff", dataset, f"{folder}.json")


def handoff_source(wildcards):
    """The published dataset a handoff reads, validated first."""
    name = HANDOFF_NAMES[wildcards.handoff_dataset]
    return {"manifest": intact_manifest("merge" if name == "mix" else name)(wildcards),
            "validated": validation_report(name)}


def handoff_datasets():
    return [os.path.basename(dataset_dir(name)) for name in HANDOFF["datasets"]]


def handoff_folders():
    return [folder for form in HANDOFF["forms"] for folder in HANDOFF_FOLDERS[form]]


def handoff_requirements(wildcards):
    """The `handoff` target's checks; a configured form whose dependency is missing stops here."""
    if "megatron" in HANDOFF["forms"] and importlib.util.find_spec("megatron") is None:
        raise WorkflowError("handoff.forms includes megatron, but megatron-core is not installed: "
                            "pip install -e '.[megatron]' (after torch), or drop megatron from handoff.forms")
    if HANDOFF["tokenizer"] and importlib.util.find_spec("transformers") is None:
        raise WorkflowError("handoff.tokenizer is set, but transformers is not installed: pip install -e '.[train]'")
    wanted = [handoff_check(d, f) for d in handoff_datasets() for f in handoff_folders()]
    wanted += [os.path.join(REPORT_DIR, "handoff", f"{d}.html") for d in handoff_datasets()]
    if HANDOFF["tokenizer"]:
        wanted += [handoff_check(d, "tokenizer") for d in handoff_datasets()]
    return wanted


localrules: handoff


rule handoff:
    """Every configured handoff form of every configured dataset, checked, in the report."""
    input:
        handoff_requirements,


def _handoff_job(form, source_folder=None, flags="", mem_mb=2000, runtime=60):
    """One handoff form's rule (the forms differ only in their command line and resources)."""
    source = handoff_source if source_folder is None else \
        (lambda w: {"manifest": handoff_manifest(w.handoff_dataset, source_folder)})
    source_module = "packed.py" if form == "packed_disk" else f"{form}.py"
    extra = ["handoff/packing.py", "handoff/hf_disk.py"] + (["handoff/disk.py"] if form == "packed_disk" else [])
    subcommand = "disk" if form == "packed_disk" else form
    return dict(source=source, subcommand=subcommand, flags=flags, mem_mb=mem_mb, runtime=runtime,
                code=code_version(f"handoff/{source_module}", *extra) + HANDOFF_CODE)


HANDOFF_JOBS = {
    "disk": _handoff_job("disk"),
    "packed": _handoff_job("packed", flags=cli_flags({"max_seq_len": HANDOFF_SEQ_LEN,
                                                      "window_tokens": HANDOFF["window_tokens"],
                                                      "rows_per_file": HANDOFF["rows_per_file"]}),
                           mem_mb=max(2000, HANDOFF["window_tokens"] * 80 // 1_000_000 + 1000)),   # 1.25 GB measured at 16M
    "packed_disk": _handoff_job("packed_disk", source_folder="packed"),
    "megatron": _handoff_job("megatron", mem_mb=3000, runtime=120),
}

for _folder, _job in HANDOFF_JOBS.items():

    rule:
        name: f"handoff_{_folder}"
        input:
            unpack(_job["source"]),
        output:
            manifest=handoff_manifest("{handoff_dataset}", _folder),
        params:
            subcommand=_job["subcommand"],
            flags=_job["flags"],
            code=_job["code"],
        log:
            os.path.join(LOGS, "handoff", "{handoff_dataset}", f"{_folder}.log"),
        benchmark:
            os.path.join(LOGS, "handoff", "{handoff_dataset}", f"{_folder}.benchmark.tsv")
        threads: 2 if _folder == "packed" else 1
        resources:
            mem_mb=_job["mem_mb"],
            runtime=_job["runtime"],
        shell:
            "{PYTHON} {SCRIPTS}/make_handoff.py {params.subcommand} --input-dir $(dirname {input.manifest:q}) "
            "--output-dir $(dirname {output.manifest:q}) {params.flags}"
            + (" --threads {threads}" if _folder == "packed" else "") + " 2> {log:q}"


rule check_handoff:
    """A handoff form against the dataset it was made from (python -m distill_data.handoff check)."""
    input:
        manifest=handoff_manifest("{handoff_dataset}", "{handoff_folder}"),
    output:
        report=handoff_check("{handoff_dataset}", "{handoff_folder}"),
    wildcard_constraints:
        handoff_folder="disk|packed|packed_disk|megatron|teacher_packed|teacher_packed_disk",
    params:
        code=code_version("handoff/check.py", "handoff/source.py", "handoff/megatron.py", "handoff/packing.py"),
    log:
        os.path.join(LOGS, "handoff", "{handoff_dataset}", "check_{handoff_folder}.log"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    shell:
        "{PYTHON} -m distill_data.handoff check $(dirname {input.manifest:q}) --report {output.report:q} > {log:q} 2>&1"


rule check_tokenizer:
    """The configured HF tokenizer (handoff.tokenizer) against the dataset's token ids."""
    input:
        unpack(handoff_source),
        vocab=VOCAB_FILE,
    output:
        report=handoff_check("{handoff_dataset}", "tokenizer"),
    params:
        tokenizer=HANDOFF["tokenizer"] or "",
        rows=HANDOFF["tokenizer_rows"],
        seed=COMMON["seed"],
        code=code_version("handoff/tokenizer_check.py"),
    log:
        os.path.join(LOGS, "handoff", "{handoff_dataset}", "check_tokenizer.log"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{PYTHON} -m distill_data.handoff.tokenizer_check --tokenizer {params.tokenizer:q} "
        "--dataset $(dirname {input.manifest:q}) --rows {params.rows} --seed {params.seed} "
        "--tokenizer-dir $(dirname {input.vocab:q}) --report {output.report:q} > {log:q} 2>&1"


rule report_handoff:
    """One report page per dataset: each form's rows, tokens, packing and bytes per token, and its checks."""
    input:
        checks=lambda w: [handoff_check(w.handoff_dataset, f) for f in handoff_folders()],
    output:
        page=report(os.path.join(REPORT_DIR, "handoff", "{handoff_dataset}.html"), category="6. Handoffs",
                    subcategory="{handoff_dataset}", caption="captions/handoff.rst",
                    labels={"dataset": "{handoff_dataset}", "item": "handoff"}),
    params:
        code=code_version("handoff/report.py"),
    log:
        os.path.join(LOGS, "report", "handoff_{handoff_dataset}.log"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    shell:
        "{PYTHON} -m distill_data.handoff.report {input.checks:q} --out {output.page:q} 2> {log:q}"
