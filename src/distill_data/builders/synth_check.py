"""The SYNTH result check: does a `math exercise` / `math mcq` answer state its `result:`?

Judged as a reader would judge the answer (issue 8):

- `math mcq`: the option the answer chooses, wherever it stands (`C. -5`, `C) -5`, `**C. -5**`,
  `Answer: C`, `The answer is (C)`), and the value of that option (the value on the answer's
  line, and the one the option list of the query or the answer gives that letter: either may
  agree). The last choice stated wins; a block of consecutive option lines (`A. … B. … C. …`)
  is a listing, not a choice. An answer that chooses no option states a result only by an
  explicit `Answer: 5` or `\\boxed{5}`.
- `math exercise`: the final stated result, looked for in this order, the first kind found
  deciding: the last `\\boxed{…}`; lines labelled `Answer:` / `Final answer:` / `Result:` (or
  `The answer is …`); bold spans (`**16,020 pounds**`); else the answer's last line that has a
  number, and the number it starts with. Within the kind found, the answer agrees when any
  stated value agrees (`**16,020 pounds** … **2 trucks**` states 16020); in an equation only
  the value after the last `=` counts as stated (`12 − 17 = 5` states 5, not 12).
- Two numbers agree when they are equal at the precision of the less precise of the two,
  rounding half away from zero: `0.33` ~ `0.3333`, `2.5` ~ `3`, `0.125` ~ `0.13`, `-5` !~ `5`.
  A fraction `a/b` is exact.

`check_result` returns None (agrees), `result_mismatch`, or `no_result_stated` (the answer states
nothing a reader could compare: no number, no chosen option).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

DROP_RESULT_MISMATCH = "result_mismatch"
DROP_NO_RESULT_STATED = "no_result_stated"

MCQ_EXERCISE = "math mcq"


@dataclass(frozen=True)
class Number:
    """A stated number: its exact value and the decimals it shows (None: exact, a fraction)."""

    value: Decimal
    decimals: int | None
    percent: bool = False  # written with `%`: `25%` also agrees with 0.25


# --- numbers ------------------------------------------------------------------------------------

_MINUS = "-\u2212\u2013"  # hyphen, minus sign, en dash
_GROUP_SEP = ",\u202f\u00a0\u2009'"  # thousands separators (comma, narrow/no-break/thin space, ')
_NUMBER = re.compile(
    rf"(?<![\w.,/])"                                  # not inside a word or another number
    rf"(?P<sign>[{_MINUS}](?=[$€£¥]?\d))?"            # a minus attached to the number
    r"[$€£¥]?"
    rf"(?P<int>\d{{1,3}}(?:[{_GROUP_SEP}]\d{{3}})+(?![\d])|\d+)"
    r"(?:(?P<dec>[.,])(?P<frac>\d+))?"
    r"(?:/(?P<den>\d+)(?![\d.]))?"
    r"(?P<pct>\s?%)?"
)
_FRAC_LATEX = re.compile(r"\\[dt]?frac\{\s*([-\u2212]?\d+)\s*\}\{\s*(\d+)\s*\}")
_MARKUP = re.compile(r"[*`_]{1,3}|\\[()\[\]]|\$\$")


def _strip_markup(text: str) -> str:
    text = _MARKUP.sub("", text)
    return _FRAC_LATEX.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)


def parse_numbers(text: str) -> list[Number]:
    """Every number in `text`, in order: markup, currency and thousands separators ignored."""
    found: list[Number] = []
    for m in _NUMBER.finditer(_strip_markup(text)):
        integer = re.sub(rf"[{_GROUP_SEP}]", "", m.group("int"))
        dec, frac = m.group("dec"), m.group("frac")
        if dec == "," and (len(frac) == 3 or m.group("den")):
            # `1,234` is read by the group alternative; a comma before 3 digits here means a list
            found.append(_number(integer, None, m.group("sign")))
            continue
        number = _number(integer, frac, m.group("sign"))
        if m.group("den") and not frac:
            den = Decimal(m.group("den"))
            if den != 0:
                number = Number(number.value / den, None)
        if m.group("pct"):
            number = Number(number.value, number.decimals, percent=True)
        found.append(number)
    return found


def _number(integer: str, frac: str | None, sign: str | None) -> Number:
    text = integer + (f".{frac}" if frac else "")
    value = Decimal(text)
    return Number(-value if sign else value, len(frac) if frac else 0)


def stated_numbers(text: str) -> list[Number]:
    """The numbers `text` states as a value: in an equation, those after the last `=` or `≈`."""
    text = _strip_markup(text)
    for sep in ("=", "≈"):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    return parse_numbers(text)


def agree(a: Number, b: Number) -> bool:
    """Equal at the precision of the less precise of the two, rounding half away from zero
    (a percentage also agrees read as a fraction: `25%` ~ `0.25`)."""
    if _agree(a, b):
        return True
    for x, y in ((a, b), (b, a)):
        if y.percent and not x.percent:
            scaled = Number(y.value / 100, None if y.decimals is None else y.decimals + 2)
            if _agree(x, scaled):
                return True
    return False


def _agree(a: Number, b: Number) -> bool:
    if a.decimals is None and b.decimals is None:
        return a.value == b.value
    places = min(d for d in (a.decimals, b.decimals) if d is not None)
    quantum = Decimal(1).scaleb(-places)
    try:
        return (a.value.quantize(quantum, rounding=ROUND_HALF_UP)
                == b.value.quantize(quantum, rounding=ROUND_HALF_UP))
    except InvalidOperation:  # too many digits for the context: compare exactly
        return a.value == b.value


def expected_number(result: str) -> Number | None:
    """The number of a `result:` value (`16020`, `-195.45`, `$1,200`), None when it has none."""
    numbers = parse_numbers(result)
    return numbers[0] if numbers else None


# --- math exercise: the final stated result ------------------------------------------------------

_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
# `Answer` and its translations in the SYNTH languages, `Result`, `Total`, …
_LABEL_WORDS = (r"final\s+answer|answer|result|solution|total|antwort|ergebnis|respuesta|resultado|"
                r"réponse|résultat|risposta|risultato|odpowiedź|wynik|antwoord|resposta|svar|responsum|ответ")
_LABEL = re.compile(
    rf"(?i:\b(?:{_LABEL_WORDS})\b[^\S\n]*(?:is\b|:|=)|\bthe\s+answer\s+is\b)[^\S\n]*(?P<rest>[^\n]*)"
)
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


def result_candidates(answer: str, explicit_only: bool = False) -> list[Number]:
    """The numbers the answer states as its result, from the first kind of statement found
    (boxed, labelled, bold, last line; only the first two when `explicit_only`); [] when it
    states none."""
    boxed = _BOXED.findall(answer)
    if boxed:
        found = stated_numbers(boxed[-1])
        if found:
            return found
    plain = _strip_markup(answer)
    labelled = [n for m in _LABEL.finditer(plain) for n in stated_numbers(m.group("rest"))]
    if labelled or explicit_only:
        return labelled
    bold = [n for span in _BOLD.findall(answer) for n in stated_numbers(span)]
    if bold:
        return bold
    lines = [line for line in plain.splitlines() if line.strip()]
    found: list[Number] = []
    if lines:
        first = parse_numbers(lines[0])
        if first and re.match(r"^\W*\d", lines[0].replace("-", "")):
            found.append(first[0])  # the answer opens with its result: `16020 pounds. …`
    for line in reversed(lines):
        numbers = stated_numbers(line)
        if numbers:
            found.extend(numbers)
            break
    return found


# --- math mcq: the chosen option and its value ---------------------------------------------------

# `C. -5`, `C) -5`, `(C) -5`, `- C. -5`, a bare `C` or `(C)` on its own line
_OPTION_LINE = re.compile(
    r"^\s*(?:[-•]\s*)?\(?(?P<letter>[A-J])(?:(?:\)\.?|\.)[^\S\n]*(?P<value>.*?)|\)?)\s*$")
# `Answer: C`, `The answer is (C)`, `Correct option: C. -5`, `Answer: (C) -5`: the label in any
# case, the letter upper case and standing alone (`Answer: A total of …` chooses nothing). A bare
# `Option A, which gives 3, is wrong` is discussion, not a choice.
_CHOICE_LABEL = re.compile(
    rf"(?i:\b(?:correct\s+answer|correct\s+option|correct\s+choice|{_LABEL_WORDS})\b[^\S\n]*(?:is\b|:)?"
    r"|\bthe\s+answer\s+is\b)[^\S\n]*(?i:option[^\S\n]*)?\(?(?P<letter>[A-J])\)?"
    r"(?:(?P<sep>[.):])[^\S\n]*(?P<rest>[^\n]*)"
    r"|[^\S\n]+(?P<rest2>[-\u2212$€£¥\d][^\n]*)"
    r"|[^\S\n]*(?=[,;]|$|(?i:because|since|as|which)\b))",
    re.M,
)


def option_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, letter, value) of every `X. value` / `X) value` line, markup removed."""
    found = []
    for i, line in enumerate(_strip_markup(text).splitlines()):
        m = _OPTION_LINE.match(line)
        if m:
            found.append((i, m.group("letter"), m.group("value") or ""))
    return found


