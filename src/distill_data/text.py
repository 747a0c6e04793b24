"""Text clean-up shared by every builder (CONTRACT.md)."""

from __future__ import annotations

import unicodedata


def clean_text(text: str | None) -> str:
    """Drop NUL characters and surrounding whitespace; None (or a non-string) is empty."""
    if not text or not isinstance(text, str):
        return ""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.strip()


def normalize_text(text: str | None) -> str:
    """The form two texts are compared in for the split group and for duplicates (CONTRACT.md):
    Unicode NFKC, whitespace runs collapsed to one space, stripped, case-folded."""
    text = clean_text(text)
    if not text.isascii():   # ASCII is NFKC already; isascii() is a flag lookup
        text = unicodedata.normalize("NFKC", text)
    # str.split() splits on exactly the characters regex `\s` matches, about 10x faster
    return " ".join(text.split()).casefold()
