"""Locate, verify and load the Harmony vocabulary (`o200k_harmony`) without network access.

Compute nodes usually have no internet, so the vocabulary is always loaded from a local
folder: the one given explicitly, else ``TIKTOKEN_ENCODINGS_BASE``. The workflow downloads it
once into the output tree (``download_vocabulary``) when neither is set.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

VOCAB_FILENAME = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
ENCODING_NAME = "o200k_harmony"


class TokenizerError(RuntimeError):
    """The vocabulary is missing or not the expected file."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def staged_vocab_dir(dataset_dir: str | os.PathLike) -> str | None:
    """The verified copy the workflow staged for a published dataset (or a handoff of one):
    `<output_root>/_work/tokenizer/` when work_root is the default, looked for in the folders
    above the dataset. None when there is none."""
    for folder in Path(dataset_dir).resolve().parents[:4]:
        candidate = folder / "_work" / "tokenizer"
        if (candidate / VOCAB_FILENAME).is_file():
            return str(candidate)
    return None


def vocab_dir_for(dataset_dir: str | os.PathLike, vocab_dir: str | None) -> str | None:
    """What a tool reading `dataset_dir` uses: --tokenizer-dir, else $TIKTOKEN_ENCODINGS_BASE,
    else the workflow's staged copy; the error of resolve_vocab_dir names all three."""
    if vocab_dir or os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
        return vocab_dir
    staged = staged_vocab_dir(dataset_dir)
    if staged is None:
        looked = ", ".join(str(f / "_work" / "tokenizer") for f in Path(dataset_dir).resolve().parents[:4])
        raise TokenizerError(f"No Harmony vocabulary: no --tokenizer-dir, TIKTOKEN_ENCODINGS_BASE unset, and no "
                             f"staged copy of {VOCAB_FILENAME} in {looked}")
    return staged


def resolve_vocab_dir(vocab_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding a verified ``o200k_base.tiktoken``: ``vocab_dir`` or the env var."""
    source = "the configured tokenizer folder"
    if not vocab_dir:
        vocab_dir = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
        source = "TIKTOKEN_ENCODINGS_BASE"
    if not vocab_dir:
        raise TokenizerError(
            "No Harmony vocabulary: set TIKTOKEN_ENCODINGS_BASE (or config key tokenizer_dir) to a "
            f"folder holding {VOCAB_FILENAME}, or leave both unset and let the workflow download it."
        )
    path = Path(vocab_dir) / VOCAB_FILENAME
    verify_vocab_file(path, source)
    return Path(vocab_dir)


def verify_vocab_file(path: Path, source: str = "the vocabulary file") -> None:
    if not path.is_file():
        raise TokenizerError(
            f"{path} does not exist ({source}): set TIKTOKEN_ENCODINGS_BASE or tokenizer_dir to a "
            f"folder holding {VOCAB_FILENAME} (sha256 {VOCAB_SHA256})."
        )
    digest = _cached_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    if digest != VOCAB_SHA256:
        raise TokenizerError(
            f"{path} is not the o200k_base vocabulary: sha256 {digest}, expected {VOCAB_SHA256}. "
            "Replace the file (or delete it and let the workflow download it again)."
        )


@lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def download_vocabulary(dest_dir: str | os.PathLike, url: str = VOCAB_URL) -> Path:
    """Fetch the vocabulary once, verify it, and move it into place atomically."""
    import urllib.request  # here: http and ssl cost every job ~30 ms of imports

    dest = Path(dest_dir) / VOCAB_FILENAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TokenizerError(
            f"Could not download {url} ({exc}). On a machine without internet, copy "
            f"{VOCAB_FILENAME} to a folder and set TIKTOKEN_ENCODINGS_BASE or tokenizer_dir to it."
        ) from exc
    digest = sha256_file(tmp)
    if digest != VOCAB_SHA256:
        tmp.unlink(missing_ok=True)
        raise TokenizerError(f"Downloaded {url} has sha256 {digest}, expected {VOCAB_SHA256}.")
    os.replace(tmp, dest)
    return dest


class HarmonyTokenizer:
    """The two views of one vocabulary: openai-harmony (reference) and tiktoken (fast).

    openai-harmony's encoding (a second copy of the vocabulary, ~0.2 s to load) is loaded on
    first use: a job whose renderer self-check is already recorded never needs it."""

    def __init__(self, vocab_dir: Path, tiktoken: object, harmony: object | None = None):
        self.vocab_dir = Path(vocab_dir)
        self.tiktoken = tiktoken  # tiktoken.Encoding
        self._harmony = harmony

    @property
    def harmony(self):  # openai_harmony.HarmonyEncoding
        if self._harmony is None:
            self._harmony = _load_harmony(self.vocab_dir)
        return self._harmony

    def describe(self) -> dict:
        from importlib.metadata import version

        return {
            "name": ENCODING_NAME,
            "harmony_encoding": "HarmonyGptOss",
            "vocab_file": VOCAB_FILENAME,
            "vocab_sha256": VOCAB_SHA256,
            "openai_harmony_version": version("openai-harmony"),
            "tiktoken_version": version("tiktoken"),
        }


def _load_harmony(folder: Path):
    # openai-harmony reads the vocabulary from this folder when the variable is set.
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(folder)
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


@lru_cache(maxsize=4)
def load_tokenizer(vocab_dir: str | os.PathLike | None = None) -> HarmonyTokenizer:
    """Load the encodings from a verified local vocabulary; never touches the network."""
    folder = resolve_vocab_dir(vocab_dir)
    vocab_path = str(folder / VOCAB_FILENAME)
    # openai-harmony (loaded later, if needed) reads the vocabulary from this folder.
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(folder)
    import tiktoken
    import tiktoken_ext.openai_public as public
    from tiktoken.load import load_tiktoken_bpe

    # Take tiktoken's own definition of o200k_harmony (pattern, special tokens), but feed it
    # the local verified file instead of the URL it would download.
    original_loader = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda _url, expected_hash=None: load_tiktoken_bpe(
        vocab_path, expected_hash=VOCAB_SHA256
    )
    try:
        spec = public.o200k_harmony()
    finally:
        public.load_tiktoken_bpe = original_loader
    fast = tiktoken.Encoding(**spec)
    return HarmonyTokenizer(vocab_dir=folder, tiktoken=fast)