def option_values(text: str) -> dict[str, str]:
    """Letter → value text of the options listed in `text` (the first listing of each letter)."""
    values: dict[str, str] = {}
    for _, letter, value in option_lines(text):
        values.setdefault(letter, value)
    return values


def _listing_lines(lines: list[tuple[int, str, str]]) -> set[int]:
    """Option lines that belong to a listing: runs of consecutive lines with letters A, B, C…"""
    listed: set[int] = set()
    run: list[tuple[int, str]] = []
    for line_no, letter, _ in lines:
        if run and line_no - run[-1][0] <= 2 and ord(letter) == ord(run[-1][1]) + 1:
            run.append((line_no, letter))
        else:
            if len(run) >= 2:
                listed.update(n for n, _ in run)
            run = [(line_no, letter)]
    if len(run) >= 2:
        listed.update(n for n, _ in run)
    return listed


def chosen_option(answer: str, letters: str = "ABCDEFGHIJ") -> tuple[str, str] | None:
    """(letter, value text as the answer states it, possibly "") of the option the answer
    chooses: the last choice it states. Only `letters` (the query's options) count as choices,
    so that a line such as `J. Kepler showed …` is not read as option J."""
    plain = _strip_markup(answer)
    choices: list[tuple[int, str, str]] = []  # (position, letter, value)
    offsets = [0]
    for line in plain.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    lines = option_lines(answer)
    listed = _listing_lines(lines)
    for line_no, letter, value in lines:
        if line_no not in listed and letter in letters:
            choices.append((offsets[line_no], letter, value))
    for m in _CHOICE_LABEL.finditer(plain):
        if m.group("letter") in letters:
            rest = (m.group("rest") if m.group("sep") else m.group("rest2")) or ""
            choices.append((m.start(), m.group("letter"), rest))
    if not choices:
        return None
    _, letter, value = max(choices, key=lambda c: c[0])
    return letter, value


