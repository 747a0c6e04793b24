# Configuration, paths and small helpers shared by every rule file.

import hashlib
import os
import shlex
import sys
from pathlib import Path

import distill_data
from distill_data.config import ConfigError, load_schema, validate_config

try:
    config = validate_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

PYTHON = sys.executable  # the interpreter running Snakemake has the project installed
SCRIPTS = os.path.join(workflow.basedir, "workflow_scripts")
OUT = config["output_root"]
WORK = config["work_root"] or os.path.join(OUT, "_work")
LOGS = os.path.join(WORK, "logs")
COMMON = config["common"]
THREADS = config["threads"]
PACKAGE_DIR = Path(distill_data.__file__).parent

# Modules every builder's encoding depends on; editing one reruns every encode.
RENDER_CODE = ["tokenizer.py", "render.py", "render_check.py", "encode.py", "dataset.py", "cli.py", "writer.py",
               "schema.py", "stats.py", "hashing.py", "text.py", "io.py"]


def code_version(*files):
    """Fingerprint of source files, passed as a param so that editing them reruns the jobs
    (Snakemake's own code trigger only sees the rule's shell command)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        path = Path(name) if os.path.isabs(name) else PACKAGE_DIR / name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def script_path(name):
    return os.path.join(SCRIPTS, name)


def cli_flags(options):
    """{'max_seq_len': 8192, 'append_rag_sources': True} -> '--max-seq-len 8192 --append-rag-sources'."""
    words = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            words += [flag, *(shlex.quote(str(v)) for v in value)]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def encoding_flags():
    """The flags every builder script shares (output-relevant ones only)."""
    return cli_flags({
        "max_seq_len": COMMON["max_seq_len"],
        "seed": COMMON["seed"],
        "train_frac": COMMON["train_frac"],
        "split_by": COMMON["split_by"],
        "reasoning_level": COMMON["reasoning_level"],
        "rows_per_file": COMMON["rows_per_file"],
        "batch_size": COMMON["batch_size"],
    })


def dataset_manifest(section):
    return os.path.join(OUT, config[section]["dataset_name"], "manifest.json")
