"""The renderer's self-check, recorded once per vocabulary, library versions and renderer code.

`HarmonyRenderer` compares its fast assembly with openai-harmony's own render when it is built.
That costs loading openai-harmony's encoding (a second copy of the vocabulary) in every job
process; a build starts one process per shard and stage. The check's outcome depends only on:
the vocabulary (its sha256), the openai-harmony and tiktoken versions, the renderer's code
(`render.py` and this file) and the reasoning effort. So a passing check is written down, with
the constant token frames it validated, under a key made of all of these; a process whose key
matches takes the frames from the record and skips openai-harmony entirely.

Where the record lives: ``$DISTILL_RENDER_CHECK_DIR`` if set (``off`` disables the cache; the
workflow sets it to ``<work_root>/render_check``), else the user's cache folder
(``$XDG_CACHE_HOME/distill_data`` or ``~/.cache/distill_data``); never the vocabulary's folder,
which may be shared or read-only. When no
folder can be written, every process runs the check, as before. A record that is unreadable, or whose key or content does not match,
is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("distill_data")

ENV_DIR = "DISTILL_RENDER_CHECK_DIR"
RECORD_VERSION = 1
FRAME_NAMES = ("system", "user_head", "assistant_head", "analysis_head", "final_head", "end", "return")


@lru_cache(maxsize=1)
def _code_sha256() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("render.py", "render_check.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def check_key(tokenizer, effort: str) -> dict:
    """Everything the self-check's outcome depends on."""
    from importlib.metadata import version

    from .tokenizer import VOCAB_SHA256

    return {
        "record_version": RECORD_VERSION,
        "vocab_sha256": VOCAB_SHA256,  # load_tokenizer only ever loads a file with this sha256
        "openai_harmony": version("openai-harmony"),
        "tiktoken": version("tiktoken"),
        "renderer_code_sha256": _code_sha256(),
        "reasoning_effort": effort,
    }


def _record_name(key: dict) -> str:
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return f"render-check-{hashlib.sha256(canonical.encode()).hexdigest()[:32]}.json"


def candidate_dirs(tokenizer) -> list[Path]:
    configured = os.environ.get(ENV_DIR)
    if configured:
        return [] if configured.lower() == "off" else [Path(configured)]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # never the vocabulary's own folder: it may be shared or read-only (the workflow sets
    # $DISTILL_RENDER_CHECK_DIR to a folder under its work_root)
    return [Path(cache_home) / "distill_data"]


def _valid(record, key: dict) -> dict | None:
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    frames = record.get("frames")
    if not isinstance(frames, dict) or set(frames) != set(FRAME_NAMES):
        return None
    for value in frames.values():
        if not isinstance(value, list) or not value or not all(type(t) is int and t >= 0 for t in value):
            return None
    if len(frames["end"]) != 1 or len(frames["return"]) != 1:
        return None
    return frames


def cached_frames(tokenizer, effort: str) -> dict | None:
    """The frames of a passed self-check with this exact key, or None."""
    key = check_key(tokenizer, effort)
    name = _record_name(key)
    for folder in candidate_dirs(tokenizer):
        try:
            record = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        frames = _valid(record, key)
        if frames is not None:
            return frames
    return None


def store_frames(tokenizer, effort: str, frames: dict) -> Path | None:
    """Record a passed self-check in the first folder that can be written; None if none can."""
    folders = candidate_dirs(tokenizer)
    if not folders:
        return None
    key = check_key(tokenizer, effort)
    record = {"key": key, "frames": {name: [int(t) for t in frames[name]] for name in FRAME_NAMES},
              "meaning": "openai-harmony's render was compared with distill_data's fast renderer "
                         "under this key and they agreed; these are the frames it validated"}
    for folder in folders:
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".render-check-", suffix=".partial",
                                             delete=False, encoding="utf-8") as handle:
                tmp = handle.name
                json.dump(record, handle, sort_keys=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, folder / _record_name(key))
            return folder / _record_name(key)
        except OSError as exc:
            log.debug("render check not recorded in %s: %s", folder, exc)
            if tmp:
                Path(tmp).unlink(missing_ok=True)
    return None
