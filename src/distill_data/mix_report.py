"""What the mix reports about itself: composition and prefix deviation (manifest.json),
per-input statistics (stats.json) and decoded samples (samples.md).

Everything here is computed from the per-row token counts the merge already holds (the
`spans` of every input row) and the schedule it wrote, so it costs no extra pass over the
token data and is exact.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .stats import TokenStats

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
PREFIX_STEPS = 100              # composition checked at every 1% of the split's weight
SAMPLE_TEXT_CHARS = 4000        # longer decoded texts keep their start and end


def token_stats(values: np.ndarray) -> TokenStats:
    if not len(values):
        return TokenStats()
    return TokenStats(int(len(values)), int(values.sum()), int(values.min()), int(values.max()))


def percentiles(values: np.ndarray) -> dict:
    """Nearest-rank percentiles (always a value that occurs; no interpolation, so the numbers
    do not depend on numpy's default method)."""
    if not len(values):
        return {f"p{p}": None for p in PERCENTILES} | {"min": None, "max": None, "mean": None}
    ordered = np.sort(values)
    n = len(ordered)
    result = {f"p{p}": int(ordered[max(0, -(-p * n // 100) - 1)]) for p in PERCENTILES}
    return result | {"min": int(ordered[0]), "max": int(ordered[-1]), "mean": round(float(ordered.mean()), 3)}


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 8) if whole else None


# --- prefix deviation ------------------------------------------------------------------------

def prefix_deviation(schedule: np.ndarray, weights: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """How far any prefix of the split strays from the composition of the whole.

    For input i and the prefix ending after each row: d_i = A_i - s_i * A, with A_i the input's
    weight in the prefix, A the prefix's weight and s_i = W_i / W. Reports max |d_i| in units
    of the measure and of B (the split's largest row weight: the schedule guarantees <= 1),
    and the largest |A_i / A - s_i| in percentage points over the prefixes that end at each 1%
    of the split's weight. Weights that are all 0 count rows (as the schedule does).
    """
    n = len(schedule)
    weights = [np.asarray(w, dtype=np.int64) for w in weights]
    if n and sum(int(w.sum()) for w in weights) == 0:
        weights = [np.ones(len(w), dtype=np.int64) for w in weights]
    per_row = np.zeros(n, dtype=np.int64)
    for i, w in enumerate(weights):
        per_row[schedule == i] = w            # input i's rows appear in its own order
    cumulative = np.cumsum(per_row)
    total = int(cumulative[-1]) if n else 0
    bound = int(max((w.max() for w in weights if len(w)), default=0))
    if total == 0:
        return {"rows": n, "bound_B": bound, "max_deviation": 0.0, "max_deviation_in_B": 0.0,
                "max_pp_at_1pct_prefixes": 0.0, "inputs": {name: {"max_deviation": 0.0, "max_pp_at_1pct_prefixes": 0.0} for name in names}}
    # Prefixes ending at the first row that reaches k% of the split's weight, k = 1..100.
    marks = np.searchsorted(cumulative, np.ceil(np.arange(1, PREFIX_STEPS + 1) * total / PREFIX_STEPS), side="left")
    marks = np.minimum(marks, n - 1)
    per_input = {}
    worst = worst_pp = 0.0
    for i, (name, w) in enumerate(zip(names, weights)):
        own = np.cumsum(np.where(schedule == i, per_row, 0))
        w_i = int(w.sum())
        # exact integers: |A_i * W - W_i * A| / W (int64 holds it below ~3e9 tokens per split)
        scaled = own * total - w_i * cumulative if total < 2**31 else own - (w_i / total) * cumulative.astype(float)
        dev = float(np.abs(scaled).max()) / (total if total < 2**31 else 1)
        pp = float(np.abs(own[marks] / cumulative[marks] - w_i / total).max()) * 100
        per_input[name] = {"max_deviation": round(dev, 3), "max_deviation_in_B": round(dev / bound, 6) if bound else 0.0,
                           "max_pp_at_1pct_prefixes": round(pp, 6)}
        worst, worst_pp = max(worst, dev), max(worst_pp, pp)
    return {
        "rows": n,
        "bound_B": bound,
        "max_deviation": round(worst, 3),
        "max_deviation_in_B": round(worst / bound, 6) if bound else 0.0,
        "max_pp_at_1pct_prefixes": round(worst_pp, 6),
        "inputs": per_input,
    }


# --- stats.json ------------------------------------------------------------------------------

def input_split_stats(spans, target: int, target_total: int, realised: int, realised_total: int) -> dict:
    """One input in one split (spans: merge.SplitSpans)."""
    total = spans.total
    return {
        "rows": spans.rows,
        "total_tokens": int(total.sum()),
        "prompt_tokens": int(spans.prompt.sum()),
        "assistant_tokens": int(spans.assistant.sum()),
        "analysis_tokens": int(spans.analysis.sum()),
        "final_tokens": int(spans.final.sum()),
        "rows_with_analysis": int((spans.analysis > 0).sum()),
        "length_percentiles": percentiles(total),
        "assistant_length_percentiles": percentiles(spans.assistant),
        "target_share": share(target, target_total),
        "realised_share": share(realised, realised_total),
    }


# --- samples.md ------------------------------------------------------------------------------

def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks inside the text."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _inline(text: str) -> str:
    """Markdown inline code that survives backticks in the text."""
    ticks = "``" if "`" in text else "`"
    return f"{ticks} {text} {ticks}" if ticks == "``" else f"`{text}`"


def _shorten(text: str, limit: int = SAMPLE_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 2], text[-limit // 2:]
    return f"{head}\n\n[… {len(text) - len(head) - len(tail)} characters omitted …]\n\n{tail}"


def _block(title: str, text: str) -> list[str]:
    text = _shorten(text)
    fence = _fence(text)
    return [f"{title}:", "", f"{fence}text", text, fence, ""]


def render_samples(dataset: str, params: dict, samples: Sequence[dict], decode) -> str:
    """samples.md: each sample's place in the mix, its source, and its text decoded, split at
    assistant_token_start into the prompt (labels -100, not trained) and the trained part."""
    lines = [
        f"# Samples of {dataset}",
        "",
        f"{params['samples_per_input']} rows per input, chosen by the smallest "
        f"u(id, {params['seed']}, \"sample\") over both splits. Each is shown decoded, cut at "
        "`assistant_token_start`: the prompt (labels -100, not trained) and the trained tokens "
        f"(analysis + final). Texts over {SAMPLE_TEXT_CHARS} characters keep their start and end.",
        "",
    ]
    current = None
    for sample in samples:
        if sample["input"] != current:
            current = sample["input"]
            lines += [f"## {current}", ""]
        row = sample["row"]
        spans = row["spans"]
        start = spans["assistant_token_start"]
        source = row["source"]
        lines += [
            f"### `{row['id']}`",
            "",
            f"- mix: {sample['split']} row {sample['position']} (`{sample['file']}`, row {sample['file_row']})",
            f"- source: dataset `{source['dataset']}`, language `{source['language']}`, exercise `{source['exercise']}`",
            f"- tokens: {len(row['input_ids'])} = prompt {start} + analysis {spans['analysis_token_count']} "
            f"+ final {spans['final_token_count']}",
            f"- meta: {_inline(source['meta_json'])}",
            "",
        ]
        lines += _block("Prompt (not trained)", decode(row["input_ids"][:start]))
        lines += _block("Trained", decode(row["input_ids"][start:]))
    if not samples:
        lines += ["(no samples: samples_per_input is 0 or the mix is empty)", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
