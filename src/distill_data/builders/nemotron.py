"""nvidia/Nemotron-Math-v2 (JSON lines) → `math_nemotron_v2_low_55m`: the source-specific parts.

Each file is streamed line by line in binary (the real ones are tens of GB) or, with
`order: spread`, read in blocks of lines in a seeded order over all files (spread.py: one
pass over the bytes finds the blocks, only the blocks taken are parsed); every line is parsed
on its own: key order and the keys present differ between lines and files. Prompt = the
first user message's `content`; analysis = the last assistant message's `reasoning_content`;
final = that message's `content`. Lines are numbered from 1; each physical line is one row
read. A blank line is a counted drop (`blank_line`) but not an unreadable line: only lines
that are not JSON or not an object count towards `max_bad_line_frac`.
"""

from __future__ import annotations

import bisect

import json
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Iterator, Sequence

from .. import budget, spread
from ..encode import DROP_ENCODING_ERROR, DROP_TOO_LONG, Example, ExampleEncoder
from ..io import SourceError
from ..schema import example_schema, source_type
from ..hashing import content_digest
from ..text import clean_text, normalize_text

DATASET_HF = "nvidia/Nemotron-Math-v2"
ID_PREFIX = "nemotron_math"
SOURCE_TYPE = source_type(["uuid", "data_source"])
SCHEMA = example_schema(SOURCE_TYPE)
CATEGORY_FIELDS = ("data_source",)

# Drop reasons, in the order they are tested: a line is counted under the first that applies.
DROP_BLANK_LINE = "blank_line"
DROP_INVALID_JSON = "invalid_json"
DROP_NOT_AN_OBJECT = "not_an_object"
DROP_NO_USER_MESSAGE = "no_user_message"
DROP_NO_ASSISTANT_MESSAGE = "no_assistant_message"
DROP_TOOL_ROW = "tool_row"
DROP_EMPTY_PROMPT = "empty_prompt"
DROP_EMPTY_ANSWER = "empty_answer"
DROP_REASONS = (DROP_BLANK_LINE, DROP_INVALID_JSON, DROP_NOT_AN_OBJECT, DROP_NO_USER_MESSAGE,
                DROP_NO_ASSISTANT_MESSAGE, DROP_TOOL_ROW, DROP_EMPTY_PROMPT, DROP_EMPTY_ANSWER,
                DROP_ENCODING_ERROR, DROP_TOO_LONG)
UNREADABLE = frozenset({DROP_INVALID_JSON, DROP_NOT_AN_OBJECT})

# Once this many lines of a file have been read, a share of unreadable lines above the limit
# stops the job at once rather than after tens of GB; smaller files are judged at their end.
EARLY_CHECK_LINES = 10_000
DETAIL_CHARS = 160
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class NemotronParams(budget.BudgetParams):
    target_total_tokens: int = 55_000_000
    drop_tool_rows: bool = True
    max_bad_line_frac: float = 0.01
    spread_block_bytes: int = spread.DEFAULT_BLOCK_BYTES


# --- one line --------------------------------------------------------------------------------

def parse_line(raw: bytes) -> dict | budget.Drop:
    """The JSON object on a line, or why there is none."""
    if not raw.strip():
        return budget.Drop(DROP_BLANK_LINE)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        return budget.Drop(DROP_INVALID_JSON, str(exc)[:DETAIL_CHARS])
    if not isinstance(obj, dict):
        return budget.Drop(DROP_NOT_AN_OBJECT, f"a JSON {type(obj).__name__}")
    return obj


def messages_with_role(obj: dict, role: str) -> list[dict]:
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict) and m.get("role") == role]


def has_tools(tools) -> bool:
    """`tools` is non-empty: a list or object with entries (or its JSON text)."""
    if isinstance(tools, str):
        return tools.strip() not in ("", "[]", "{}", "null")
    return bool(tools)


