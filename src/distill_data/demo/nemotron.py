"""Fake nvidia/Nemotron-Math-v2 JSON lines (see /work/shared/SOURCES.md §3).

Lines imitate ``data/low.jsonl``: a math problem, its answer as a string, and a chat
trajectory whose assistant message carries the chain of thought in ``reasoning_content`` and the
final answer with ``\\boxed{…}`` in ``content``. What a streaming reader must survive is
reproduced: key order varies between lines, null-only keys are sometimes left out, message
keys are sometimes missing and sometimes null, ~10% of rows are tool-use trajectories,
``metadata`` is sometimes a JSON string, and ``with_uuid=False`` imitates the ``high`` files
(no ``uuid`` key, url fields null). Files of at least ``PLANT_MIN_ROWS`` rows also get one of each
planted quirk: empty reasoning, no assistant or no user message, a truncated (invalid) JSON line,
a JSON array line, a blank line, NULs, literal Harmony markers and one over-long row.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from fractions import Fraction
from pathlib import Path

from distill_data.demo.synth import HARMONY_MARKERS, insert_at_random, long_varied_text, sentence

INSTRUCTION = ("Solve the following math problem. Make sure to put the answer (and only answer) "
               "inside \\boxed{}.")
TOOL_NAME = "stateful_python_code_exec"
TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": ("Call this function to execute Python code in a stateful Jupyter notebook "
                        "environment. Python will respond with the output of the execution or "
                        "time out after 120.0 seconds."),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Code to execute"}},
            "required": ["code"],
        },
    },
}
#: Key order of most lines; some lines shuffle it.
KEYS = ("problem", "expected_answer", "original_expected_answer", "changed_answer_to_majority",
        "data_source", "messages", "tools", "metadata", "license", "used_in", "uuid", "url",
        "user_url", "user_name")
DATA_SOURCES = ("AoPS", "StackExchange-Math")
_MESSAGE_KEYS = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name")
_LICENSES = {"AoPS": "CC BY 4.0", "StackExchange-Math": "CC BY-SA 4.0"}
_USED_IN = ([], ["nano_v3"], ["nano_v3", "super_v3"])
_HANDLES = ("mathlete42", "euler_fan", "quasar", "pi_r_squared", "tangent", "moduloman",
            "kappa", "lemma_hunter", "ζ-function", "Дмитрий", "李雷")
PLANT_MIN_ROWS = 200
#: Deletes a key in ``nemotron_line`` overrides.
OMIT = object()


# --------------------------------------------------------------------------------------------
# Problems: (problem, answer, one worked step, python code that prints the answer)
# --------------------------------------------------------------------------------------------


def _frac(q: Fraction) -> str:
    """``Fraction`` as a LaTeX answer: ``7``, ``\\frac{3}{4}``, ``-\\frac{5}{2}``."""
    if q.denominator == 1:
        return str(q.numerator)
    sign = "-" if q < 0 else ""
    return f"{sign}\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


def _problem(rng: random.Random) -> tuple[str, str, str, str]:
    kind = rng.randrange(8)
    if kind == 0:
        a, b, m = rng.randint(2, 19), rng.randint(10, 500), rng.choice((7, 11, 13, 17, 19, 23, 97))
        ans = str(pow(a, b, m))
        return (f"Find the remainder when ${a}^{{{b}}}$ is divided by ${m}$.", ans,
                f"By Fermat's little theorem, ${a}^{{{b}}} \\equiv {ans} \\pmod{{{m}}}$.",
                f"print(pow({a}, {b}, {m}))")
    if kind == 1:
        n = rng.randint(12, 5000)
        ans = str(sum(1 for d in range(1, n + 1) if n % d == 0))
        return (f"How many positive divisors does ${n}$ have?", ans,
                f"Factor ${n}$ and multiply the incremented exponents to get ${ans}$.",
                f"n = {n}\nprint(sum(1 for d in range(1, n + 1) if n % d == 0))")
    if kind == 2:
        n = rng.randint(5, 200)
        ans = str(n * (n + 1) * (2 * n + 1) // 6)
        return (f"Compute $\\sum_{{k=1}}^{{{n}}} k^2$.", ans,
                f"Using $\\frac{{n(n+1)(2n+1)}}{{6}}$ with $n={n}$ gives ${ans}$.",
                f"print(sum(k * k for k in range(1, {n + 1})))")
    if kind == 3:
        a, b, c = rng.choice((2, 3, 4, 5, 6, 7, 8, 9, -3)), rng.randint(-30, 30), rng.randint(-30, 30)
        ans = _frac(Fraction(c - b, a))
        return (f"Solve for $x$: ${a}x + {b} = {c}$.", ans,
                f"Subtract ${b}$ and divide by ${a}$: $x = \\frac{{{c - b}}}{{{a}}}$.",
                f"from fractions import Fraction\nprint(Fraction({c} - {b}, {a}))")
    if kind == 4:
        r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
        s, p = r1 + r2, r1 * r2
        ans = str(s * s - 2 * p)
        return (f"Find the sum of the squares of the roots of $x^2 - ({s})x + ({p}) = 0$.", ans,
                f"By Vieta, $r_1^2 + r_2^2 = ({s})^2 - 2({p}) = {ans}$.",
                f"s, p = {s}, {p}\nprint(s * s - 2 * p)")
    if kind == 5:
        n = rng.randint(6, 30)
        k = rng.randint(2, min(6, n - 1))
        ans = str(math.comb(n, k))
        return (f"In how many ways can a committee of {k} be chosen from {n} people?", ans,
                f"This is $\\binom{{{n}}}{{{k}}} = {ans}$.",
                f"import math\nprint(math.comb({n}, {k}))")
    if kind == 6:
        n, k = rng.randint(1, 6), rng.randint(1, 5)
        ans = _frac(Fraction(n ** (k + 1), k + 1))
        return (f"Evaluate $\\int_0^{{{n}}} x^{{{k}}}\\,dx$.", ans,
                f"The antiderivative is $\\frac{{x^{{{k + 1}}}}}{{{k + 1}}}$, so the value is ${ans}$.",
                f"from fractions import Fraction\nprint(Fraction({n}**{k + 1}, {k + 1}))")
    a, b, c = rng.randint(1, 6), rng.randint(-12, 12), rng.randint(-20, 20)
    ans = _frac(c - Fraction(b * b, 4 * a))
    return (f"Let $f(x) = {a}x^2 + ({b})x + ({c})$. Find the minimum value of $f$ over the reals.",
            ans, f"The vertex is at $x = -\\frac{{{b}}}{{{2 * a}}}$, giving ${ans}$.",
            f"from fractions import Fraction\na, b, c = {a}, {b}, {c}\n"
            "print(c - Fraction(b * b, 4 * a))")


def _reasoning(rng: random.Random, problem: str, step: str, answer: str) -> str:
    parts = [f"Okay, let's see. The problem: {problem[:120]}", step]
    target = rng.randint(600, 2400)
    total = sum(map(len, parts))
    while total < target:
        r = rng.random()
        if r < 0.1:
            part = rng.choice(("Wait, let me double-check that.", "Hmm, is that right?",
                               "Alternatively, I could try small cases first."))
        elif r < 0.3:
            x, y = rng.randint(2, 99), rng.randint(2, 99)
            part = f"Check: ${x} \\cdot {y} = {x * y}$ and ${x} + {y} = {x + y}$."
        else:
            part = sentence(rng, "en", 8, 20)
        parts.append(part)
        total += len(part) + 1
    parts.append(f"So the answer is {answer}.")
    return "\n\n".join(parts)


def _content(rng: random.Random, step: str, answer: str) -> str:
    lead = rng.choice(("", "**Solution.** ", "We proceed directly. "))
    tail = rng.choice((f"Therefore, the answer is $\\boxed{{{answer}}}$.",
                       f"**Final Answer**\n\\[\n\\boxed{{{answer}}}\n\\]"))
    return f"{lead}{step}\n\n{tail}"


def _msg(full: bool, role: str, **fields) -> dict:
    """A message; ``full`` lists every key (absent ones as null), else only the present ones."""
    if full:
        return {k: (role if k == "role" else fields.get(k)) for k in _MESSAGE_KEYS}
    return {"role": role, **{k: v for k, v in fields.items() if v is not None}}


def _metadata(rng: random.Random) -> dict:
    out = {}
    for effort in ("low", "medium", "high"):
        for tool in ("with", "no"):
            count = rng.choice((4, 8, 16))
            passed = rng.randint(0, count)
            out[f"reason_{effort}_{tool}_tool"] = {"count": count, "pass": passed,
                                                    "accuracy": passed / count}
    return out


def _messages(rng: random.Random, problem: str, answer: str, step: str, code: str,
              tool: bool) -> list[dict]:
    full = rng.random() < 0.5
    user = _msg(full, "user", content=f"{INSTRUCTION}\n\n{problem}")
    final = _msg(full, "assistant", content=_content(rng, step, answer),
                 reasoning_content=_reasoning(rng, problem, step, answer))
    if not tool:
        return [user, final]
    out = [user]
    for round_ in range(rng.choice((1, 1, 2))):
        call_id = f"call_{rng.getrandbits(64):016x}"
        check = code if round_ == 0 else f"# double-check\n{code}"
        out.append(_msg(full, "assistant", content="",
                        reasoning_content=f"Let me verify this with Python. {sentence(rng, 'en')}",
                        tool_calls=[{"id": call_id, "type": "function",
                                     "function": {"name": TOOL_NAME,
                                                  "arguments": json.dumps({"code": check})}}]))
        out.append(_msg(full, "tool", content=f"{answer}\n", tool_call_id=call_id, name=TOOL_NAME))
    final["reasoning_content"] = f"The tool printed {answer}, which matches. " + final["reasoning_content"]
    return out + [final]


def _record(rng: random.Random, tool: bool, with_uuid: bool) -> dict:
    problem, answer, step, code = _problem(rng)
    source = rng.choices(DATA_SOURCES, weights=(3, 1))[0]
    r = rng.random()
    if r < 0.55:
        original, changed = answer, False
    elif r < 0.9:
        original, changed = None, False
    else:
        original, changed = rng.choice((f"{answer}.0", f"x = {answer}", str(rng.randint(0, 999)))), True
    record = {
        "problem": problem,
        "expected_answer": answer,
        "original_expected_answer": original,
        "changed_answer_to_majority": changed,
        "data_source": source,
        "messages": _messages(rng, problem, answer, step, code, tool),
        "tools": [TOOL_SCHEMA] if tool else ([] if rng.random() < 0.85 else None),
        "metadata": _metadata(rng),
        "license": _LICENSES[source],
        "used_in": list(rng.choice(_USED_IN)),
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "url": None, "user_url": None, "user_name": None,
    }
    if rng.random() < 0.05:
        record["metadata"] = json.dumps(record["metadata"])
    if with_uuid and rng.random() < 0.95:
        uid, name = rng.randint(1000, 999_999), rng.choice(_HANDLES)
        if source == "AoPS":
            record["url"] = (f"https://artofproblemsolving.com/community/c{rng.randint(1, 9999)}"
                             f"h{rng.randint(10_000, 3_000_000)}p{rng.randint(10_000, 30_000_000)}")
            record["user_url"] = f"https://artofproblemsolving.com/community/user/{uid}"
        else:
            record["url"] = f"https://math.stackexchange.com/questions/{rng.randint(1, 5_000_000)}"
            record["user_url"] = f"https://math.stackexchange.com/users/{uid}/{name}"
        record["user_name"] = name
    if not with_uuid:
        del record["uuid"]
    return record


def _serialize(rng: random.Random, record: dict) -> str:
    """One line: canonical or shuffled key order; null-valued keys sometimes left out."""
    keys = list(record)
    if rng.random() < 0.3:
        rng.shuffle(keys)
    drop_nulls = rng.random() < 0.3
    return json.dumps({k: record[k] for k in keys if not (drop_nulls and record[k] is None)},
                      ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Planted quirks
# --------------------------------------------------------------------------------------------


def _assistant(record: dict) -> dict:
    return [m for m in record["messages"] if m["role"] == "assistant"][-1]


def _insert_reasoning(snippet: str):
    def apply(rng: random.Random, record: dict) -> None:
        msg = _assistant(record)
        msg["reasoning_content"] = insert_at_random(rng, msg["reasoning_content"], snippet)
    return apply


def _set_reasoning(value):
    def apply(rng: random.Random, record: dict) -> None:
        msg = _assistant(record)
        if value is OMIT:
            msg.pop("reasoning_content", None)
        else:
            msg["reasoning_content"] = value
    return apply


def _nul_in_problem(rng: random.Random, record: dict) -> None:
    record["problem"] = insert_at_random(rng, record["problem"], "\x00")
    record["messages"][0]["content"] = f"{INSTRUCTION}\n\n{record['problem']}"


def _marker_in_content(rng: random.Random, record: dict) -> None:
    msg = _assistant(record)
    msg["content"] = "<|start|>assistant<|channel|>final<|message|>" + msg["content"] + "<|return|>"


def _overlong(rng: random.Random, record: dict) -> None:
    _assistant(record)["reasoning_content"] = long_varied_text(rng, 60_000)


def _no_assistant(rng: random.Random, record: dict) -> None:
    record["messages"] = [m for m in record["messages"] if m["role"] == "user"]


def _no_user(rng: random.Random, record: dict) -> None:
    record["messages"] = [m for m in record["messages"] if m["role"] != "user"]


def _metadata_string(rng: random.Random, record: dict) -> None:
    if not isinstance(record["metadata"], str):
        record["metadata"] = json.dumps(record["metadata"])


def _changed_answer(rng: random.Random, record: dict) -> None:
    record["original_expected_answer"] = f"{record['expected_answer']}.0"
    record["changed_answer_to_majority"] = True


_PLANTS = (
    _set_reasoning(""), _set_reasoning(None), _set_reasoning(OMIT),
    _no_assistant, _no_user, _nul_in_problem, _insert_reasoning("\x00"),
    *(_insert_reasoning(m) for m in HARMONY_MARKERS), _marker_in_content,
    _overlong, _metadata_string, _changed_answer,
)


def nemotron_records(n_rows: int, seed: int, with_uuid: bool = True) -> list[dict]:
    """``n_rows`` records (as dicts, canonical key order), deterministic given the arguments."""
    rng = random.Random(f"nemotron_math:{seed}:{int(with_uuid)}")
    tools = [rng.random() < 0.10 for _ in range(n_rows)]
    if n_rows >= PLANT_MIN_ROWS and not any(tools):
        tools[rng.randrange(n_rows)] = True
    records = [_record(rng, tool, with_uuid) for tool in tools]
    for record in records:
        if rng.random() < 0.003:
            _insert_reasoning("\x00")(rng, record)
        if rng.random() < 0.003:
            _insert_reasoning(rng.choice(HARMONY_MARKERS))(rng, record)
    if n_rows >= PLANT_MIN_ROWS:
        plain = [i for i, t in enumerate(tools) if not t]
        for plant, i in zip(_PLANTS, rng.sample(plain, k=len(_PLANTS))):
            plant(rng, records[i])
    return records


def write_nemotron_jsonl(path: str | Path, n_rows: int, seed: int, with_uuid: bool = True) -> Path:
    """Write a ``low.jsonl``-like file of ``n_rows`` JSON objects.

    With at least ``PLANT_MIN_ROWS`` rows, three junk lines are added on top (a truncated JSON
    object, a JSON array, a blank line), so the file then has ``n_rows + 3`` lines.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"nemotron_math:lines:{seed}:{int(with_uuid)}")
    records = nemotron_records(n_rows, seed, with_uuid)
    lines = [_serialize(rng, r) for r in records]
    if n_rows >= PLANT_MIN_ROWS:
        truncated = lines[rng.randrange(n_rows)]
        junk = [truncated[: len(truncated) // 2],
                json.dumps([records[rng.randrange(n_rows)]["problem"], 1, None]),
                ""]
        for line in junk:
            lines.insert(rng.randrange(1, len(lines)), line)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def nemotron_line(**overrides) -> dict:
    """A plain, valid non-tool record; keyword overrides replace keys (``OMIT`` deletes one).

    ``messages`` is built from the (possibly overridden) ``problem`` and ``expected_answer``
    unless given.
    """
    problem = overrides.get("problem", "Compute $2 + 2$.")
    answer = overrides.get("expected_answer", "4")
    record = {
        "problem": problem,
        "expected_answer": answer,
        "original_expected_answer": answer,
        "changed_answer_to_majority": False,
        "data_source": "AoPS",
        "messages": [
            {"role": "user", "content": f"{INSTRUCTION}\n\n{problem}"},
            {"role": "assistant", "content": f"Adding gives $\\boxed{{{answer}}}$.",
             "reasoning_content": f"Okay, let's see. The problem: {problem} So the answer is {answer}."},
        ],
        "tools": [],
        "metadata": {f"reason_{e}_{t}_tool": {"count": 8, "pass": 8, "accuracy": 1.0}
                     for e in ("low", "medium", "high") for t in ("with", "no")},
        "license": "CC BY 4.0",
        "used_in": [],
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nemotron-line:{problem}")),
        "url": None, "user_url": None, "user_name": None,
    }
    for key, value in overrides.items():
        if value is OMIT:
            record.pop(key, None)
        else:
            record[key] = value
    return record
