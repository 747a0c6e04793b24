#!/usr/bin/env python3
"""Build `synth_distill_phase1_high_550m` from PleIAs/SYNTH shards.

By hand (all steps in one process):
    build_synth_distill.py --input-dir /data/pleias_synth/synth_phase1 \
        --output-dir /data/distillation_1/synth_distill_phase1_high_550m

Snakemake runs the same steps as separate jobs with --stage scan|plan|encode|finalize.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from distill_data.builders import synth, synth_plan
from distill_data.cli import add_encoding_args, check_args, log, make_encoder, run
from distill_data.decontam import match as decontam
from distill_data.dataset import write_build_info
from distill_data.stats import DatasetStats
from distill_data.tokenizer import load_tokenizer
from distill_data.writer import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["all", "scan", "plan", "encode", "finalize"], default="all")
    p.add_argument("--input-dir", type=Path, help="folder of synth_*.parquet shards (stage all)")
    p.add_argument("--shard-list", type=Path, help="read only these shard names, in this order (stage all)")
    p.add_argument("--output-dir", type=Path, help="the dataset folder to write (stages all, finalize)")
    p.add_argument("--dataset-name", default="synth_distill_phase1_high_550m")
    p.add_argument("--shard", type=Path, nargs="+", help="input shard(s) (scan, encode: one; finalize: all, in order)")
    p.add_argument("--scan-mask", type=Path, nargs="+",
                   help="per-row quality verdicts (scan out, encode in: the shard's; plan in: all, in order)")
    p.add_argument("--duplicates", type=Path, nargs="+",
                   help="duplicate_content rows per shard (plan out: one per --scan-mask; encode in: the shard's)")
    p.add_argument("--scan-summary", type=Path, nargs="+", help="scan counts (scan out; plan, finalize in)")
    p.add_argument("--plan", type=Path, help="sampling plan (plan out; encode, finalize in)")
    p.add_argument("--encoded-dir", type=Path, help="per-shard encoded rows (encode out, finalize in)")
    p.add_argument("--shard-stats", type=Path, nargs="+", help="per-shard statistics (encode out, finalize in)")
    g = p.add_argument_group("SYNTH filters and sampling")
    g.add_argument("--english-frac", type=float, default=0.75, help="least share of English rows")
    g.add_argument("--memorization-cap", type=float, default=0.70, help="largest share of memorization rows")
    g.add_argument("--global-keep", type=float, default=0.20, help="share kept by the final downsample")
    g.add_argument("--no-seed-text", dest="include_seed_text", action="store_false",
                   help="leave the seed text (`Reference:`) out of the prompt")
    g.add_argument("--append-rag-sources", action="store_true",
                   help="append a rag row's <source_N> blocks to its prompt")
    g.add_argument("--shares-by", choices=synth.SHARES_BY, default="rows",
                   help="measure the memorization cap and the English target by rows, or by assistant tokens "
                        "(estimated from the texts' bytes at plan time; the scan then also reads the reasoning)")
    g.add_argument("--no-result-check", dest="result_check", action="store_false",
                   help="keep math rows whatever result their answer states (no result_mismatch / no_result_stated)")
    add_encoding_args(p)
    decontam.add_args(p)  # read by the scan
    return p.parse_args(argv)


def params_of(args) -> synth.SynthParams:
    return synth.SynthParams(
        max_seq_len=args.max_seq_len, seed=args.seed, train_frac=args.train_frac,
        reasoning_effort=args.reasoning_level, english_frac=args.english_frac,
        memorization_cap=args.memorization_cap, global_keep=args.global_keep,
        include_seed_text=args.include_seed_text, append_rag_sources=args.append_rag_sources,
        rows_per_file=args.rows_per_file, split_by=args.split_by, result_check=args.result_check,
        shares_by=args.shares_by,
    )


def require(args, *names) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, [])]
    if missing:
        raise ValueError(f"--stage {args.stage} needs {', '.join(missing)}")


def list_shards(args) -> list[Path]:
    if args.shard_list:
        names = [line.strip() for line in args.shard_list.read_text().splitlines() if line.strip() and not line.startswith("#")]
        return [Path(n) if Path(n).is_absolute() else args.input_dir / n for n in names]
    shards = sorted(args.input_dir.glob("*.parquet"))
    if not shards:
        raise ValueError(f"{args.input_dir}: no .parquet shards")
    return shards


def stage_scan(args, shard: Path, mask: Path, summary: Path) -> None:
    log.info("scanning %s", shard)
    synth.write_scan(shard, mask, summary, args.batch_size, args.result_check, weigh=args.shares_by == "tokens",
                     matcher=decontam.from_args(args))


def stage_plan(args, summaries: list[Path], masks: list[Path], duplicates: list[Path], plan_out: Path) -> dict:
    if not len(summaries) == len(masks) == len(duplicates):
        raise ValueError(f"--stage plan needs one --scan-mask and one --duplicates per --scan-summary "
                         f"({len(summaries)}), got {len(masks)} and {len(duplicates)}")
    scans = [synth_plan.load_json(p) for p in summaries]
    per_shard, removed, removed_bytes = synth_plan.find_duplicates(masks)
    plan = synth_plan.make_plan(scans, params_of(args), removed, removed_bytes)
    for scan, rows, path in zip(scans, per_shard, duplicates):
        synth_plan.write_duplicates(path, scan["shard"], rows)
    write_json(plan_out, plan)
    log.info("plan: %d duplicate_content rows", plan["duplicate_content"])
    log.info("plan: mem_keep %.4f, non_en_keep %.4f, global_keep %.4f", plan["mem_keep"], plan["non_en_keep"], plan["global_keep"])
    return plan


def stage_encode(args, encoder, shard: Path, mask: Path, plan: Path, duplicates: Path, encoded_dir: Path,
                 stats_out: Path) -> None:
    log.info("encoding %s", shard)
    stats = synth.encode_shard(shard, mask, synth_plan.load_json(plan), encoder, params_of(args), encoded_dir,
                               shard.name, args.batch_size, synth_plan.read_duplicates(duplicates, shard.name))
    write_json(stats_out, stats.to_dict())
    acc = stats.accounting
    log.info("%s: read %d, written %d, dropped %d", shard.name, acc.rows_read, acc.rows_written, sum(acc.drops.values()))


def stage_finalize(args, shards, summaries, shard_stats, plan, encoded_dir, tokenizer) -> None:
    manifest = synth.finalize(
        dataset=args.dataset_name, dataset_dir=args.output_dir, shard_names=[s.name for s in shards],
        encoded_dir=encoded_dir, scan_summaries=[synth_plan.load_json(p) for p in summaries],
        shard_stats=[DatasetStats.from_dict(synth_plan.load_json(p)) for p in shard_stats],
        plan=synth_plan.load_json(plan), params=params_of(args), tokenizer=tokenizer, input_paths=shards,
        threads=args.threads,
    )
    log.info("%s: %d rows, %d tokens", args.output_dir, manifest["accounting"]["rows_written_total"], manifest["total_tokens"])


def main(argv=None) -> None:
    started = time.time()
    args = parse_args(argv)
    check_args(args, {"english_frac": "synth.english_frac", "memorization_cap": "synth.memorization_cap",
                      "global_keep": "synth.global_keep"})
    if args.stage == "scan":
        require(args, "shard", "scan_mask", "scan_summary")
        stage_scan(args, args.shard[0], args.scan_mask[0], args.scan_summary[0])
    elif args.stage == "plan":
        require(args, "scan_summary", "scan_mask", "duplicates", "plan")
        stage_plan(args, args.scan_summary, args.scan_mask, args.duplicates, args.plan)
    elif args.stage == "encode":
        require(args, "shard", "scan_mask", "plan", "duplicates", "encoded_dir", "shard_stats")
        stage_encode(args, make_encoder(args), args.shard[0], args.scan_mask[0], args.plan, args.duplicates[0],
                     args.encoded_dir, args.shard_stats[0])
    elif args.stage == "finalize":
        require(args, "shard", "scan_summary", "shard_stats", "plan", "encoded_dir", "output_dir")
        stage_finalize(args, args.shard, args.scan_summary, args.shard_stats, args.plan, args.encoded_dir,
                       load_tokenizer(args.tokenizer_dir))
        write_build_info(args.output_dir, started, sys.argv)
    else:
        require(args, "input_dir", "output_dir")
        shards = list_shards(args)
        encoder = make_encoder(args)
        args.output_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{args.output_dir.name}.work-", dir=args.output_dir.parent) as work:
            work = Path(work)
            masks = [work / f"{s.stem}.mask.parquet" for s in shards]
            summaries = [work / f"{s.stem}.scan.json" for s in shards]
            stats = [work / f"{s.stem}.stats.json" for s in shards]
            duplicates = [work / f"{s.stem}.duplicates.json" for s in shards]
            for shard, mask, summary in zip(shards, masks, summaries):
                stage_scan(args, shard, mask, summary)
            stage_plan(args, summaries, masks, duplicates, work / "plan.json")
            for shard, mask, dups, stat in zip(shards, masks, duplicates, stats):
                stage_encode(args, encoder, shard, mask, work / "plan.json", dups, work / "encoded", stat)
            stage_finalize(args, shards, summaries, stats, work / "plan.json", work / "encoded", encoder.renderer.tokenizer)
        write_build_info(args.output_dir, started, sys.argv)


if __name__ == "__main__":
    run(main)
