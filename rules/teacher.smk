# The teacher stage: the teacher's top-k logprobs on the exact token ids of a built dataset (the
# mix, or any builder's), in DistillKit's compressed format, then packed for its prepacked mode.
#   snakemake -j 4 teacher          (docs/teacher.md; teacher.model must be set)
#   <output_root>/teacher/<dataset>/                    parts with the logits, manifest.json, compression_config.yaml
#   <output_root>/handoff/<dataset>/teacher_packed/      packed rows with their logits (parquet)
#   <output_root>/handoff/<dataset>/teacher_packed_disk/ the same as a DatasetDict (DistillKit prepacked: true)
# The plan (a checkpoint) lists the dataset's parts and prints the size estimate; then one
# capture job per part (GPU jobs on SLURM: profiles/slurm), each resumable mid-part.

import glob

TEACHER = config["teacher"]
TEACHER_ROOT = os.path.join(OUT, "teacher")
TEACHER_WORK = os.path.join(WORK, "teacher")
TEACHER_CODE = code_version("teacher/format.py", "teacher/backends.py", "teacher/capture.py", "teacher/cli.py",
                            "handoff/source.py", "writer.py")

wildcard_constraints:
    teacher_split="train|validation",
    teacher_part=r"part-\d+",


def teacher_model():
    if not TEACHER["model"]:
        stop("teacher.model is not set: give the teacher's Hugging Face model folder "
             "(--config teacher='{model: /path/to/teacher}' or in config.yaml)")
    if not os.path.isfile(os.path.join(TEACHER["model"], "config.json")):
        stop(f"config key teacher.model: {TEACHER['model']}: no config.json there (a Hugging Face model folder)")
    return TEACHER["model"]


def teacher_vocab_size():
    if TEACHER["vocab_size"]:
        return TEACHER["vocab_size"]
    with open(os.path.join(teacher_model(), "config.json"), encoding="utf-8") as handle:
        model_config = json.load(handle)
    return model_config.get("vocab_size") or model_config.get("text_config", {}).get("vocab_size")


def teacher_datasets():
    return [os.path.basename(dataset_dir(name)) for name in TEACHER["datasets"]]


def teacher_weights():
    """The teacher's config and weight index (or weights): a changed teacher reruns its captures."""
    model = teacher_model()
    index = sorted(glob.glob(os.path.join(model, "*.index.json")))
    return [os.path.join(model, "config.json")] + (index[:1] or sorted(
        glob.glob(os.path.join(model, "*.safetensors")) + glob.glob(os.path.join(model, "*.bin"))))


TEACHER_MODEL_FLAGS = cli_flags({"backend": TEACHER["backend"], "dtype": TEACHER["dtype"], "top_k": TEACHER["top_k"],
                                 "logprob_dtype": TEACHER["logprob_dtype"], "max_rows": TEACHER["max_rows"],
                                 "vocab_size": TEACHER["vocab_size"]})   # null: the model's, as in the plan


