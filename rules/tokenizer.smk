# The Harmony vocabulary every encode job reads, judged by its content, not by where it lives.
# It comes from config `tokenizer_dir`, else $TIKTOKEN_ENCODINGS_BASE, else one download; the
# local rule `stage_tokenizer` puts a verified copy at one fixed path under work_root, and the
# jobs read that copy. Moving or re-pointing an identical file therefore changes nothing (same
# path for the jobs, same sha256), while a file with other content changes the rule's `sha256`
# param, so the copy is redone and every encode job that reads it reruns. The source folder
# reaches the rule through a global, not a param, so its path is not a rerun trigger.

from distill_data.tokenizer import VOCAB_FILENAME, VOCAB_SHA256, sha256_file

if config["tokenizer_dir"]:
    VOCAB_SOURCE, _vocab_key = config["tokenizer_dir"], "config key tokenizer_dir"
else:
    VOCAB_SOURCE, _vocab_key = os.environ.get("TIKTOKEN_ENCODINGS_BASE"), "TIKTOKEN_ENCODINGS_BASE"
if VOCAB_SOURCE:
    _vocab_path = os.path.join(VOCAB_SOURCE, VOCAB_FILENAME)
    if not os.path.isfile(_vocab_path):
        raise WorkflowError(f"{_vocab_key}: {_vocab_path} does not exist. Point it at the folder holding "
                            f"{VOCAB_FILENAME}, or unset it to let the workflow download the file once.")
    VOCAB_SHA = sha256_file(_vocab_path)  # 3.6 MB: a few ms
    VOCAB_STAGE_ARGS = f"--from-dir {shlex.quote(os.path.abspath(VOCAB_SOURCE))}"
else:
    VOCAB_SHA = VOCAB_SHA256  # the download is checked against it
    VOCAB_STAGE_ARGS = "--download"
VOCAB_DIR = os.path.join(WORK, "tokenizer")
VOCAB_FILE = os.path.join(VOCAB_DIR, VOCAB_FILENAME)


localrules: stage_tokenizer


rule stage_tokenizer:
    """The verified vocabulary at a fixed path: copied from the configured folder, or
    downloaded once (on the login node) when none is configured."""
    output:
        vocab=VOCAB_FILE,
    params:
        sha256=VOCAB_SHA,
    log:
        os.path.join(LOGS, "stage_tokenizer.log"),
    benchmark:
        os.path.join(LOGS, "stage_tokenizer.benchmark.tsv")
    shell:
        "{PYTHON} {SCRIPTS}/stage_tokenizer.py {VOCAB_STAGE_ARGS} --dest-dir $(dirname {output.vocab:q}) 2> {log:q}"
