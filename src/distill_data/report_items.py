"""The Snakemake report's items for one dataset or the mix (rules/report.smk).

    python -m distill_data.report_items DIR --validation V.json --out-dir OUT [--samples N --seed S]

writes into OUT:
  accounting.html   rows read, written per split, every drop reason, the distributions (the mix:
                    its near-duplicate clusters and drops)
                    (exercise, language, domain, …); the mix: rows and shares per input
  tokens.png        histograms of prompt / analysis / final / total tokens per row
  samples.html      N rows decoded, the trained part (labels != -100) marked
  validation.html   the validator's checks, their counts and first failures, its speed
  composition.png   (mix only) each input's share of rows in every 1% of the split

Everything is read from the published files, the manifest and the validator's JSON report.
Plots are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .show import find_rows, trained_runs

log = logging.getLogger("distill_data")

SPLITS = ("train", "validation")
TOKEN_KINDS = ("prompt", "analysis", "final", "total")
STYLE = """<style>
body { font-family: sans-serif; font-size: 14px; margin: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #15803d; font-weight: bold; } .failed { color: #b91c1c; font-weight: bold; }
.skipped { color: #777; }
pre { white-space: pre-wrap; word-break: break-word; background: #f8f8f8; padding: 8px; border: 1px solid #ddd; }
.prompt { color: #666; } .trained { background: #dcfce7; color: #14532d; }
</style>"""


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            + STYLE + "</head><body>\n<h2>" + html.escape(title) + "</h2>\n" + "\n".join(body) + "\n</body></html>\n")


def _table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for k, value in enumerate(row):
            text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
            cells.append(f"<td class=\"n\">{html.escape(text)}</td>" if k >= numeric_from and isinstance(value, (int, float))
                         else f"<td>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _flat_rows(data: dict, prefix: str = "") -> list[list]:
    """Nested mappings as one row per leaf ("inputs.chat.groups.train", 309), never raw JSON."""
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flat_rows(value, name + ".")
        else:
            rows.append([name, ", ".join(map(str, value)) if isinstance(value, list) else value])
    return rows


def _where(stopped_at) -> str:
    """Where a budget stopped, as a reader says it: "train-00003-of-00004.parquet, row 854"."""
    if isinstance(stopped_at, dict):
        return ", ".join(f"{k} {v}" if k != "file" else str(v) for k, v in stopped_at.items())
    return str(stopped_at)


def _count(value) -> int:
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    return int(value or 0)


# --- accounting -------------------------------------------------------------------------------

def decontamination_html(section: dict | None) -> list[str]:
    """Rows dropped per benchmark and the sampled rows with the n-gram that matched."""
    if not isinstance(section, dict):
        return []
    rows = []
    for bench in section.get("benchmarks", []):
        samples = bench.get("samples") or [{}]
        for sample in samples:
            where = " ".join([str(sample.get("file", "-")), *(f"{k} {sample[k]}" for k in ("row", "line") if k in sample),
                              *([f"({sample['id']})"] if sample.get("id") else [])]) if sample else "-"
            rows.append([bench.get("name"), bench.get("rows_dropped"), where, sample.get("part", "-"),
                         sample.get("ngram", "-")])
    title = (f"<h3>Benchmark decontamination ({section.get('ngram')}-word n-grams of "
             f"{html.escape(', '.join(section.get('compare', [])))})</h3>")
    return [title, _table(["benchmark", "rows dropped", "sample row", "part", "matching n-gram"], rows)]


def accounting_html(manifest: dict) -> str:
    name = manifest.get("dataset", "?")
    acc = manifest.get("accounting", {})
    written = acc.get("rows_written", {})
    body = ["<h3>Rows</h3>", _table(["", "rows"], [
        ["rows read", acc.get("rows_read")],
        *[[f"written: {split}", written.get(split)] for split in SPLITS],
        ["written: total", acc.get("rows_written_total")],
        ["dropped: total", acc.get("dropped_total")],
    ])]
    dropped = acc.get("dropped", {})
    if dropped:
        read = acc.get("rows_read") or 0
        body += ["<h3>Drops by reason</h3>",
                 _table(["reason", "rows", "share of rows read"],
                        [[reason, _count(n), f"{_count(n) / read:.2%}" if read else "-"] for reason, n in dropped.items()])]
    for field_name, by_category in (manifest.get("drops_by_category") or {}).items():
        reasons = sorted({r for c in by_category.values() for r, v in (c.get("reasons") or {}).items()
                          if _count(v.get("dropped") if isinstance(v, dict) else v)})
        rows = []
        for category, c in sorted(by_category.items(), key=lambda kv: -_count(kv[1].get("rows"))):
            per = c.get("reasons") or {}
            rows.append([category, _count(c.get("rows")), _count(c.get("written")), _count(c.get("dropped_total")),
                         *[_count(per.get(r, {}).get("dropped") if isinstance(per.get(r), dict) else per.get(r))
                           for r in reasons]])
        body += [f"<h3>Drops by {html.escape(field_name)}</h3>",
                 _table([field_name, "rows read", "written", "dropped", *reasons], rows)]
    body += decontamination_html(manifest.get("decontamination"))
    warnings = manifest.get("warnings")
    if warnings:
        body += ["<h3>Warnings</h3>", "<ul>" + "".join(f"<li>{html.escape(json.dumps(w) if not isinstance(w, str) else w)}</li>"
                                                     for w in warnings) + "</ul>"]
    if isinstance(manifest.get("targets"), dict):
        body += ["<h3>Targets and what was realised</h3>",
                 _table(["target", "value"], _flat_rows(manifest["targets"]))]
    if isinstance(manifest.get("split_groups"), dict):
        body += ["<h3>Split groups</h3>", _table(["", "value"], _flat_rows(manifest["split_groups"]))]
    if isinstance(manifest.get("near_duplicates"), dict):
        body += near_duplicates_html(manifest["near_duplicates"])
    if manifest.get("not_read"):
        not_read = manifest["not_read"]
        body += ["<h3>Not read (token budget reached)</h3>",
                 _table(["", "value"], [["rows", not_read.get("rows", "-") if not_read.get("rows") is not None else "-"],
                                        ["bytes", not_read.get("bytes") if not_read.get("bytes") is not None else "-"]])]
    if manifest.get("budget"):
        budget = manifest["budget"]
        body += ["<h3>Budget</h3>", _table(["", "value"], [
            ["target total tokens", budget.get("target_total_tokens")],
            ["total tokens written", budget.get("total_tokens")],
            ["stopped", "source exhausted" if budget.get("exhausted") else _where(budget.get("stopped_at"))]])]
    if isinstance(manifest.get("positions"), dict):
        body += positions_html(manifest["positions"])
    tokens = manifest.get("tokens", {})
    if tokens:
        rows = []
        for split in ("all", *SPLITS):
            for kind in TOKEN_KINDS:
                s = tokens.get(split, {}).get(kind, {})
                rows.append([split, kind, s.get("count"), s.get("sum"), s.get("min"), s.get("max"), s.get("mean")])
        body += ["<h3>Tokens per row</h3>", _table(["split", "part", "rows", "sum", "min", "max", "mean"], rows, 2)]
    composition = manifest.get("composition")
    if composition:
        for split in SPLITS:
            inputs = composition.get(split, {}).get("inputs", {})
            body += [f"<h3>Mix {split}: inputs</h3>", _table(
                ["input", "rows", "total tokens", "assistant tokens", "target share", "realised share"],
                [[n, v.get("rows"), v.get("total_tokens"), v.get("assistant_tokens"), v.get("target_share"),
                  v.get("realised_share")] for n, v in inputs.items()])]
            deviation = composition.get(split, {}).get("prefix_deviation", {})
            if deviation:
                body.append(_table(["prefix deviation", "value"], [
                    ["largest row weight B", deviation.get("bound_B")],
                    ["max deviation (in B)", deviation.get("max_deviation_in_B")],
                    ["max pp at 1% prefixes", deviation.get("max_pp_at_1pct_prefixes")]]))
    for column, counts in (manifest.get("distributions") or {}).items():
        total = sum(_count(v) for v in counts.values()) or 1
        body += [f"<h3>Rows written by {html.escape(column)}</h3>",
                 _table([column, "rows", "share"],
                        [[k, _count(v), f"{_count(v) / total:.2%}"] for k, v in sorted(counts.items(), key=lambda kv: -_count(kv[1]))])]
    return _page(f"{name}: accounting", body)


def positions_html(positions: dict) -> list[str]:
    """Where in the source the rows read and written sit (spread.py): a table with a text bar."""
    written = positions.get("rows_written") or []
    read = positions.get("rows_read") or []
    bins, extent = len(written), positions.get("extent") or 0
    top = max(written, default=0) or 1
    rows = [[f"{k * 100 // bins}-{(k + 1) * 100 // bins}%", r, w, "\u2588" * round(20 * w / top)]
            for k, (r, w) in enumerate(zip(read, written))]
    block = f", block: {positions['block']}" if positions.get("block") else ""
    return [f"<h3>Where the rows come from (order {html.escape(str(positions.get('order')))}{html.escape(block)})</h3>",
            f"<p>Equal bins of the source's {extent:,} {html.escape(str(positions.get('unit')))}, files in input order.</p>",
            _table(["part of the source", "rows read", "rows written", ""], rows, 1)]


def near_duplicates_html(found: dict) -> list[str]:
    """The mix's near-duplicate clusters and the rows each input lost to them."""
    params = found.get("params", {})
    clusters = [["clusters", found.get("clusters")], ["rows in clusters", found.get("rows_in_clusters")],
                ["straddling the split before the policy", found.get("clusters_straddling_the_split_before_the_policy")],
                *[[f"within {name}", n] for name, n in (found.get("clusters_within_one_input") or {}).items()],
                *[[f"across {names}", n] for names, n in (found.get("clusters_across_inputs") or {}).items()],
                *[[f"of {c.get('size')} rows", c.get("clusters")] for c in found.get("cluster_sizes") or []]]
    hashed = {name: sum((entry.get("rows_hashed") or {}).values()) for name, entry in (found.get("inputs") or {}).items()}
    dropped = [[name, d.get("train"), d.get("validation"), hashed.get(name, 0)]
               for name, d in (found.get("dropped") or {}).items()]
    body = [f"<h3>Near-duplicates (Jaccard &ge; {html.escape(str(params.get('threshold')))}, "
            f"{html.escape(str(params.get('shingle')))}, kept by priority "
            f"{html.escape(', '.join(params.get('priority') or []))})</h3>",
            _table(["clusters", "value"], clusters),
            _table(["input", "dropped: train", "dropped: validation", "rows hashed"], dropped)]
    for cluster in found.get("sample_clusters") or []:
        body.append(_table([f"cluster {cluster.get('cluster')} ({cluster.get('size')} rows)", "id", "kept", "prompt"],
                           [[r.get("input"), r.get("id"), "kept" if r.get("kept") else "dropped", f"“{r.get('prompt')}”"]
                            for r in cluster.get("rows", [])], numeric_from=9))
    return body


# --- token histograms -----------------------------------------------------------------------

def read_spans(directory: Path, manifest: dict) -> dict:
    """Per-row token counts of both splits: {prompt, analysis, final, total} -> int64 arrays."""
    parts = {k: [] for k in ("prompt", "analysis", "final")}
    for split in SPLITS:
        for entry in manifest.get("files", {}).get(split, []):
            spans = pq.read_table(directory / entry["path"], columns=["spans"]).column("spans").combine_chunks()
            for key, field in (("prompt", "assistant_token_start"), ("analysis", "analysis_token_count"),
                               ("final", "final_token_count")):
                parts[key].append(pc.struct_field(spans, field).to_numpy(zero_copy_only=False).astype(np.int64))
    out = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    out["total"] = out["prompt"] + out["analysis"] + out["final"]
    return out


def texts_outside(fig) -> list[str]:
    """Titles and labels that do not fit inside the figure or overlap a neighbouring panel's
    title (what reads as "cut off" in the report)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    titles = [ax.title for ax in fig.axes if ax.title.get_text()]
    labels = [ax.xaxis.label for ax in fig.axes if ax.xaxis.label.get_text()]
    for text in titles + labels + ([fig._suptitle] if fig._suptitle is not None else []):
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            out.append(text.get_text())
    for a, b in zip(titles, titles[1:]):
        if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
            out.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    return out


def tokens_png(values: dict, title: str, path: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for ax, kind in zip(axes.flat, TOKEN_KINDS):
        v = values[kind]
        if kind == "analysis":
            v = v[v > 0]
        ax.hist(v, bins=50, color="#2563eb")
        label = kind + (" (rows with reasoning)" if kind == "analysis" else "")
        if len(v):
            ax.set_title(f"{label}\n{len(v):,} rows, median {int(np.median(v)):,}, max {int(v.max()):,}", fontsize=10)
        else:
            ax.set_title(f"{label}: no rows", fontsize=10)
        ax.set_xlabel("tokens per row")
        ax.set_ylabel("rows")
    fig.suptitle(f"{title}: tokens per row (both splits)")
    fig.tight_layout()
    clipped = texts_outside(fig)
    for text in clipped:
        log.warning("%s: text cut off or overlapping: %s", path.name, text)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return clipped


# --- composition --------------------------------------------------------------------------------

def composition_png(validation: dict, title: str, path: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    for ax, split in zip(axes, SPLITS):
        data = validation.get("composition", {}).get(split, {})
        per = data.get("row_share_per_bucket", {})
        if not per:
            ax.set_title(f"{split}: no rows")
            continue
        steps = data["buckets"]
        x = np.arange(steps + 1) * (100 / steps)
        shares = [np.array([v if v is not None else 0.0 for v in per[name]] + [per[name][-1] or 0.0]) for name in per]
        ax.stackplot(x, *shares, labels=list(per), step="post")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"position in {split} (% of {data['rows']:,} rows;\nslices of {100 // steps}%)")
        ax.set_ylabel("share of the rows in the slice")
        # two lines: one line is wider than the narrow validation panel and was cut off
        ax.set_title(f"{split}: worst prefix {data.get('max_deviation_in_B'):.2f} rows' worth\n"
                     f"of {data.get('weight_by')} off", fontsize=9)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{title}: share of rows of each input along the mix")
    fig.tight_layout()
    clipped = texts_outside(fig)
    for text in clipped:
        log.warning("%s: text cut off or overlapping: %s", path.name, text)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return clipped


# --- samples ------------------------------------------------------------------------------------

def samples_html(directory: Path, name: str, count: int, seed: int, decode) -> str:
    rows = find_rows(directory, sample=count, seed=seed) if count else []
    body = [f"<p>{count} rows with the smallest u(id, {seed}, \"sample\") over both splits "
            "(<code>python -m distill_data.show DIR --sample N --seed S</code> shows the same rows). "
            "<span class=\"prompt\">Grey: not trained (labels -100)</span>; "
            "<span class=\"trained\">green: trained (labels = input_ids)</span>.</p>"]
    for row in rows:
        spans = row["spans"]
        body.append(f"<h3>{html.escape(row['id'])}</h3>")
        body.append(_table(["", "value"], [
            ["where", f"{row['_split']}, {row['_file']} row {row['_row']}"],
            *[[f"source.{k}", "" if v is None else v] for k, v in row["source"].items()],
            ["tokens", f"{len(row['input_ids'])} = prompt {spans['assistant_token_start']} + analysis "
                       f"{spans['analysis_token_count']} + final {spans['final_token_count']}"]]))
        text = "".join(f"<span class=\"{'trained' if trained else 'prompt'}\">{html.escape(decode(tokens))}</span>"
                       for trained, tokens in trained_runs(row["input_ids"], row["labels"]))
        body.append(f"<pre>{text}</pre>")
    return _page(f"{name}: decoded samples", body)


# --- validation -------------------------------------------------------------------------------

def validation_html(validation: dict) -> str:
    state = "ok" if validation.get("ok") else "failed"
    rt = validation.get("harmony_round_trip", {})
    body = [f"<p>Validator (<code>python -m distill_data.validate</code>): <span class=\"{state}\">"
            f"{'all checks passed' if validation.get('ok') else 'FAILED: ' + ', '.join(validation.get('failed_checks', []))}"
            f"</span>; {validation.get('rows', {}).get('train', 0):,} train + "
            f"{validation.get('rows', {}).get('validation', 0):,} validation rows, {validation.get('tokens', 0):,} tokens "
            f"in {validation.get('seconds')} s; Harmony round trip on {rt.get('rows', 0):,} rows "
            f"({rt.get('rows_per_second')} rows/s).</p>"]
    rows = []
    for name, check in validation.get("checks", {}).items():
        status = "skipped" if check.get("skipped") and not check.get("checked") else ("ok" if check.get("ok") else "FAILED")
        first = check.get("skipped") or "; ".join(e.get("problem", "") for e in check.get("examples", [])[:2])
        rows.append([name, status, check.get("checked", 0), check.get("failures", 0), first])
    body.append(_table(["check", "status", "checked", "failures", "first problems / note"], rows, 2))
    settings = validation.get("settings", {})
    body.append(_table(["setting", "value"], [[k, "" if v is None else str(v)] for k, v in settings.items()]))
    return _page(f"{validation.get('dataset', '?')}: validation", body)


# --- entry point ----------------------------------------------------------------------------

def write_items(directory: Path, validation_path: Path, out_dir: Path, samples: int, seed: int,
                tokenizer_dir: str | None) -> list[Path]:
    from .tokenizer import load_tokenizer

    directory, out_dir = Path(directory), Path(out_dir)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    validation = json.loads(Path(validation_path).read_text(encoding="utf-8"))
    name = manifest.get("dataset", directory.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def put(filename: str, text: str) -> None:
        (out_dir / filename).write_text(text, encoding="utf-8")
        written.append(out_dir / filename)

    put("accounting.html", accounting_html(manifest))
    tokens_png(read_spans(directory, manifest), name, out_dir / "tokens.png")
    written.append(out_dir / "tokens.png")
    tokenizer = load_tokenizer(tokenizer_dir)
    put("samples.html", samples_html(directory, name, samples, seed, tokenizer.tiktoken.decode))
    put("validation.html", validation_html(validation))
    if validation.get("kind") == "mix":
        composition_png(validation, name, out_dir / "composition.png")
        written.append(out_dir / "composition.png")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill_data.report_items", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path, help="the dataset or mix folder")
    p.add_argument("--validation", type=Path, required=True, help="the validator's JSON report")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--samples", type=int, default=3, help="decoded rows shown")
    p.add_argument("--seed", type=int, default=1337, help="seed of the sample choice")
    p.add_argument("--tokenizer-dir", default=None)
    args = p.parse_args(argv)
    try:
        write_items(args.directory, args.validation, args.out_dir, args.samples, args.seed, args.tokenizer_dir)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
