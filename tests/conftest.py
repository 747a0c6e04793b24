"""Shared fixtures: the tokenizer (from $TIKTOKEN_ENCODINGS_BASE) and the project paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    folder = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if not folder:
        pytest.fail("set TIKTOKEN_ENCODINGS_BASE to the folder holding o200k_base.tiktoken (see README)")
    return Path(folder)


@pytest.fixture(scope="session")
def tokenizer(vocab_dir):
    from distill_data.tokenizer import load_tokenizer

    return load_tokenizer(str(vocab_dir))


@pytest.fixture(scope="session")
def renderer(tokenizer):
    from distill_data.render import HarmonyRenderer

    return HarmonyRenderer(tokenizer, "high", num_threads=2)
