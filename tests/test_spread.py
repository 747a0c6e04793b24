"""Spread budgets (spread.py): the budgeted builders' `order: spread` on small demo sources.

A budget that takes about a quarter of a source keeps rows from all over it under `spread`
and only its head under `head`; the manifest's histogram of positions says so; the output is
byte-identical on rebuild and for any batch size; math's bad lines are still counted and judged.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from distill_data import spread
from distill_data.builders import nemotron, oasst2, opencode
from distill_data.demo.nemotron import write_nemotron_jsonl
from distill_data.demo.oasst2 import write_oasst2_source
from distill_data.demo.opencode import write_opencode_source
from distill_data.encode import ExampleEncoder
from distill_data.hashing import unit_hash
from distill_data.io import SourceError
from distill_data.render import HarmonyRenderer
from distill_data.report_items import accounting_html
from workflow_helpers import dataset_bytes

KINDS = ("code", "math", "chat")
SHARE = 0.25   # of the source's tokens the budgets take


def make_encoder(tokenizer):
    return ExampleEncoder(HarmonyRenderer(tokenizer, "high", 1), 8192, 1337, 0.99)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("spread_raw")
    write_opencode_source(root / "code", 4, 300, 1337)
    write_nemotron_jsonl(root / "math" / "low.jsonl", 800, 1337)
    write_oasst2_source(root / "chat", 150, 1337)
    return root


def build(kind, raw, out, tokenizer, order, target=10**9, batch_size=4096):
    encoder = make_encoder(tokenizer)
    if kind == "code":
        params = opencode.OpenCodeParams(target_total_tokens=target, order=order, spread_block_rows=5)
        return opencode.build(raw / "code", out, encoder, params, batch_size=batch_size)
    if kind == "math":
        params = nemotron.NemotronParams(target_total_tokens=target, order=order, spread_block_bytes=16384)
        return nemotron.build([raw / "math" / "low.jsonl"], out, encoder, params, batch_size=batch_size)
    params = oasst2.Oasst2Params(target_total_tokens=target, order=order)
    return oasst2.build(raw / "chat", out, encoder, params, batch_size=batch_size)


@pytest.fixture(scope="module")
def targets(raw, tokenizer, tmp_path_factory):
    """A quarter of each source's tokens (from a build that reads it all)."""
    out = tmp_path_factory.mktemp("spread_full")
    return {kind: int(SHARE * build(kind, raw, out / kind, tokenizer, "head")["budget"]["total_tokens"])
            for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_spread_keeps_rows_from_all_over_the_source_and_head_only_its_head(kind, raw, targets, tokenizer, tmp_path):
    head = build(kind, raw, tmp_path / "head", tokenizer, "head", targets[kind])
    spread_ = build(kind, raw, tmp_path / "spread", tokenizer, "spread", targets[kind])
    for manifest, order in ((head, "head"), (spread_, "spread")):
        positions = manifest["positions"]
        assert positions["order"] == order and not manifest["budget"]["exhausted"]
        assert sum(positions["rows_written"]) == manifest["accounting"]["rows_written_total"]
        assert sum(positions["rows_read"]) == manifest["accounting"]["rows_read"]
    extent = spread_["positions"]["extent"]
    assert extent == head["positions"]["extent"] > 0
    # spread: the first and last tenth of the source both give kept rows
    assert spread_["positions"]["first_written"] < 0.1 * extent
    assert spread_["positions"]["last_written"] > 0.9 * extent
    assert spread_["positions"]["rows_written"][0] and spread_["positions"]["rows_written"][-1]
    # head: nothing kept past the first half (the budget takes a quarter)
    assert head["positions"]["last_written"] < 0.5 * extent
    assert not any(head["positions"]["rows_written"][10:])
    # the same budget semantics: each stops on the row that crosses it
    assert head["budget"]["total_tokens"] >= targets[kind] <= spread_["budget"]["total_tokens"]
    assert "Where the rows come from" in accounting_html(spread_)


@pytest.mark.parametrize("kind", KINDS)
def test_spread_is_byte_identical_on_rebuild_and_for_any_batch_size(kind, raw, targets, tokenizer, tmp_path):
    first = build(kind, raw, tmp_path / "a", tokenizer, "spread", targets[kind])
    build(kind, raw, tmp_path / "b", tokenizer, "spread", targets[kind])
    build(kind, raw, tmp_path / "c", tokenizer, "spread", targets[kind], batch_size=7)
    a = dataset_bytes(tmp_path / "a")
    assert a == dataset_bytes(tmp_path / "b") == dataset_bytes(tmp_path / "c")
    assert json.loads(a["manifest.json"])["positions"] == first["positions"]
    assert first["params"]["order"] == "spread"


def naive_blocks(data: bytes, block_bytes: int):
    starts = [0] if data else []
    starts += [i + 1 for i, b in enumerate(data) if b == 10 and i + 1 < len(data)]
    blocks = {}
    for number, start in enumerate(starts, start=1):
        blocks.setdefault(start // block_bytes, []).append((number, start))
    out = []
    keys = sorted(blocks)
    for n, k in enumerate(keys):
        end = blocks[keys[n + 1]][0][1] if n + 1 < len(keys) else len(data)
        out.append(spread.LineBlock(blocks[k][0][1], end, blocks[k][0][0], len(blocks[k])))
    return out, len(starts)


@pytest.mark.parametrize("data", [b"", b"\n", b"a", b"a\nbb\n\nccc\r\nd", b"x" * 50 + b"\n" + b"y\n" * 30 + b"\n\n"])
@pytest.mark.parametrize("block_bytes", [1, 3, 16, 10**6])
def test_line_blocks_match_a_naive_scan_across_chunk_boundaries(tmp_path, data, block_bytes):
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    for chunk in (1, 4, 1 << 20):
        assert spread.line_blocks(path, block_bytes, chunk_bytes=chunk) == naive_blocks(data, block_bytes)
    blocks, _ = spread.line_blocks(path, block_bytes)
    with open(path, "rb") as handle:   # the blocks' lines are the file's lines, each once
        lines = [line for block in blocks for line in spread.block_lines(handle, block)]
    with open(path, "rb") as handle:
        assert [raw for _, raw, _ in lines] == list(handle)
    assert [n for n, _, _ in lines] == list(range(1, len(lines) + 1))


def math_lines(n_good, bad_every=None, bad_from=1):
    lines = []
    for i in range(1, n_good + 1):
        if bad_every and i >= bad_from and i % bad_every == 0:
            lines.append('{"messages": [truncated')
        lines.append(json.dumps({"uuid": f"u{i}", "data_source": "demo", "messages": [
            {"role": "user", "content": f"Compute {i} + {i}."},
            {"role": "assistant", "content": f"{2 * i}", "reasoning_content": f"{i} and {i} make {2 * i}."}]}))
    return lines


def build_math(path, tokenizer, out, order, target, max_bad=1.0):
    params = nemotron.NemotronParams(target_total_tokens=target, order=order, spread_block_bytes=1,
                                     max_bad_line_frac=max_bad)
    return nemotron.build([path], out, make_encoder(tokenizer), params, batch_size=50)


def test_spread_math_counts_the_bad_lines_it_read(tmp_path, tokenizer):
    """With 1-byte blocks every line is a block, so the read order is the lines sorted by
    u("low.jsonl:<line - 1>", seed, "spread"): the invalid lines among those read up to the
    stop are exactly the manifest's invalid_json drops."""
    lines = math_lines(400, bad_every=7)
    path = tmp_path / "low.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    manifest = build_math(path, tokenizer, tmp_path / "out", "spread", 4000)
    stop = manifest["budget"]["stopped_at"]["line"]
    order = sorted(range(len(lines)), key=lambda k: (unit_hash(f"low.jsonl:{k}", 1337, "spread"), f"low.jsonl:{k}"))
    read = order[:order.index(stop - 1) + 1]
    assert manifest["accounting"]["rows_read"] == len(read) < len(lines)
    bad = sum(1 for k in read if lines[k].startswith('{"messages": [truncated'))
    assert 0 < bad == manifest["accounting"]["dropped"]["invalid_json"]
    # what was not read: exact lines and bytes, from the line index
    assert manifest["not_read"]["rows"] == len(lines) - len(read)
    sizes = [len(line) + 1 for line in lines]
    assert manifest["not_read"]["bytes"] == sum(sizes) - sum(sizes[k] for k in read)
    assert manifest["inputs"][0]["bytes_read"] == sum(sizes[k] for k in read)


def test_spread_math_judges_the_bad_line_share_where_the_budget_stops(tmp_path, tokenizer):
    """Bad lines only in the file's second half (1 in 4): a budget taking a fifth of the file
    reads none under head, but about 10% bad lines under spread, over a 5% limit."""
    lines = math_lines(400, bad_every=4, bad_from=201)
    path = tmp_path / "low.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    target = 3000
    head = build_math(path, tokenizer, tmp_path / "head", "head", target, max_bad=0.05)
    assert head["accounting"]["dropped"].get("invalid_json", 0) == 0
    with pytest.raises(SourceError, match=r"low.jsonl: \d+ of \d+ lines read \(spread order\) are unreadable"):
        build_math(path, tokenizer, tmp_path / "spread", "spread", target, max_bad=0.05)
    assert not (tmp_path / "spread").exists()
    # the whole file read: both orders count the same bad lines
    full = {order: build_math(path, tokenizer, tmp_path / f"full_{order}", order, 10**9)
            for order in ("head", "spread")}
    assert (full["head"]["accounting"]["dropped"]["invalid_json"]
            == full["spread"]["accounting"]["dropped"]["invalid_json"] == 50)


def test_an_unknown_order_is_refused(raw):
    with pytest.raises(ValueError, match="order must be one of head, spread"):
        opencode.OpenCodeSource(sorted((raw / "code").glob("*.parquet")), True, 1337, order="middle")


def test_spread_math_over_two_files_reads_both_and_judges_each(tmp_path, tokenizer):
    """Blocks of both files interleave; each file is described by its own lines and bytes read,
    and a file whose lines read break the limit stops the build even when the budget stopped
    in the other file."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(line + "\n" for line in math_lines(300)), encoding="utf-8")
    second.write_text("".join(line + "\n" for line in math_lines(300, bad_every=3)), encoding="utf-8")
    params = dict(target_total_tokens=8000, order="spread", spread_block_bytes=2048)
    outs = []
    for batch_size in (7, 4096):
        out = tmp_path / f"out_{batch_size}"
        nemotron.build([first, second], out, make_encoder(tokenizer),
                       nemotron.NemotronParams(**params, max_bad_line_frac=1.0), batch_size=batch_size)
        outs.append(dataset_bytes(out))
    assert outs[0] == outs[1]
    manifest = json.loads(outs[0]["manifest.json"])
    assert [i["read"] for i in manifest["inputs"]] == ["partial", "partial"]
    assert manifest["budget"]["stopped_at"]["file"] == "a.jsonl"   # b.jsonl is judged all the same
    assert sum(i["lines_read"] for i in manifest["inputs"]) == manifest["accounting"]["rows_read"]
    assert [i["rows"] for i in manifest["inputs"]] == [300, 400]
    assert manifest["not_read"]["rows"] == 700 - manifest["accounting"]["rows_read"]
    extent = manifest["positions"]["extent"]
    assert extent == first.stat().st_size + second.stat().st_size
    assert manifest["positions"]["first_written"] < 0.1 * extent < 0.9 * extent < manifest["positions"]["last_written"]
    with pytest.raises(SourceError, match=r"b.jsonl: \d+ of \d+ lines read \(spread order\) are unreadable"):
        nemotron.build([first, second], tmp_path / "strict", make_encoder(tokenizer),
                       nemotron.NemotronParams(**params, max_bad_line_frac=0.2))


def test_spread_chat_hands_over_whole_trees_in_the_seeded_order(raw, targets, tokenizer, tmp_path):
    build("chat", raw, tmp_path / "chat", tokenizer, "spread", targets["chat"])
    rows = pq.read_table(tmp_path / "chat" / "train").to_pylist()
    trees = [row["source"]["message_tree_id"] for row in rows]
    keys = [(unit_hash(tree, 1337, "spread"), tree) for tree in trees]
    assert keys == sorted(keys) and len(set(trees)) > 10   # rows are written in read order


def test_parquet_slices_cross_row_groups_and_dictionary_columns(tmp_path):
    import pyarrow as pa

    path = tmp_path / "s.parquet"
    first = pa.table({"id": pa.array(list("abcde")).dictionary_encode(), "n": list(range(5))})
    second = pa.table({"id": pa.array(list("vwxyz")).dictionary_encode(), "n": list(range(5, 10))})
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first, row_group_size=2)
        writer.write_table(second, row_group_size=3)
    slices = spread.ParquetSlices(path, ["id", "n"], ["id"])
    assert slices.rows == 10 and slices.group_starts == [0, 2, 4, 5, 8, 10]
    for start, stop in spread.row_slices(10, 3) + [(0, 10), (1, 9)]:
        got = [(offset, batch.column("n").to_pylist())
               for offset, batch in spread.record_batches(slices.read(start, stop), 2)]
        assert [n for _, ns in got for n in ns] == list(range(start, stop))
        assert [offset for offset, _ in got] == list(range(0, stop - start, 2))