checkpoint teacher_plan:
    """The parts to capture and the pass's size (disk, GPU hours), printed before any capture runs."""
    input:
        unpack(handoff_source),
    output:
        plan=os.path.join(TEACHER_WORK, "{handoff_dataset}", "plan.json"),
    params:
        flags=lambda w: cli_flags({"vocab_size": teacher_vocab_size(), "top_k": TEACHER["top_k"],
                                   "logprob_dtype": TEACHER["logprob_dtype"], "max_rows": TEACHER["max_rows"],
                                   "tokens_per_second": TEACHER["expected_tokens_per_second"]}),
        previous=lambda w: os.path.join(TEACHER_ROOT, w.handoff_dataset, "build_info.json"),
        code=code_version("teacher/plan.py", "teacher/estimate.py", "teacher/format.py"),
    log:
        os.path.join(LOGS, "teacher", "{handoff_dataset}", "plan.log"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        # the estimate goes to the console too (the log keeps it)
        "{PYTHON} -m distill_data.teacher plan --input-dir $(dirname {input.manifest:q}) --output {output.plan:q} "
        "{params.flags} --previous-build-info {params.previous:q} 2>&1 | tee {log:q}"


localrules: teacher_plan, teacher


rule teacher_capture:
    """One part file through the teacher (a GPU job on SLURM); resumes its finished chunks."""
    input:
        unpack(handoff_source),
        plan=os.path.join(TEACHER_WORK, "{handoff_dataset}", "plan.json"),
        weights=lambda w: teacher_weights(),
    output:
        part=os.path.join(TEACHER_ROOT, "{handoff_dataset}", "{teacher_split}", "{teacher_part}.parquet"),
        summary=os.path.join(TEACHER_WORK, "{handoff_dataset}", "parts", "{teacher_split}", "{teacher_part}.json"),
    params:
        model=lambda w: teacher_model(),
        flags=" ".join([TEACHER_MODEL_FLAGS, cli_flags({
            "batch_tokens": TEACHER["batch_tokens"], "chunk_rows": TEACHER["chunk_rows"], "device": TEACHER["device"],
            **({f: TEACHER["vllm"][f] for f in ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len")}
               if TEACHER["backend"] == "vllm" else {})})]),
        out=lambda w: os.path.join(TEACHER_ROOT, w.handoff_dataset),
        work=lambda w: os.path.join(TEACHER_WORK, w.handoff_dataset, "chunks", w.teacher_split, w.teacher_part),
        code=TEACHER_CODE,
    log:
        os.path.join(LOGS, "teacher", "{handoff_dataset}", "{teacher_split}", "{teacher_part}.log"),
    benchmark:
        os.path.join(LOGS, "teacher", "{handoff_dataset}", "{teacher_split}", "{teacher_part}.benchmark.tsv")
    threads: TEACHER["threads"]
    resources:
        mem_mb=TEACHER["mem_mb"],
        runtime=TEACHER["runtime"],
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m distill_data.teacher capture --input-dir $(dirname {input.manifest:q}) "
        "--split {wildcards.teacher_split} --part {wildcards.teacher_part}.parquet "
        "--output-dir {params.out:q} --model {params.model:q} {params.flags} "
        "--work-dir {params.work:q} --summary {output.summary:q} 2> {log:q}"


def teacher_summaries(wildcards):
    """Every part's summary, once the plan (checkpoint) has listed the parts."""
    with open(checkpoints.teacher_plan.get(handoff_dataset=wildcards.handoff_dataset).output.plan) as handle:
        parts = json.load(handle)["parts"]
    return [os.path.join(TEACHER_WORK, wildcards.handoff_dataset, "parts", split, part.replace(".parquet", ".json"))
            for split, names in parts.items() for part in names]


rule teacher_publish:
    """The teacher dataset's manifest (deterministic) and build_info.json (throughput)."""
    input:
        unpack(handoff_source),
        summaries=teacher_summaries,
    output:
        manifest=os.path.join(TEACHER_ROOT, "{handoff_dataset}", "manifest.json"),
        config=os.path.join(TEACHER_ROOT, "{handoff_dataset}", "compression_config.yaml"),
    params:
        model=lambda w: teacher_model(),
        flags=TEACHER_MODEL_FLAGS,
        code=code_version("teacher/publish.py", "teacher/format.py"),
    log:
        os.path.join(LOGS, "teacher", "{handoff_dataset}", "publish.log"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "{PYTHON} -m distill_data.teacher publish --input-dir $(dirname {input.manifest:q}) "
        "--output-dir $(dirname {output.manifest:q}) --model {params.model:q} {params.flags} "
        "{input.summaries:q} 2> {log:q}"


rule check_teacher:
    """Every row's logits against the dataset: aligned, ids identical, finite, <= 0, sorted, mass <= 1."""
    input:
        manifest=os.path.join(TEACHER_ROOT, "{handoff_dataset}", "manifest.json"),
    output:
        report=handoff_check("{handoff_dataset}", "teacher"),
    params:
        code=code_version("teacher/check.py", "teacher/format.py", "handoff/source.py"),
    log:
        os.path.join(LOGS, "teacher", "{handoff_dataset}", "check.log"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PYTHON} -m distill_data.teacher check $(dirname {input.manifest:q}) --report {output.report:q} > {log:q} 2>&1"


rule teacher_packed:
    """The teacher dataset packed (DistillKit's L-1 convention), its entries beside their tokens."""
    input:
        manifest=os.path.join(TEACHER_ROOT, "{handoff_dataset}", "manifest.json"),
        checked=handoff_check("{handoff_dataset}", "teacher"),
    output:
        manifest=handoff_manifest("{handoff_dataset}", "teacher_packed"),
    params:
        flags=cli_flags({"max_seq_len": HANDOFF_SEQ_LEN, "window_tokens": TEACHER["pack_window_tokens"],
                         "rows_per_file": HANDOFF["rows_per_file"]}),
        code=code_version("handoff/packed.py", "handoff/packing.py") + HANDOFF_CODE,
    log:
        os.path.join(LOGS, "handoff", "{handoff_dataset}", "teacher_packed.log"),
    threads: 2
    resources:
        # estimated, not measured: a window's entries (<= 450 bytes per token at k=64) held about three times
        mem_mb=max(2000, TEACHER["pack_window_tokens"] * 3 * 450 // 1_000_000 + 1000),
        runtime=120,
    shell:
        "{PYTHON} {SCRIPTS}/make_handoff.py packed --input-dir $(dirname {input.manifest:q}) "
        "--output-dir $(dirname {output.manifest:q}) {params.flags} --threads {threads} 2> {log:q}"


use rule handoff_packed_disk as teacher_packed_disk with:
    input:
        manifest=handoff_manifest("{handoff_dataset}", "teacher_packed"),
    output:
        manifest=handoff_manifest("{handoff_dataset}", "teacher_packed_disk"),
    log:
        os.path.join(LOGS, "handoff", "{handoff_dataset}", "teacher_packed_disk.log"),
    benchmark:
        os.path.join(LOGS, "handoff", "{handoff_dataset}", "teacher_packed_disk.benchmark.tsv")


rule report_teacher:
    """One report page per dataset: the teacher pass's rows, bytes per token and checks, and its packed forms."""
    input:
        checks=lambda w: [handoff_check(w.handoff_dataset, f) for f in ("teacher", "teacher_packed",
                                                                         "teacher_packed_disk")],
    output:
        page=report(os.path.join(REPORT_DIR, "teacher", "{handoff_dataset}.html"), category="7. Teacher",
                    subcategory="{handoff_dataset}", caption="captions/teacher.rst",
                    labels={"dataset": "{handoff_dataset}", "item": "teacher"}),
    params:
        code=code_version("handoff/report.py"),
    log:
        os.path.join(LOGS, "report", "teacher_{handoff_dataset}.log"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    shell:
        "{PYTHON} -m distill_data.handoff.report {input.checks:q} --out {output.page:q} 2> {log:q}"


def teacher_estimates(wildcards):
    """The `teacher` target's inputs; the size of each pass is printed first (also on a dry run)
    for every dataset already built."""
    from distill_data.teacher.format import default_config
    from distill_data.teacher.plan import make_plan
    for name in TEACHER["datasets"]:
        manifest = os.path.join(dataset_dir(name), "manifest.json")
        if os.path.exists(manifest):
            plan = make_plan(os.path.dirname(manifest),
                             default_config(teacher_vocab_size(), TEACHER["top_k"], TEACHER["logprob_dtype"]),
                             expected_tokens_per_second=TEACHER["expected_tokens_per_second"],
                             max_rows=TEACHER["max_rows"],
                             previous_build_info=os.path.join(TEACHER_ROOT, os.path.basename(dataset_dir(name)),
                                                              "build_info.json"))
            trial = f"; {plan['trial']}" if "trial" in plan else ""
            print(f"Estimate: {plan['estimate_text']}{trial}", file=sys.stderr, flush=True)
    return [handoff_check(d, f) for d in teacher_datasets()
            for f in ("teacher", "teacher_packed", "teacher_packed_disk")] + \
        [os.path.join(REPORT_DIR, "teacher", f"{d}.html") for d in teacher_datasets()]


rule teacher:
    """The teacher pass over every configured dataset, checked, packed and in the report."""
    input:
        teacher_estimates,