def is_tool_row(obj: dict) -> bool:
    """A tool row (CONTRACT.md) holds a tool trajectory, whatever its `tools` says: `tools` is
    non-empty, or a message has non-empty `tool_calls`, or a message has the role `tool`."""
    if has_tools(obj.get("tools")):
        return True
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return False
    return any(isinstance(m, dict) and (m.get("role") == "tool" or has_tools(m.get("tool_calls")))
               for m in messages)


def content_key(obj: dict) -> str:
    """A stable id for a row without `uuid` (the high files): a hash of its conversation,
    independent of key order and of keys left out or set to null."""
    messages = obj.get("messages") if isinstance(obj.get("messages"), list) else []
    canonical = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in messages]
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return blake2b(text.encode(), digest_size=16).hexdigest()


def row_key(obj: dict) -> str:
    uuid = obj.get("uuid")
    return clean_text(uuid) if isinstance(uuid, str) and clean_text(uuid) else content_key(obj)


def candidate(obj: dict, drop_tool_rows: bool) -> Example | budget.Drop:
    data_source = clean_text(obj.get("data_source")) if isinstance(obj.get("data_source"), str) else ""
    return budget.with_categories(_candidate(obj, drop_tool_rows), {"data_source": data_source or None})


def _roles(obj: dict) -> tuple[dict | None, dict | None, bool]:
    """One pass over the messages: (first user message, last assistant message, whether a
    message is a tool message or has non-empty `tool_calls`), as `messages_with_role` and
    `is_tool_row` see them."""
    messages = obj.get("messages")
    first_user = last_assistant = None
    tool = False
    if not isinstance(messages, list):
        return None, None, False
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role == "user":
            if first_user is None:
                first_user = m
        elif role == "assistant":
            last_assistant = m
        elif role == "tool":
            tool = True
        if not tool:
            calls = m.get("tool_calls")
            if calls is not None and has_tools(calls):
                tool = True
    return first_user, last_assistant, tool


def _candidate(obj: dict, drop_tool_rows: bool) -> Example | str:
    user, last, tool_message = _roles(obj)
    if user is None:
        return DROP_NO_USER_MESSAGE
    if last is None:
        return DROP_NO_ASSISTANT_MESSAGE
    if drop_tool_rows and (tool_message or has_tools(obj.get("tools"))):
        return DROP_TOOL_ROW
    prompt = clean_text(user.get("content"))
    if not prompt:
        return DROP_EMPTY_PROMPT
    final = clean_text(last.get("content"))
    if not final:
        return DROP_EMPTY_ANSWER
    key = row_key(obj)
    uuid = obj.get("uuid")
    return Example(
        key=key,
        id=f"{ID_PREFIX}:{key}",
        source={"dataset": DATASET_HF, "uuid": (clean_text(uuid) if isinstance(uuid, str) else "") or None,
                "data_source": clean_text(obj.get("data_source")) or None},
        prompt=prompt,
        reasoning=clean_text(last.get("reasoning_content")),
        final=final,
        group=normalize_text(prompt),
        content=content_digest(normalize_text(prompt), normalize_text(final)),
    )


# --- one file --------------------------------------------------------------------------------

