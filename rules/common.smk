# Configuration, paths and small helpers shared by every rule file.

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

import distill_data
from distill_data import runlock
from distill_data.config import ConfigError, load_schema, validate_config

try:
    config = validate_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# A run killed with SIGKILL leaves Snakemake's lock behind; the next plain run removes it when
# the killed process is gone (distill_data/runlock.py), instead of stopping with LockException.
if workflow.is_main_process:
    for _message in runlock.claim(".snakemake"):
        print(_message, file=sys.stderr)


onstart:
    runlock.record_executor(".snakemake", workflow.executor_plugin.cli_prefix)  # "local", "slurm", …
    runlock.relabel_resumed_jobs(workflow.dag, workflow.dag_settings)  # "Incomplete output files", not "Forced execution"


PYTHON = sys.executable  # the interpreter running Snakemake has the project installed
SCRIPTS = os.path.join(workflow.basedir, "workflow_scripts")
OUT = config["output_root"]
WORK = config["work_root"] or os.path.join(OUT, "_work")
LOGS = os.path.join(WORK, "logs")
# The renderer's self-check record (distill_data/render_check.py) lives under the work folder,
# never beside the vocabulary; the jobs inherit the variable.
os.environ.setdefault("DISTILL_RENDER_CHECK_DIR", os.path.abspath(os.path.join(WORK, "render_check")))
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
        digest.update(b"\0".join([name.encode(), path.read_bytes(), b""]))
    return digest.hexdigest()[:16]


def script_path(name):
    return os.path.join(SCRIPTS, name)


def cli_flags(options):
    """{'max_seq_len': 8192, 'append_rag_sources': True} -> '--max-seq-len 8192 --append-rag-sources'."""
    words = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
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
    })


# Knobs that cannot change a byte of the output (memory and speed only). They reach the jobs
# through the shell command (as globals, not params), so changing one reruns nothing:
# Snakemake's code trigger compares the unformatted command. tests/test_plain_command.py lists
# them and checks the dry run.
BATCH_SIZE = COMMON["batch_size"]


def dataset_manifest(section):
    return os.path.join(OUT, config[section]["dataset_name"], "manifest.json")


# Config keys holding paths. Relative ones are taken from the working directory (Snakemake's,
# where the command runs or --directory), not from the workflow's folder: run from elsewhere,
# every error names that directory.
PATH_KEYS = ("output_root", "work_root", "tokenizer_dir", "synth.raw_root", "synth.subset_dir", "synth.shard_list",
             "code.input_dir", "math.input_files", "chat.input_dir")


def relative_path_note():
    """'' when run in the workflow's folder or with absolute paths; else which directory the
    configured relative paths were taken from."""
    here = os.path.realpath(os.getcwd())
    if here == os.path.realpath(workflow.basedir):
        return ""
    relative = []
    for key in PATH_KEYS:
        section, _, name = key.rpartition(".")
        value = (config[section] if section else config).get(name)
        for path in value if isinstance(value, list) else [value]:
            if path and not os.path.isabs(path):
                relative.append(f"{key}: {path}")
    if not relative:
        return ""
    return (f"Relative paths in the config ({'; '.join(relative[:3])}{'; …' if len(relative) > 3 else ''}) are "
            f"taken from the working directory {here}, not from the workflow's folder {workflow.basedir}: "
            "run from there, use --directory, or give absolute paths.")


def stop(message):
    """End the run with one line naming the problem (an exception raised in an input function
    reaches the user as InputFunctionException with a traceback), and, when relative paths
    were taken from another directory than the workflow's, which one."""
    note = relative_path_note()
    print(f"Error: {message}" + (f"\n{note}" if note else ""), file=sys.stderr, flush=True)
    raise SystemExit(1)


# --- published datasets: every listed file present, at its listed size ---------------------------
# Snakemake sees only manifest.json (the declared output); a part file deleted or truncated
# behind it would go unnoticed. Every job reading a dataset checks the listing first (stat only:
# the validator and the handoffs compare sha256 when they read) and the run stops, naming the
# file and the command that rebuilds it, unless that rebuild is what was asked for.
BUILD_RULE = {"synth": "synth_finalize", "code": "code_build", "math": "math_build", "chat": "chat_build",
              "merge": "merge_mix"}


