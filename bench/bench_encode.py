#!/usr/bin/env python3
"""SYNTH encode throughput: the project's renderer next to openai-harmony's own render.

    TIKTOKEN_ENCODINGS_BASE=../shared/tokenizer python bench/bench_encode.py [--rows 6000]

Prints tokens/s per core for (1) harmony's render_conversation_for_training on the kept rows,
(2) the project's renderer on the same rows (1 thread), (3) the whole per-shard encode job
(read, filter, sample, render, write parquet) on 1 thread and on N threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from distill_data.builders import synth, synth_plan
from distill_data.demo.synth import write_synth_source
from distill_data.encode import ExampleEncoder
from distill_data.render import HarmonyRenderer, harmony_conversation
from distill_data.text import clean_text
from distill_data.tokenizer import load_tokenizer


def kept_texts(shard: Path, mask_path: Path, plan: dict, params: synth.SynthParams) -> list[tuple[str, str, str]]:
    """The (prompt, reasoning, final) triples an encode job renders for this shard."""
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    mask = pq.read_table(mask_path).to_pylist()
    triples = []
    for row, verdict in zip(table.to_pylist(), mask):
        key = clean_text(row["synth_id"])
        if verdict["quality_drop"] or synth_plan.sampling_drop(key, verdict["memorization"], verdict["english"], plan):
            continue
        prompt = synth.build_prompt(row["query"], row["query_seed_text"], clean_text(row["exercise"]),
                                    row["constraints"], params.include_seed_text, params.append_rag_sources)
        triples.append((prompt, clean_text(row["synthetic_reasoning"]), clean_text(row["synthetic_answer"])))
    return triples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=6000, help="rows in the generated shard")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    tokenizer = load_tokenizer(None)
    params = synth.SynthParams(global_keep=1.0)  # encode every row that passes the filters
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shard = write_synth_source(tmp / "raw", ["synth_010.parquet"], args.rows, seed=1)[0]
        synth.write_scan(shard, tmp / "mask.parquet", tmp / "scan.json", 4096)
        plan = synth_plan.make_plan([synth_plan.load_json(tmp / "scan.json")], params)
        triples = kept_texts(shard, tmp / "mask.parquet", plan, params)

        from openai_harmony import RenderConversationConfig

        conversations = [harmony_conversation(p, r, f, "high") for p, r, f in triples]
        config = RenderConversationConfig(auto_drop_analysis=False)
        render = tokenizer.harmony.render_conversation_for_training
        t0 = time.perf_counter()  # harmony's render alone, conversations built beforehand
        ref_tokens = sum(len(render(conv, config)) for conv in conversations)
        ref_s = time.perf_counter() - t0

        renderer = HarmonyRenderer(tokenizer, "high", 1)
        t0 = time.perf_counter()
        fast = renderer.render_batch(*zip(*triples))
        fast_s = time.perf_counter() - t0
        fast_tokens = sum(len(r.input_ids) for r in fast)
        assert fast_tokens == ref_tokens

        print(f"rows rendered: {len(triples)}, tokens: {ref_tokens}")
        print(f"openai-harmony render_conversation_for_training: {ref_tokens / ref_s:12,.0f} tokens/s (1 core)")
        print(f"project renderer (1 thread):                      {fast_tokens / fast_s:12,.0f} tokens/s "
              f"({ref_s / fast_s:.1f}x)")

        for threads in sorted({1, args.threads}):
            encoder = ExampleEncoder(HarmonyRenderer(tokenizer, "high", threads), 8192, 1337, 0.99)
            cpu0, t0 = time.process_time(), time.perf_counter()
            stats = synth.encode_shard(shard, tmp / "mask.parquet", plan, encoder, params, tmp / f"enc{threads}", shard.name)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            tokens = stats.total_tokens()
            print(f"whole encode job, {threads} thread(s): {tokens / wall:12,.0f} tokens/s wall, "
                  f"{tokens / cpu:12,.0f} tokens/s per CPU-second, {stats.accounting.rows_read / wall:,.0f} rows/s read")


if __name__ == "__main__":
    sys.exit(main())
