#!/usr/bin/env python3
"""Put the verified Harmony vocabulary (o200k_base.tiktoken) into a folder.

    stage_tokenizer.py --from-dir /shared/tokenizer --dest-dir /data/distillation_1/_work/tokenizer
    stage_tokenizer.py --download --dest-dir /data/distillation_1/_work/tokenizer

The file is checked against its sha256 and moved into place only when complete. A failed
download (no internet) or a wrong file ends with one line saying what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from distill_data.cli import log, run
from distill_data.tokenizer import VOCAB_FILENAME, VOCAB_URL, download_vocabulary, verify_vocab_file


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-dir", type=Path, help=f"folder holding {VOCAB_FILENAME}")
    source.add_argument("--download", action="store_true", help="fetch it (needs the internet)")
    p.add_argument("--url", default=VOCAB_URL, help="where --download fetches it from")
    p.add_argument("--dest-dir", type=Path, required=True, help="folder that receives the verified copy")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    dest = args.dest_dir / VOCAB_FILENAME
    if args.download:
        download_vocabulary(args.dest_dir, url=args.url)
        log.info("downloaded %s into %s", args.url, dest)
        return
    source = args.from_dir / VOCAB_FILENAME
    verify_vocab_file(source, f"--from-dir {args.from_dir}")
    args.dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    shutil.copyfile(source, partial)
    verify_vocab_file(partial, f"the copy of {source}")
    os.replace(partial, dest)
    log.info("copied %s to %s", source, dest)


if __name__ == "__main__":
    run(main)
