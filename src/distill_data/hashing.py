"""The one hash behind every per-example random decision (CONTRACT.md).

An example's fate depends only on its own id, the seed and the decision's salt: never on the
order rows are read in, on how the work is split into jobs, or on other rows.
"""

from __future__ import annotations

from hashlib import blake2b

_SCALE = float(2**64)


def unit_hash(value: str, seed: int, salt: str) -> float:
    """u(value, seed, salt) in [0, 1)."""
    digest = blake2b(f"{seed}:{salt}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def split_group_id(group: str) -> str:
    """The `split_group` a row records: a short digest of the value its split was decided on,
    so that anyone can check that no group sits in both splits without the raw text."""
    return blake2b(group.encode(), digest_size=8).hexdigest()


def content_digest(prompt: str, answer: str) -> bytes:
    """Identity of an example's content for `duplicate_content`: the normalized prompt and
    answer (``text.normalize_text``), 16 bytes so that millions of rows fit in memory."""
    return blake2b(f"{prompt}\x00{answer}".encode(), digest_size=16).digest()


def is_validation(value: str, seed: int, train_frac: float) -> bool:
    return unit_hash(value, seed, "split") < 1.0 - train_frac


def split_of(value: str, seed: int, train_frac: float) -> str:
    return "validation" if is_validation(value, seed, train_frac) else "train"
