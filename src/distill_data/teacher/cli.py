"""Command line of the teacher stage (the Snakemake rules run it; it also runs by hand).

    python -m distill_data.teacher estimate --input-dir MIX --vocab-size 201088 --top-k 64
    python -m distill_data.teacher plan     --input-dir MIX --output PLAN.json --vocab-size 201088 --top-k 32
    python -m distill_data.teacher capture  --input-dir MIX --split train --part part-00000.parquet \\
        --output-dir TEACHER --model MODEL [--backend transformers|vllm] [--top-k 32] [--max-rows 50]
    python -m distill_data.teacher publish  --input-dir MIX --output-dir TEACHER --model MODEL SUMMARY.json…
    python -m distill_data.teacher check    TEACHER [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..handoff.source import HandoffError
from . import format as fmt
from .backends import TeacherError, make_backend, model_fingerprint, model_vocab_size

log = logging.getLogger("distill_data")


def _compression(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top-k", type=int, default=32, help="logprobs kept per position")
    p.add_argument("--logprob-dtype", default="float32", choices=sorted(fmt.DTYPE_BITS),
                   help="how each logprob is stored (DistillKit's exact_dtype)")


def _config(args, vocab_size: int) -> fmt.CompressionConfig:
    return fmt.default_config(vocab_size, args.top_k, args.logprob_dtype)


def _teacher_settings(args) -> dict:
    return {"backend": args.backend, "dtype": args.dtype, "top_k": args.top_k, "logprob_dtype": args.logprob_dtype,
            "max_rows": args.max_rows}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the teacher: a Hugging Face model folder")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="the format's vocabulary size d; default the model's config.json vocab_size")
    p.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    p.add_argument("--dtype", default="bfloat16", help="the teacher's weights dtype (float32, bfloat16, …)")
    p.add_argument("--max-rows", type=int, default=None, help="rows per part (a trial run); default all")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m distill_data.teacher", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    est = sub.add_parser("estimate", help="disk and GPU hours of a teacher pass, before it runs")
    est.add_argument("--input-dir", type=Path, required=True, help="a published dataset folder")
    est.add_argument("--vocab-size", type=int, default=201088, help="the teacher's logits width")
    est.add_argument("--tokens-per-second", type=float, default=None, help="teacher throughput per GPU")
    _compression(est)
    plan = sub.add_parser("plan", help="the parts to capture and the estimate, as JSON")
    plan.add_argument("--input-dir", type=Path, required=True)
    plan.add_argument("--output", type=Path, required=True)
    plan.add_argument("--vocab-size", type=int, required=True)
    plan.add_argument("--tokens-per-second", type=float, default=None)
    plan.add_argument("--max-rows", type=int, default=None)
    plan.add_argument("--previous-build-info", type=Path, default=None,
                      help="an earlier capture's build_info.json: its measured throughput is used")
    _compression(plan)
    cap = sub.add_parser("capture", help="one part file through the teacher")
    cap.add_argument("--input-dir", type=Path, required=True)
    cap.add_argument("--split", required=True)
    cap.add_argument("--part", required=True, help="the part file's name, e.g. part-00000.parquet")
    cap.add_argument("--output-dir", type=Path, required=True, help="the teacher dataset folder")
    cap.add_argument("--work-dir", type=Path, default=None, help="finished chunks (resume); default beside the output")
    cap.add_argument("--summary", type=Path, default=None, help="write the part's summary JSON here")
    cap.add_argument("--batch-tokens", type=int, default=16384, help="padded tokens per forward pass")
    cap.add_argument("--chunk-rows", type=int, default=256, help="rows per resumable chunk")
    cap.add_argument("--device", default="auto", help="transformers backend: cpu, cuda, cuda:1, auto")
    cap.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm backend")
    cap.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm backend")
    cap.add_argument("--max-model-len", type=int, default=None, help="vllm backend")
    _model_args(cap)
    _compression(cap)
    pub = sub.add_parser("publish", help="the teacher dataset's manifest from its parts' summaries")
    pub.add_argument("--input-dir", type=Path, required=True)
    pub.add_argument("--output-dir", type=Path, required=True)
    pub.add_argument("summaries", type=Path, nargs="*")
    _model_args(pub)
    _compression(pub)
    chk = sub.add_parser("check", help="validate a teacher dataset against its source")
    chk.add_argument("directory", type=Path)
    chk.add_argument("--report", type=Path)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        from .check import main as check_main
        return check_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "estimate":
            from .plan import make_plan
            plan = make_plan(args.input_dir, _config(args, args.vocab_size),
                             expected_tokens_per_second=args.tokens_per_second, max_rows=None)
            print(plan["estimate_text"])
        elif args.command == "plan":
            from .plan import make_plan, write_plan
            write_plan(args.output, make_plan(args.input_dir, _config(args, args.vocab_size),
                                              expected_tokens_per_second=args.tokens_per_second,
                                              max_rows=args.max_rows, previous_build_info=args.previous_build_info))
        elif args.command == "capture":
            from .capture import capture_part
            config = _config(args, args.vocab_size or model_vocab_size(args.model))
            options = {} if args.backend == "transformers" else {
                "tensor_parallel_size": args.tensor_parallel_size, "max_model_len": args.max_model_len,
                "gpu_memory_utilization": args.gpu_memory_utilization}
            backend = make_backend(args.backend, str(args.model), args.top_k, args.dtype, device=args.device, **options)
            output = args.output_dir / args.split / args.part
            work = args.work_dir or args.output_dir / ".chunks" / args.split / args.part
            settings = dict(_teacher_settings(args), teacher=model_fingerprint(args.model))
            capture_part(args.input_dir, args.split, args.part, output, work, backend, config, settings=settings,
                         batch_tokens=args.batch_tokens, chunk_rows=args.chunk_rows, max_rows=args.max_rows,
                         summary=args.summary)
        elif args.command == "publish":
            from .publish import publish
            config = _config(args, args.vocab_size or model_vocab_size(args.model))
            teacher = dict(model_fingerprint(args.model), backend=args.backend, dtype=args.dtype)
            publish(args.input_dir, args.output_dir, args.summaries, config, teacher, _teacher_settings(args))
    except (TeacherError, HandoffError, fmt.FormatError) as exc:
        log.error("%s", exc)
        return 2
    except json.JSONDecodeError as exc:
        log.error("a summary is not valid JSON: %s", exc)
        return 2
    return 0
