"""The size of a teacher pass, before it runs: disk (bytes per position x positions) and GPU hours.

Bytes per position follow from the compression config exactly (format.py); the copied dataset
columns add the dataset's own bytes per token. GPU hours use a throughput the user states
(teacher.expected_tokens_per_second, per GPU) or, better, one measured by a trial capture
(teacher.max_rows) and read from its build_info.json.
"""

from __future__ import annotations

from . import format as fmt


def estimate(tokens: int, rows: int, dataset_bytes: int, config: fmt.CompressionConfig,
             tokens_per_second: float | None) -> dict:
    positions = max(tokens - rows, 0)   # one entry per position but each row's last
    logit_bytes = positions * config.bytes_per_position
    total = logit_bytes + dataset_bytes
    out = {"tokens": tokens, "rows": rows, "positions": positions, "k": config.k,
           "exact_dtype": config.exact_dtype, "bytes_per_position": config.bytes_per_position,
           "logit_bytes": logit_bytes, "dataset_bytes": dataset_bytes, "total_bytes": total,
           "bytes_per_token": round(total / tokens, 2) if tokens else None,
           "tokens_per_second": tokens_per_second,
           "gpu_hours": round(tokens / tokens_per_second / 3600, 2) if tokens_per_second else None}
    return out


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def describe(name: str, est: dict, measured: bool) -> str:
    hours = (f"{est['gpu_hours']:,} GPU hours at {est['tokens_per_second']:,.0f} tokens/s per GPU "
             f"({'measured by a trial capture' if measured else 'teacher.expected_tokens_per_second; measure yours with teacher.max_rows'})"
             if est["gpu_hours"] is not None else "GPU hours unknown (no throughput given)")
    return (f"teacher pass over {name}: {est['tokens']:,} tokens in {est['rows']:,} rows at k={est['k']} "
            f"({est['exact_dtype']}, {est['bytes_per_position']} bytes per position): "
            f"{human_bytes(est['total_bytes'])} on disk ({est['bytes_per_token']} bytes/token, of which "
            f"{human_bytes(est['logit_bytes'])} logits); {hours}")