# --- the check -----------------------------------------------------------------------------------

def check_result(expected: str, answer: str, *, exercise: str | None = None, query: str = "") -> str | None:
    """None when `answer` states the `result:` value `expected`; else the drop reason."""
    want = expected_number(expected)
    if exercise == MCQ_EXERCISE:
        return _check_mcq(expected, want, answer, query)
    if want is None:
        return None  # nothing numeric to check against
    return _judge(want, result_candidates(answer))


def _check_mcq(expected: str, want: Number | None, answer: str, query: str) -> str | None:
    listed = option_values(query)
    choice = chosen_option(answer, "".join(sorted(listed)) or "ABCDEFGHIJ")
    letter_result = re.fullmatch(r"\s*\(?([A-J])\)?\s*", expected)
    if letter_result:  # `result:C`: compare the letters
        if choice is None:
            return DROP_NO_RESULT_STATED
        return None if choice[0] == letter_result.group(1) else DROP_RESULT_MISMATCH
    if want is None:
        return None
    if choice is None:  # no option chosen: only an explicit `Answer: 5` / `\boxed{5}` states one
        return _judge(want, result_candidates(answer, explicit_only=True))
    # the value stated with the choice, and the value the option list gives that letter
    letter, value = choice
    numbers = stated_numbers(value) if value else []
    numbers += stated_numbers(listed.get(letter) or option_values(answer).get(letter) or "")
    return _judge(want, numbers)


def _judge(want: Number, candidates: list[Number]) -> str | None:
    if not candidates:
        return DROP_NO_RESULT_STATED
    return None if any(agree(want, got) for got in candidates) else DROP_RESULT_MISMATCH
