# The Harmony vocabulary every encode job reads: a configured folder, $TIKTOKEN_ENCODINGS_BASE,
# or (neither set) one download into the output tree, so that compute nodes need no internet.

from distill_data.tokenizer import VOCAB_FILENAME

VOCAB_DIR = config["tokenizer_dir"] or os.environ.get("TIKTOKEN_ENCODINGS_BASE") or os.path.join(OUT, "tokenizer")
VOCAB_FILE = os.path.join(VOCAB_DIR, VOCAB_FILENAME)


localrules: download_tokenizer


rule download_tokenizer:
    output:
        vocab=os.path.join(OUT, "tokenizer", VOCAB_FILENAME),
    log:
        os.path.join(LOGS, "download_tokenizer.log"),
    benchmark:
        os.path.join(LOGS, "download_tokenizer.benchmark.tsv")
    shell:
        "{PYTHON} -c 'import sys; from distill_data.tokenizer import download_vocabulary; "
        "download_vocabulary(sys.argv[1])' $(dirname {output.vocab:q}) 2> {log:q}"
