"""The SYNTH shard list: one shard per line, a name under the raw root or an absolute path."""

from __future__ import annotations

import os
from pathlib import Path


class ShardListError(ValueError):
    pass


def read_shard_list(list_path: str | os.PathLike, raw_root: str | os.PathLike) -> dict[str, str]:
    """{link stem: absolute target path}, in list order. Blank lines and `#` comments are skipped."""
    list_path = Path(list_path)
    if not list_path.is_file():
        raise ShardListError(f"shard list {list_path} does not exist")
    shards: dict[str, str] = {}
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        target = entry if os.path.isabs(entry) else os.path.join(os.path.abspath(raw_root), entry)
        name = os.path.basename(entry)
        if not name.endswith(".parquet"):
            raise ShardListError(f"{list_path}:{number}: {entry!r} is not a .parquet shard")
        stem = name[: -len(".parquet")]
        if stem in shards:
            raise ShardListError(f"{list_path}:{number}: shard {name} is listed twice")
        shards[stem] = target
    if not shards:
        raise ShardListError(f"shard list {list_path} names no shard")
    return shards
