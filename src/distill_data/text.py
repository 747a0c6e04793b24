"""Text clean-up shared by every builder (CONTRACT.md)."""

from __future__ import annotations


def clean_text(text: str | None) -> str:
    """Drop NUL characters and surrounding whitespace; None (or a non-string) is empty."""
    if not text or not isinstance(text, str):
        return ""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.strip()