class BadLineCounter:
    """Unreadable lines of one file, and the error once they are too many. Lines are counted in
    read order: the n-th line read is line n in the head order, not in the spread order (where
    `blocks` maps a line number to its place in the read order)."""

    def __init__(self, path: Path, max_frac: float, spread_order: bool = False):
        self.path, self.max_frac, self.spread_order = path, max_frac, spread_order
        self.lines = self.bad = 0
        self.first: tuple[int, str] | None = None
        self.bad_lines: list[int] = []  # their places in the read order, to judge the part read when the budget stops
        self.blocks: list[tuple[int, int, int]] = []  # spread: (first line, lines, lines read before) per block read

    def start_block(self, block: spread.LineBlock) -> None:
        self.blocks.append((block.first_line, block.lines, self.lines))

    def add(self, line: int, item) -> SourceError | None:
        """Count a line; at an unreadable one past EARLY_CHECK_LINES, the error if too many."""
        self.lines += 1
        if not (isinstance(item, budget.Drop) and item.reason in UNREADABLE):
            return None
        self.bad += 1
        self.bad_lines.append(self.lines)
        self.first = self.first or (line, f"{item.reason}: {item.detail}")
        return self.check() if self.lines >= EARLY_CHECK_LINES else None

    def read_rank(self, line: int) -> int:
        """How many lines of the file were read up to and including `line`."""
        for first, count, before in self.blocks:
            if first <= line < first + count:
                return before + line - first + 1
        return line

    def check_until(self, line: int) -> SourceError | None:
        """The share judged on the lines read up to `line` (the budget stopped reading there), as
        at a file's end: the lines read past it, in the same batch, do not count (batch size
        never matters)."""
        read = self.read_rank(line)
        bad = bisect.bisect_right(self.bad_lines, read)
        return self.check(bad, read)

    def check(self, bad: int | None = None, lines: int | None = None) -> SourceError | None:
        bad = self.bad if bad is None else bad
        lines = self.lines if lines is None else lines
        if bad <= self.max_frac * lines:
            return None
        which = f"{lines} lines read (spread order)" if self.spread_order else f"the first {lines} lines"
        return SourceError(
            f"{self.path}: {bad} of {which} are unreadable (not a JSON object), "
            f"more than {self.max_frac:.2%}; first at line {self.first[0]} ({self.first[1]}). "
            "Is this a JSON-lines file? (the limit is math.max_bad_line_frac)")