def published_damage(manifest_path):
    """Why a built dataset cannot be used as it is, or None (also None when not built yet)."""
    if not os.path.exists(manifest_path):
        return None
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            listing = json.load(handle).get("files") or {}
    except (OSError, ValueError) as exc:
        return f"{manifest_path}: unreadable ({exc})"
    folder = os.path.dirname(manifest_path)
    for entries in listing.values():
        for entry in entries:
            path = os.path.join(folder, entry["path"])
            if not os.path.isfile(path):
                return f"{path} is missing (listed in {manifest_path})"
            size = os.path.getsize(path)
            if size != entry["bytes"]:
                return f"{path} has {size:,} bytes, {manifest_path} lists {entry['bytes']:,}"
    return None


def intact_manifest(section):
    """Input function: the section's manifest, after checking the files it lists."""
    manifest = dataset_manifest(section)
    rule_name = BUILD_RULE[section]

    def check(wildcards):
        settings = workflow.dag_settings
        if settings.forceall or rule_name in (settings.forcerun or ()):
            return manifest
        problem = published_damage(manifest)
        if problem:
            stop(f"{problem}: the dataset is damaged. Rebuild it: snakemake --forcerun {rule_name} -- <target>")
        return manifest
    return check


# --- raw inputs ---------------------------------------------------------------------------------
# Each builder records here, per config section, why its raw input cannot be read ("config key
# code.input_dir: /x: no such folder"), or nothing. A builder's own target (and `all`) stops on
# it with that message, even when the dataset was built before. The mix target merges a built
# dataset whose raw input is gone (a machine that has the datasets but not the sources) and
# says so; its build job then cannot be created (its raw input is missing), so Snakemake keeps
# the dataset as it is.
RAW_PROBLEMS = {}  # section -> function returning the problem or None
_raw_reported = set()


def raw_problem(section):
    check = RAW_PROBLEMS.get(section)
    return check() if check else None


def builder_target_input(section, target):
    """Input function of a builder's target rule: its manifest, or the raw-input error."""
    def raw_checked(wildcards):
        problem = raw_problem(section)
        if problem:
            stop(f"{problem} (needed to build {target})")
        return dataset_manifest(section)
    return raw_checked


def all_raw_inputs(sections):
    """Input function of a target needing several builders' raw inputs: every missing one at
    once, one line each with its config key (not one per run)."""
    def check(wildcards):
        problems = [p for p in (raw_problem(section) for section in sections) if p]
        if len(problems) == 1:
            stop(problems[0])
        if problems:
            stop(f"{len(problems)} raw inputs cannot be read:\n" + "\n".join(f"  {p}" for p in problems))
        return []
    return check


def settings_changed(section, manifest_path):
    """The configured settings that differ from those the built dataset records ('' if none)."""
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            built = json.load(handle).get("params", {})
    except (OSError, ValueError):
        return ""
    wanted = {**{key: COMMON[key] for key in ("max_seq_len", "seed", "train_frac", "split_by", "rows_per_file")},
              "reasoning_effort": COMMON["reasoning_level"], **config[section]}
    return ", ".join(f"{section if key in config[section] else 'common'}.{key}: built with {built[key]!r}, "
                     f"configured {value!r}" for key, value in wanted.items() if key in built and built[key] != value)


def mix_input_check(wildcards):
    """Input function of the mix target: a missing raw input is fine when its dataset exists."""
    for section in MERGE_INPUTS:
        problem = raw_problem(section)
        if not problem:
            continue
        manifest = dataset_manifest(section)
        if not os.path.exists(manifest):
            raise WorkflowError(f"{problem}, and {manifest} has not been built: nothing to merge for {section}")
        changed = settings_changed(section, manifest)
        if changed:
            stop(f"{problem}, and the settings of {section} changed since {manifest} was built ({changed}): "
                 f"the mix cannot use the old dataset for the new settings. Fix the raw input, or restore the settings.")
        if section not in _raw_reported:
            _raw_reported.add(section)
            print(f"Skipped the raw-input check of {section} ({problem}): merging the built dataset "
                  f"{os.path.dirname(manifest)} as it is (it cannot be rebuilt here).", file=sys.stderr)
    return []
