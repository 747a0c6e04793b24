# The Snakemake report's items: for each builder dataset and the mix, the accounting, token
# histograms, decoded samples and the validator's summary (the mix also its composition along
# its length). Every target requires them, so that
#     snakemake --report report.html phase1_mix_8k_665m
# shows all five datasets (snakemake --report only collects outputs of jobs in the target's DAG).

REPORT_DIR = os.path.join(WORK, "report")
REPORT_CODE = code_version("report_items.py", "show.py", "tokenizer.py")
REPORT_ITEMS = {
    # output name: (file, category, caption)
    "accounting": ("accounting.html", "1. Accounting", "captions/accounting.rst"),
    "tokens": ("tokens.png", "2. Token histograms", "captions/tokens.rst"),
    "composition": ("composition.png", "3. Mix composition", "captions/composition.rst"),
    "samples": ("samples.html", "4. Decoded samples", "captions/samples.rst"),
    "validation": ("validation.html", "5. Validation", "captions/validation.rst"),
}


def report_files(name):
    """{item: path} of one dataset's report items (composition: the mix only)."""
    return {item: os.path.join(REPORT_DIR, name, filename) for item, (filename, _, _) in REPORT_ITEMS.items()
            if item != "composition" or name == "mix"}


def checked(name):
    """What a target requires besides the dataset: its validation report and report items."""
    return [validation_report(name), *report_files(name).values()]


def _report_outputs(name):
    label = config["merge" if name == "mix" else name]["dataset_name"]
    return {item: report(path, category=REPORT_ITEMS[item][1], subcategory=label,
                         caption=REPORT_ITEMS[item][2], labels={"dataset": label, "item": item})
            for item, path in report_files(name).items()}


for _name in (*DATASET_SECTIONS, "mix"):

    rule:
        name: f"report_{_name}"
        input:
            manifest=os.path.join(dataset_dir(_name), "manifest.json"),
            validation=validation_report(_name),
            vocab=VOCAB_FILE,
        output:
            **_report_outputs(_name),
        params:
            samples=config["report"]["samples"],
            seed=COMMON["seed"],
            code=REPORT_CODE,
        log:
            os.path.join(LOGS, "report", f"{_name}.log"),
        benchmark:
            os.path.join(LOGS, "report", f"{_name}.benchmark.tsv")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "MPLBACKEND=Agg {PYTHON} -m distill_data.report_items $(dirname {input.manifest:q}) "
            "--validation {input.validation:q} --out-dir $(dirname {output.accounting:q}) "
            "--samples {params.samples} --seed {params.seed} --tokenizer-dir $(dirname {input.vocab:q}) 2> {log:q}"
