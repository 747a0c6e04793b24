"""nvidia/Nemotron-Math-v2 (JSON lines) → `math_nemotron_v2_low_55m`: the source-specific parts.

Each file is streamed line by line in binary (the real ones are tens of GB) and every line is
parsed on its own: key order and the keys present differ between lines and files. Prompt = the
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

from .. import budget
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


def _candidate(obj: dict, drop_tool_rows: bool) -> Example | str:
    users = messages_with_role(obj, "user")
    if not users:
        return DROP_NO_USER_MESSAGE
    assistants = messages_with_role(obj, "assistant")
    if not assistants:
        return DROP_NO_ASSISTANT_MESSAGE
    if drop_tool_rows and is_tool_row(obj):
        return DROP_TOOL_ROW
    prompt = clean_text(users[0].get("content"))
    if not prompt:
        return DROP_EMPTY_PROMPT
    last = assistants[-1]
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
    """Unreadable lines of one file, and the error once they are too many."""

    def __init__(self, path: Path, max_frac: float):
        self.path, self.max_frac = path, max_frac
        self.lines = self.bad = 0
        self.first: tuple[int, str] | None = None
        self.bad_lines: list[int] = []  # their numbers, to judge the part read when the budget stops

    def add(self, line: int, item) -> SourceError | None:
        """Count a line; at an unreadable one past EARLY_CHECK_LINES, the error if too many."""
        self.lines = line
        if not (isinstance(item, budget.Drop) and item.reason in UNREADABLE):
            return None
        self.bad += 1
        self.bad_lines.append(line)
        self.first = self.first or (line, f"{item.reason}: {item.detail}")
        return self.check() if line >= EARLY_CHECK_LINES else None

    def check_until(self, line: int) -> SourceError | None:
        """The share judged on lines 1..`line` (the budget stopped reading there), as at a file's
        end: the lines read past it, in the same batch, do not count (batch size never matters)."""
        bad = bisect.bisect_right(self.bad_lines, line)
        return self.check(bad, line)

    def check(self, bad: int | None = None, lines: int | None = None) -> SourceError | None:
        bad = self.bad if bad is None else bad
        lines = self.lines if lines is None else lines
        if bad <= self.max_frac * lines:
            return None
        return SourceError(
            f"{self.path}: {bad} of the first {lines} lines are unreadable (not a JSON object), "
            f"more than {self.max_frac:.2%}; first at line {self.first[0]} ({self.first[1]}). "
            "Is this a JSON-lines file? (the limit is math.max_bad_line_frac)")


def open_jsonl(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None


def file_batches(index: int, path: Path, batch_size: int, drop_tool_rows: bool,
                 max_bad_line_frac: float, counter: BadLineCounter | None = None) -> Iterator[budget.Batch]:
    counter = counter or BadLineCounter(path, max_bad_line_frac)
    positions, items, ends = [], [], []
    offset = 0
    with open_jsonl(path) as handle:
        for number, raw in enumerate(handle, start=1):
            offset += len(raw)
            if number == 1 and raw.startswith(UTF8_BOM):  # some editors and tools write one
                raw = raw[len(UTF8_BOM):]
            parsed = parse_line(raw)
            item = candidate(parsed, drop_tool_rows) if isinstance(parsed, dict) else parsed
            positions.append(number)
            items.append(item)
            ends.append(offset)
            error = counter.add(number, item)
            if error or len(items) >= batch_size:
                yield budget.Batch(index, positions, items, ends, error_after=error)
                positions, items, ends = [], [], []
    # The whole file is judged at its end, however small.
    yield budget.Batch(index, positions, items, ends, error_after=counter.check())


class NemotronSource(budget.BudgetSource):
    builder = "nemotron_math"
    schema = SCHEMA
    category_fields = CATEGORY_FIELDS
    drop_reasons = DROP_REASONS
    by_design_reasons = (DROP_TOOL_ROW,)  # Phase 1 has no tool use
    position_name = "line"
    rows_meaning = "lines of the JSON-lines files (one row per line, blank and unreadable lines included)"

    def __init__(self, files: Sequence[str | Path], drop_tool_rows: bool, max_bad_line_frac: float):
        if not files:
            raise SourceError("no Nemotron-Math JSON-lines input file given")
        super().__init__(files)
        for path in self.files:  # a missing file should stop the job before any work
            if not path.is_file():
                raise SourceError(f"{path}: no such JSON-lines file")
        self.drop_tool_rows = drop_tool_rows
        self.max_bad_line_frac = max_bad_line_frac

    def batches(self, batch_size: int) -> Iterator[budget.Batch]:
        self.counters = {}
        for index, path in enumerate(self.files):
            self.counters[index] = BadLineCounter(path, self.max_bad_line_frac)
            yield from file_batches(index, path, batch_size, self.drop_tool_rows, self.max_bad_line_frac,
                                    self.counters[index])

    def check_stop(self, stop: budget.StopPoint) -> None:
        """The budget ended reading in a file: its bad-line limit holds for the part read."""
        error = self.counters[stop.file].check_until(stop.position)
        if error is not None:
            raise error

    def describe_inputs(self, rows_read, stop):
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
    source = NemotronSource(input_files, params.drop_tool_rows, params.max_bad_line_frac)
    return budget.build(source, encoder, params, dataset=dataset, dataset_dir=Path(output_dir),
                        batch_size=batch_size)
