"""The code builder judges rows on Arrow columns (`opencode.judge_batch`) and makes Python
strings only for rows whose verdict needs them: its verdicts must equal `opencode.candidate` of
every row, on the inputs where a shortcut could go wrong (texts that are only whitespace or
NULs, Unicode whitespace, null cells, NaN / string / integer scores, dictionary columns)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from distill_data.builders import opencode
from distill_data.io import category_codes

TEXTS = [None, "", " ", "\x00", " \x00\t", "\u3000\u2003", "\x1c\x1d", "a", " é ", "\x00x\x00", "def f(): pass", "١٢٣"]
IDS = [None, "", " ", "\x00", "id-1", "\u2003é"]
CATS = [None, "", " web ", "web", "\x00", "llm"]


def rows(scores):
    out = []
    n = 0
    for text in TEXTS:
        for other in TEXTS:
            for score in scores:
                out.append({"id": IDS[(n // len(scores)) % len(IDS)], "input": text, "output": other, "domain": CATS[n % len(CATS)],
                            "generation_algorithm": CATS[(n // 2) % len(CATS)], opencode.SCORE_COLUMN: score})
                n += 1
    return out


def verdict(item):
    """A comparable form of a candidate (Example or Drop)."""
    if isinstance(item, opencode.Example):
        return ("example", item.id, item.prompt, item.final, item.group, item.content, tuple(sorted(item.source.items())))
    return ("drop", item.reason, item.detail, tuple(sorted((item.categories or {}).items())))


SCORES = {
    "double": (pa.float64(), [1.0, 0.9, None, math.nan, 1.0000001, 0.0]),
    "float32": (pa.float32(), [1.0, 0.5, None]),
    "string": (pa.string(), ["1", "1.0", " 1 ", "0.9", "x", None, "nan", ""]),
    "int": (pa.int64(), [1, 0, None]),
}


@pytest.mark.parametrize("kind", sorted(SCORES))
@pytest.mark.parametrize("dictionary", [False, True])
def test_judge_batch_equals_candidate(kind, dictionary):
    arrow_type, scores = SCORES[kind]
    data = rows(scores)
    columns = {name: pa.array([r[name] for r in data], pa.string()) for name in opencode.TEXT_COLUMNS}
    if dictionary:
        columns = {name: col.dictionary_encode() for name, col in columns.items()}
    columns[opencode.SCORE_COLUMN] = pa.array([r[opencode.SCORE_COLUMN] for r in data], arrow_type,
                                              from_pandas=False)
    batch = pa.RecordBatch.from_pydict(columns)
    fast = [verdict(item) for item in opencode.judge_batch(batch)]
    slow = [verdict(opencode.candidate(r)) for r in data]
    assert fast == slow
    reasons = {v[1] for v in slow if v[0] == "drop"}
    # the inputs reach every reason of the source, and some rows are kept
    assert reasons >= {opencode.DROP_MISSING_ID, opencode.DROP_EMPTY_PROMPT, opencode.DROP_EMPTY_ANSWER}
    assert any(v[0] == "example" for v in slow)


def test_category_codes_clean_each_value():
    codes, values = category_codes(pa.array([" a ", None, "a", "", "b\x00"], pa.string()))
    assert [values[c] for c in codes] == ["a", None, "a", None, "b"]
    codes, values = category_codes(pa.nulls(3))
    assert [values[c] for c in codes] == [None, None, None]


def test_clean_strings_equal_clean_text_of_each_value():
    """io.clean_strings (the values that need it cleaned in Python, found on the Arrow column)
    gives clean_text of every value: every character Python strips, NULs, nulls, inner spaces."""
    import itertools

    from distill_data.io import clean_strings
    from distill_data.text import clean_text

    spaces = [c for c in map(chr, range(0x110000)) if c.isspace()]
    atoms = ["", "a", "\x00", "é", "\u200b", "\ufeff", "\U0001f600", *spaces]
    values = [None] + ["".join(p) for p in itertools.product(atoms, repeat=3)]
    expected = [clean_text(v) for v in values]
    for column in (pa.array(values, pa.string()), pa.array(values, pa.large_string()),
                   pa.array(values).dictionary_encode()):
        assert clean_strings(column) == expected
    assert clean_strings(pa.nulls(2)) == ["", ""]


def test_normalize_text_skips_nfkc_only_for_ascii():
    """normalize_text leaves NFKC out for ASCII texts: every ASCII character is NFKC-stable,
    and texts with other characters still go through it."""
    import unicodedata

    from distill_data.text import normalize_text

    ascii_text = "".join(map(chr, range(128)))
    assert unicodedata.normalize("NFKC", ascii_text) == ascii_text
    for text in (ascii_text, " A\x00b\tC ", "Ｈｅｌｌｏ ﬁ", "x\u2003y", "ǅ", "Ⅻ"):
        assert normalize_text(text) == " ".join(unicodedata.normalize("NFKC", text.replace("\x00", "").strip()).split()).casefold()
