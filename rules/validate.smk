# The independent validator (python -m distill_data.validate): one job per builder dataset and one
# for the mix, each required by its target. It reads only the published files and the rules of
# CONTRACT.md, and writes a small JSON report; a failed check fails the job (the log names the
# check, file, row and id).

VALIDATE = config["validate"]
# Short names: the four builder sections and the mix.
DATASET_SECTIONS = ("synth", "code", "math", "chat")
VALIDATE_CODE = code_version("validate.py", "progress.py", "tokenizer.py")


def dataset_dir(name):
    """Published folder of a builder section or of the mix ("mix")."""
    section = "merge" if name == "mix" else name
    return os.path.join(OUT, config[section]["dataset_name"])


def validation_report(name):
    return os.path.join(WORK, "validate", f"{name}.json")


def validate_flags(seed=None):
    """What the validator checks a dataset against: the configured values (the mix: its own
    merge.seed, which is the seed its manifest records)."""
    return cli_flags({
        "max_seq_len": COMMON["max_seq_len"],
        "seed": COMMON["seed"] if seed is None else seed,
        "train_frac": COMMON["train_frac"],
        "reasoning_level": COMMON["reasoning_level"],
        "sample_rows": VALIDATE["sample_rows"],
    })


for _name in DATASET_SECTIONS:

    rule:
        name: f"validate_{_name}"
        input:
            manifest=intact_manifest(_name),
            vocab=VOCAB_FILE,
        output:
            report=validation_report(_name),
        params:
            flags=validate_flags() + f" --split-by {COMMON['split_by']}",
            code=VALIDATE_CODE,
        log:
            os.path.join(LOGS, "validate", f"{_name}.log"),
        benchmark:
            os.path.join(LOGS, "validate", f"{_name}.benchmark.tsv")
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
        shell:
            "{PYTHON} -m distill_data.validate $(dirname {input.manifest:q}) --report {output.report:q} "
            "{params.flags} --tokenizer-dir $(dirname {input.vocab:q}) 2> {log:q}"


rule validate_mix:
    """The mix against its inputs: every input row once, train only from train, the prefix
    composition bound; and every per-dataset check."""
    input:
        manifest=intact_manifest("merge"),
        inputs=[dataset_manifest(name) for name in config["merge"]["inputs"]],
        vocab=VOCAB_FILE,
    output:
        report=validation_report("mix"),
    params:
        inputs=" ".join(f"--input {name}={shlex.quote(dataset_dir(name))}" for name in config["merge"]["inputs"]),
        flags=validate_flags(seed=config["merge"]["seed"]),
        code=VALIDATE_CODE,
    log:
        os.path.join(LOGS, "validate", "mix.log"),
    benchmark:
        os.path.join(LOGS, "validate", "mix.benchmark.tsv")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "{PYTHON} -m distill_data.validate $(dirname {input.manifest:q}) {params.inputs} --report {output.report:q} "
        "{params.flags} --tokenizer-dir $(dirname {input.vocab:q}) 2> {log:q}"
