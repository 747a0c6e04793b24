"""Fake nvidia/OpenCodeInstruct shards in the real schema (see /work/shared/SOURCES.md §2).

Each row is a small Python task with a fenced solution, ten ``assert`` unit tests and a test
outcome consistent with ``average_test_score`` (~36% perfect). The quirk that matters most:
``average_test_score`` is ``double`` in the real parquet files but ``string`` in copies saved
through ``datasets``; the generator writes both kinds of shard. Planted quirks (missing id,
empty input/output, NULs, Harmony markers, unparsable and missing scores, one over-long row)
appear in every shard of at least ``PLANT_MIN_ROWS`` rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from distill_data.demo.synth import HARMONY_MARKERS, VOCAB, insert_at_random, long_varied_text

_STRING_COLUMNS = ("id", "input", "output", "domain", "generation_algorithm", "llm_judgement",
                   "unit_tests", "tests_execution_status")
OPENCODE_SCHEMA = pa.schema(
    [pa.field(n, pa.string()) for n in _STRING_COLUMNS]
    + [pa.field("average_test_score", pa.float64())]
)
#: The same columns as saved through ``datasets``: the score as a string.
OPENCODE_STRING_SCORE_SCHEMA = pa.schema(
    [pa.field(n, pa.string()) for n in _STRING_COLUMNS]
    + [pa.field("average_test_score", pa.string())]
)
OPENCODE_COLUMNS = tuple(OPENCODE_SCHEMA.names)
DOMAINS = ("generic", "algorithmic")
GENERATION_ALGORITHMS = ("self-instruct", "evol-instruct")
PLANT_MIN_ROWS = 200

_EN = VOCAB["en"]


# --------------------------------------------------------------------------------------------
# Task families: (function name, domain, description, input, output, code, case generator)
# --------------------------------------------------------------------------------------------


def _ints(rng: random.Random, lo: int = 1, hi: int = 8) -> list[int]:
    return [rng.randint(-50, 50) for _ in range(rng.randint(lo, hi))]


def _phrase(rng: random.Random, lo: int = 1, hi: int = 6) -> str:
    return " ".join(rng.choices(_EN, k=rng.randint(lo, hi)))


def _case_reverse(r: random.Random) -> tuple[tuple, object]:
    p = _phrase(r)
    return (p,), " ".join(p.split()[::-1])


def _case_evens(r: random.Random) -> tuple[tuple, object]:
    n = _ints(r, 0)
    return (n,), sum(x for x in n if x % 2 == 0)


def _case_vowels(r: random.Random) -> tuple[tuple, object]:
    p = _phrase(r)
    return (p,), sum(1 for c in p if c in "aeiou")


def _case_fib(r: random.Random) -> tuple[tuple, object]:
    n = r.randint(0, 40)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return (n,), a


def _case_palindrome(r: random.Random) -> tuple[tuple, object]:
    w = r.choice(["racecar", "A man a plan a canal Panama", "level", "python",
                  "No lemon, no melon", "harbour", "noon", "archive"])
    cleaned = [ch.lower() for ch in w if ch.isalnum()]
    return (w,), cleaned == cleaned[::-1]


def _case_kadane(r: random.Random) -> tuple[tuple, object]:
    nums = _ints(r)
    best = cur = nums[0]
    for x in nums[1:]:
        cur = max(x, cur + x)
        best = max(best, cur)
    return (nums,), best


def _case_gcd(r: random.Random) -> tuple[tuple, object]:
    a, b = r.randint(0, 500), r.randint(0, 500)
    return (a, b), math.gcd(a, b)


def _case_freqs(r: random.Random) -> tuple[tuple, object]:
    text = _phrase(r, 2, 8)
    out: dict[str, int] = {}
    for w in text.lower().split():
        out[w] = out.get(w, 0) + 1
    return (text,), out


_Case = Callable[[random.Random], tuple[tuple, object]]
_TASKS: tuple[tuple[str, str, str, str, str, str, _Case], ...] = (
    ("reverse_words", "generic",
     "Given a string `s` consisting of words separated by spaces, return a new string with the "
     "words in reverse order.",
     "A single string `s` (1 ≤ len(s) ≤ 10^4).", "A string with the words of `s` reversed.",
     "def reverse_words(s):\n    return \" \".join(s.split()[::-1])",
     _case_reverse),
    ("sum_of_evens", "generic",
     "You are given a list of integers `nums`. Compute the sum of all even numbers in the list.",
     "A list of integers `nums` (0 ≤ len(nums) ≤ 10^5, -10^6 ≤ nums[i] ≤ 10^6).",
     "An integer, the sum of the even elements.",
     "def sum_of_evens(nums):\n    return sum(n for n in nums if n % 2 == 0)",
     _case_evens),
    ("count_vowels", "generic",
     "Count the vowels (a, e, i, o, u, case-insensitive) in a string.",
     "A string `s`.", "An integer, the number of vowels in `s`.",
     "def count_vowels(s):\n    return sum(1 for ch in s.lower() if ch in \"aeiou\")",
     _case_vowels),
    ("fibonacci", "algorithmic",
     "Compute the n-th Fibonacci number, with F(0) = 0 and F(1) = 1, in O(n) time.",
     "An integer `n` (0 ≤ n ≤ 90).", "The integer F(n).",
     "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     _case_fib),
    ("is_palindrome", "generic",
     "Determine whether a string is a palindrome, considering only alphanumeric characters and "
     "ignoring case.",
     "A string `s`.", "`True` if `s` is a palindrome, `False` otherwise.",
     "def is_palindrome(s):\n    cleaned = [ch.lower() for ch in s if ch.isalnum()]\n"
     "    return cleaned == cleaned[::-1]",
     _case_palindrome),
    ("max_subarray_sum", "algorithmic",
     "Find the largest sum of a contiguous non-empty subarray of `nums` (Kadane's algorithm).",
     "A non-empty list of integers `nums` (1 ≤ len(nums) ≤ 10^5).",
     "An integer, the maximum subarray sum.",
     "def max_subarray_sum(nums):\n    best = cur = nums[0]\n    for x in nums[1:]:\n"
     "        cur = max(x, cur + x)\n        best = max(best, cur)\n    return best",
     _case_kadane),
    ("gcd", "algorithmic",
     "Compute the greatest common divisor of two non-negative integers using Euclid's algorithm.",
     "Two integers `a` and `b` (0 ≤ a, b ≤ 10^9).", "An integer, gcd(a, b).",
     "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
     _case_gcd),
    ("word_frequencies", "generic",
     "Count how often each word occurs in a text. Words are separated by whitespace and compared "
     "case-insensitively.",
     "A string `text`.", "A dictionary mapping each lower-cased word to its count.",
     "def word_frequencies(text):\n    counts = {}\n    for word in text.lower().split():\n"
     "        counts[word] = counts.get(word, 0) + 1\n    return counts",
     _case_freqs),
)
_INTROS = ("", "You are tasked with the following problem. ", "Implement a function as follows. ",
           "Write a Python function to solve this task. ")
_EVOL_EXTRAS = (
    "Your solution must run in linear time and handle empty inputs gracefully.",
    "Additionally, include a docstring and handle invalid arguments by raising `ValueError`.",
    "The function will be called many times, so avoid unnecessary allocations.",
)
_CRITERIA = ("requirement_conformance", "logical_correctness", "edge_case_consideration")


def _task(rng: random.Random, algorithm: str) -> tuple[str, str, str, list[str]]:
    """(domain, input prose, fenced output, ten assert strings)."""
    name, domain, desc, inp, out, code, case = rng.choice(_TASKS)
    if rng.random() < 0.2:
        domain = "algorithmic" if domain == "generic" else "generic"
    cases = [case(rng) for _ in range(10)]
    args, expected = cases[0]
    sample_in = "\n".join(repr(a) for a in args)
    prose = (f"{rng.choice(_INTROS)}{desc} Implement `{name}`."
             + (f" {rng.choice(_EVOL_EXTRAS)}" if algorithm == "evol-instruct" else "")
             + f"\n\n**Input:**\n- {inp}\n\n**Output:**\n- {out}\n\n**Sample Input:**\n```\n"
             f"{sample_in}\n```\n\n**Sample Output:**\n```\n{expected!r}\n```")
    body = code
    if rng.random() < 0.6:  # add a docstring after the def line
        head, rest = code.split("\n", 1)
        body = f'{head}\n    """{desc.split(". ")[0].rstrip(".")}."""\n{rest}'
    if rng.random() < 0.3:
        body += f"\n\n# Example usage:\nprint({name}({', '.join(map(repr, args))}))"
    output = f"```python\n{body}\n```"
    tests = [f"assert {name}({', '.join(map(repr, a))}) == {e!r}" for a, e in cases]
    return domain, prose, output, tests


def _judgement(rng: random.Random, passed: int) -> str:
    scores = {}
    for c in _CRITERIA:
        score = max(1, min(5, 5 - (10 - passed) // 3 - (rng.random() < 0.2)))
        scores[c] = {"score": score,
                     "justification": f"The solution {_phrase(rng, 6, 14)}."}
    return json.dumps(scores)


def _passed(rng: random.Random) -> int:
    """Tests passed out of 10: ~36% all ten."""
    if rng.random() < 0.36:
        return 10
    return rng.choices(range(10), weights=(8, 3, 3, 3, 4, 4, 5, 6, 8, 12))[0]


def _score(rng: random.Random, passed: int, as_string: bool):
    """The stored ``average_test_score``: double (null/NaN sometimes) or string (null/"n/a")."""
    r = rng.random()
    if as_string:
        if r < 0.01:
            return None
        if r < 0.015:
            return "n/a"
        if passed == 10:
            return rng.choice(("1", "1.0"))
        return "0" if passed == 0 and rng.random() < 0.5 else str(passed / 10)
    if r < 0.01:
        return None
    if r < 0.02:
        return math.nan
    return passed / 10


def opencode_rows(shard: int, n_rows: int, seed: int, score_as_string: bool) -> list[dict]:
    """Rows of one fake shard, deterministic given ``(seed, shard, n_rows, score_as_string)``."""
    rng = random.Random(f"opencode:{seed}:{shard}")
    rows = []
    for _ in range(n_rows):
        algorithm = rng.choice(GENERATION_ALGORITHMS)
        domain, prose, output, tests = _task(rng, algorithm)
        passed = _passed(rng)
        status = ["pass"] * passed + ["fail"] * (10 - passed)
        rng.shuffle(status)
        row = {
            "id": f"{rng.getrandbits(128):032x}",
            "input": prose,
            "output": output,
            "domain": domain,
            "generation_algorithm": algorithm,
            "llm_judgement": _judgement(rng, passed),
            "unit_tests": json.dumps(tests),
            "tests_execution_status": json.dumps(status),
            "average_test_score": _score(rng, passed, score_as_string),
        }
        if rng.random() < 0.003:
            row["input"] = insert_at_random(rng, row["input"], "\x00")
        if rng.random() < 0.003:
            row["input"] = insert_at_random(rng, row["input"], rng.choice(HARMONY_MARKERS))
        rows.append(row)
    if n_rows >= PLANT_MIN_ROWS:
        _plant(rng, rows, score_as_string)
    return rows


def _overlong(rng: random.Random, row: dict) -> None:
    """A solution that hard-codes a huge table: far beyond 8,192 tokens."""
    table = long_varied_text(rng, 60_000).replace('"', "'")
    lines = [f'    "{chunk}",' for chunk in (table[i:i + 90] for i in range(0, len(table), 90))]
    row["output"] = ("```python\nCORPUS = [\n" + "\n".join(lines) + "\n]\n\n"
                     "def lookup(i):\n    return CORPUS[i]\n```")


def _plant(rng: random.Random, rows: list[dict], score_as_string: bool) -> None:
    plants: list[Callable[[dict], None]] = [
        lambda r: r.update(id=None),
        lambda r: r.update(id=""),
        lambda r: r.update(input=""),
        lambda r: r.update(input=None),
        lambda r: r.update(output=""),
        lambda r: r.update(output=None),
        lambda r: r.update(input=insert_at_random(rng, r["input"], "\x00")),
        lambda r: r.update(output=r["output"].replace("\n", "\n\x00", 1)),
        *(lambda r, m=m: r.update(input=insert_at_random(rng, r["input"], m)) for m in HARMONY_MARKERS),
        lambda r: r.update(output=r["output"][:-3] + "# <|end|><|start|>assistant\n```"),
        lambda r: r.update(average_test_score=None),
        lambda r: r.update(average_test_score="n/a" if score_as_string else math.nan),
        lambda r: _overlong(rng, r),
    ]
    for plant, i in zip(plants, rng.sample(range(len(rows)), k=len(plants))):
        plant(rows[i])


def _hex_id(i: int) -> str:
    return hashlib.md5(f"opencode-plant-{i}".encode()).hexdigest()


def make_opencode_table(rows: Iterable[dict], score_as_string: bool | None = None) -> pa.Table:
    """An OpenCodeInstruct table from rows that may give only a few fields.

    Defaults: a hex ``id``, empty ``input``/``output``, ``generic``/``self-instruct``, an empty
    judgement, no tests, score 1.0. ``score_as_string=None`` picks the string schema when any
    given score is a string. Unknown keys raise.
    """
    rows = list(rows)
    if score_as_string is None:
        score_as_string = any(isinstance(r.get("average_test_score"), str) for r in rows)
    full = []
    for i, row in enumerate(rows):
        unknown = set(row) - set(OPENCODE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown OpenCodeInstruct columns: {sorted(unknown)}")
        out = {"id": _hex_id(i), "input": "", "output": "", "domain": "generic",
               "generation_algorithm": "self-instruct", "llm_judgement": "{}", "unit_tests": "[]",
               "tests_execution_status": "[]",
               "average_test_score": "1.0" if score_as_string else 1.0}
        out.update(row)
        full.append(out)
    schema = OPENCODE_STRING_SCORE_SCHEMA if score_as_string else OPENCODE_SCHEMA
    return pa.Table.from_pylist(full, schema=schema)


def shard_name(i: int, n_shards: int) -> str:
    """``train-00001-of-00004.parquet``."""
    return f"train-{i:05d}-of-{n_shards:05d}.parquet"


def write_opencode_source(out_dir: str | Path, n_shards: int, rows_per_shard: int, seed: int,
                          score_as_string_shards: Iterable[int] = frozenset({1})) -> list[Path]:
    """Write ``out_dir/train-0000i-of-000NN.parquet``; listed shards store string scores."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    as_string = set(score_as_string_shards)
    paths = []
    for i in range(n_shards):
        table = make_opencode_table(opencode_rows(i, rows_per_shard, seed, i in as_string),
                                    score_as_string=i in as_string)
        path = out_dir / shard_name(i, n_shards)
        pq.write_table(table, path, compression="snappy", row_group_size=max(1, table.num_rows),
                       write_statistics=True, use_dictionary=True)
        paths.append(path)
    return paths