def open_jsonl(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None


def file_lines(handle) -> Iterator[tuple[int, bytes, int]]:
    """(line number, raw line, byte offset just after it), the whole file in order."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        offset += len(raw)
        yield number, raw, offset


class LineBatcher:
    """Lines of one file → candidates in batches; the bad-line counter sees each line taken."""

    def __init__(self, index: int, counter: BadLineCounter, batch_size: int, drop_tool_rows: bool):
        self.index, self.counter, self.batch_size, self.drop_tool_rows = index, counter, batch_size, drop_tool_rows
        self.positions, self.items, self.ends = [], [], []

    def take(self, lines: Iterator[tuple[int, bytes, int]]) -> Iterator[budget.Batch]:
        for number, raw, end in lines:
            if number == 1 and raw.startswith(UTF8_BOM):  # some editors and tools write one
                raw = raw[len(UTF8_BOM):]
            parsed = parse_line(raw)
            item = candidate(parsed, self.drop_tool_rows) if isinstance(parsed, dict) else parsed
            self.positions.append(number)
            self.items.append(item)
            self.ends.append(end)
            error = self.counter.add(number, item)
            if error or len(self.items) >= self.batch_size:
                yield self.flush(error)

    def flush(self, error: Exception | None = None) -> budget.Batch:
        batch = budget.Batch(self.index, self.positions, self.items, self.ends, error_after=error)
        self.positions, self.items, self.ends = [], [], []
        return batch


def file_batches(index: int, path: Path, batch_size: int, drop_tool_rows: bool,
                 max_bad_line_frac: float, counter: BadLineCounter | None = None) -> Iterator[budget.Batch]:
    counter = counter or BadLineCounter(path, max_bad_line_frac)
    batcher = LineBatcher(index, counter, batch_size, drop_tool_rows)
    with open_jsonl(path) as handle:
        yield from batcher.take(file_lines(handle))
    # The whole file is judged at its end, however small.
    yield batcher.flush(counter.check())


def spread_batches(paths: Sequence[Path], plan: list[list[spread.LineBlock]],
                   order: Sequence[tuple[int, int]], batch_size: int, drop_tool_rows: bool,
                   counters: dict) -> Iterator[budget.Batch]:
    """The blocks of every file in the seeded `order` (lines of a block in file order); a
    file is judged at its end, when its last block has been read."""
    handles = {}
    left = [len(blocks) for blocks in plan]
    batchers = {f: LineBatcher(f, counters[f], batch_size, drop_tool_rows) for f in range(len(paths))}
    current = None
    try:
        for f, k in order:
            if current is not None and current != f and batchers[current].items:
                yield batchers[current].flush()
            current = f
            if f not in handles:
                handles[f] = open_jsonl(paths[f])
            counters[f].start_block(plan[f][k])
            yield from batchers[f].take(spread.block_lines(handles[f], plan[f][k]))
            left[f] -= 1
            if not left[f]:
                yield batchers[f].flush(counters[f].check())
    finally:
        for handle in handles.values():
            handle.close()


class NemotronSource(budget.BudgetSource):
    builder = "nemotron_math"
    schema = SCHEMA
    category_fields = CATEGORY_FIELDS
    drop_reasons = DROP_REASONS
    by_design_reasons = (DROP_TOOL_ROW,)  # Phase 1 has no tool use
    position_name = "line"
    rows_meaning = "lines of the JSON-lines files (one row per line, blank and unreadable lines included)"

    def __init__(self, files: Sequence[str | Path], drop_tool_rows: bool, max_bad_line_frac: float,
                 order: str = "head", block_bytes: int = spread.DEFAULT_BLOCK_BYTES, seed: int = 1337):
        if not files:
            raise SourceError("no Nemotron-Math JSON-lines input file given")
        super().__init__(files)
        for path in self.files:  # a missing file should stop the job before any work
            if not path.is_file():
                raise SourceError(f"{path}: no such JSON-lines file")
        self.drop_tool_rows = drop_tool_rows
        self.max_bad_line_frac = max_bad_line_frac
        self.order, self.block_bytes, self.seed = spread.check_order(order), block_bytes, seed
        self.plan: list[list[spread.LineBlock]] = []
        self.lines: list[int] = []
        self.block_order: list[tuple[int, int]] = []
        if self.order == "spread":  # one pass over each file's bytes: its lines' blocks
            for path in self.files:
                blocks, lines = spread.line_blocks(path, block_bytes)
                self.plan.append(blocks)
                self.lines.append(lines)
            keys = [(f, k) for f, blocks in enumerate(self.plan) for k in range(len(blocks))]
            ranks = spread.seeded_order([f"{self.names[f]}:{k}" for f, k in keys], seed)
            self.block_order = [keys[r] for r in ranks]

    def read_order(self) -> dict:
        if self.order == "head":
            return {"order": "head"}
        return {"order": "spread", "block": f"the lines starting in one {self.block_bytes}-byte window of a file",
                "blocks": len(self.block_order), "seed": self.seed,
                "within_block": "file order"}

    @property
    def position_unit(self) -> str:
        return "bytes"

    def position_extents(self):
        return [path.stat().st_size for path in self.files]

    def source_position(self, batch, i):
        return batch.ends[i] - 1

    def batches(self, batch_size: int) -> Iterator[budget.Batch]:
        spreading = self.order == "spread"
        self.counters = {i: BadLineCounter(p, self.max_bad_line_frac, spreading) for i, p in enumerate(self.files)}
        if spreading:
            yield from spread_batches(self.files, self.plan, self.block_order, batch_size,
                                      self.drop_tool_rows, self.counters)
            return
        for index, path in enumerate(self.files):
            yield from file_batches(index, path, batch_size, self.drop_tool_rows, self.max_bad_line_frac,
                                    self.counters[index])

    def check_stop(self, stop: budget.StopPoint) -> None:
        """The budget ended reading in a file: its bad-line limit holds for the part read (in
        the spread order, every file was partly read: each is judged on its lines read)."""
        error = self.counters[stop.file].check_until(stop.position)
        if error is None and self.order == "spread":
            error = next((e for f, c in self.counters.items() if f != stop.file for e in [c.check()] if e), None)
        if error is not None:
            raise error

    def spread_bytes_read(self, stop: budget.StopPoint | None) -> list[int]:
        """Bytes of each file in the blocks read before the stop, and of the stop's block up to it."""
        if stop is None:
            return [path.stat().st_size for path in self.files]
        done = [0] * len(self.files)
        for f, k in self.block_order:
            block = self.plan[f][k]
            if f == stop.file and block.first_line <= stop.position < block.first_line + block.lines:
                done[f] += stop.end - block.start
                break
            done[f] += block.end - block.start
        return done

    def describe_inputs(self, rows_read, stop):
        if self.order == "spread":
            return self._describe_spread_inputs(rows_read, stop)
        return self._describe_head_inputs(rows_read, stop)

    def _describe_spread_inputs(self, rows_read, stop):
        inputs = []
        for path, name, lines, done, read in zip(self.files, self.names, self.lines, rows_read,
                                                 self.spread_bytes_read(stop)):
            size = path.stat().st_size
            entry = {"path": name, "bytes": size, "lines_read": done, "rows": lines,
                     "read": budget.read_status(read, size) if size else budget.read_status(done, lines)}
            if entry["read"] == "partial":
                entry["bytes_read"] = read
            inputs.append(entry)
        return inputs

    def _describe_head_inputs(self, rows_read, stop):
        inputs = []
        for index, (path, name, lines) in enumerate(zip(self.files, self.names, rows_read)):
            size = path.stat().st_size
            partial = stop is not None and stop.file == index and stop.end < size
            entry = {"path": name, "bytes": size, "lines_read": lines,
                     "read": "partial" if partial else "complete" if stop is None or index <= stop.file else "not_read"}
            # A row count is known only for a file read to its end.
            entry["rows"] = lines if entry["read"] == "complete" else None
            if partial:
                entry["bytes_read"] = stop.end
            inputs.append(entry)
        return inputs

    def describe_not_read(self, rows_read, stop):
        if self.order == "spread":
            files = [{"path": name, "bytes": path.stat().st_size - read, "rows": lines - done}
                     for path, name, lines, done, read in zip(self.files, self.names, self.lines, rows_read,
                                                              self.spread_bytes_read(stop))]
            files = [f for f in files if f["bytes"]]
            return {
                "rows": sum(f["rows"] for f in files),
                "bytes": sum(f["bytes"] for f in files),
                "meaning": "lines and bytes of the JSON-lines files never read because the token budget "
                           "was reached (spread order: the blocks after the stop, and the rest of the "
                           "stop's block); exact, counted from the line index",
                "files": files,
            }
        files = []
        if stop is not None:
            files.append({"path": self.names[stop.file],
                          "bytes": self.files[stop.file].stat().st_size - stop.end})
            files += [{"path": name, "bytes": p.stat().st_size}
                      for p, name in zip(self.files[stop.file + 1:], self.names[stop.file + 1:])]
            files = [f for f in files if f["bytes"]]
        return {
            "rows": 0 if stop is None else None,
            "bytes": sum(f["bytes"] for f in files),
            "meaning": "bytes of the JSON-lines files after the line that reached the token budget; "
                       "their lines are not counted, since that would mean reading the rest of "
                       "files of tens of GB",
            "files": files,
        }


def build(input_files: Sequence[str | Path], output_dir: str | Path, encoder: ExampleEncoder,
          params: NemotronParams, dataset: str = "math_nemotron_v2_low_55m", batch_size: int = 4096) -> dict:
    source = NemotronSource(input_files, params.drop_tool_rows, params.max_bad_line_frac, params.order,
                            params.spread_block_bytes, params.seed)
    return budget.build(source, encoder, params, dataset=dataset, dataset_dir=Path(output_dir),
                        batch_size=batch_size)
