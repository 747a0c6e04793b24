"""Command line of the handoff forms (the Snakemake rules run it; it also runs by hand).

    python -m distill_data.handoff disk     --input-dir MIX --output-dir OUT/disk
    python -m distill_data.handoff packed   --input-dir MIX --output-dir OUT/packed --max-seq-len 8192
    python -m distill_data.handoff disk     --input-dir OUT/packed --output-dir OUT/packed_disk
    python -m distill_data.handoff megatron --input-dir MIX --output-dir OUT/megatron
    python -m distill_data.handoff check    OUT/packed [--report FILE]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..writer import write_json
from .source import HandoffError

log = logging.getLogger("distill_data")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distill_data.handoff", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    forms = p.add_subparsers(dest="form", required=True)
    for form, text in (("disk", "a save_to_disk DatasetDict (disk_path) of a dataset or of a packed handoff"),
                       ("packed", "fixed-length rows of whole examples (parquet)"),
                       ("megatron", "megatron-core IndexedDataset files per split and input")):
        sub = forms.add_parser(form, help=text, description=text)
        sub.add_argument("--input-dir", type=Path, required=True, help="a published dataset folder (manifest.json)")
        sub.add_argument("--output-dir", type=Path, required=True, help="the form's folder (replaced when complete)")
        if form == "packed":
            sub.add_argument("--max-seq-len", type=int, default=8192, help="tokens per packed row")
            sub.add_argument("--window-tokens", type=int, default=16_000_000,
                             help="tokens packed together (bounds memory; larger packs a little tighter)")
            sub.add_argument("--rows-per-file", type=int, default=128, help="packed rows per parquet file")
            sub.add_argument("--threads", type=int, default=1, help="threads compressing the files")
    check = forms.add_parser("check", help="validate a handoff form against its source dataset")
    check.add_argument("directory", type=Path)
    check.add_argument("--report", type=Path, help="write the JSON report here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    argv = list(sys.argv if argv is None else argv)
    try:
        if args.form == "disk":
            from .disk import build_disk
            build_disk(args.input_dir, args.output_dir, argv=argv)
        elif args.form == "packed":
            from .packed import build_packed
            build_packed(args.input_dir, args.output_dir, seq_len=args.max_seq_len, window_tokens=args.window_tokens,
                         rows_per_file=args.rows_per_file, threads=args.threads, argv=argv)
        elif args.form == "megatron":
            from .megatron import build_megatron
            build_megatron(args.input_dir, args.output_dir, argv=argv)
        else:
            from .check import check_form
            report = check_form(args.directory)
            if args.report:
                write_json(args.report, report)
            failed = {name: entry["failures"] for name, entry in report["checks"].items() if not entry["ok"]}
            print(f"{args.directory}: {report['form']} form {'OK' if report['ok'] else 'FAILED'} "
                  f"({len(report['checks'])} checks; rows {report['rows']}; {report['bytes_per_token']} bytes/token)")
            for name, failures in failed.items():
                print(f"  {name} FAILED: {'; '.join(failures)}")
            return 0 if report["ok"] else 1
    except HandoffError as exc:
        log.error("%s", exc)
        return 2
    return 0
