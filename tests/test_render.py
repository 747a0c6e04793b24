"""The fast renderer equals openai-harmony's own training render, token for token."""

from __future__ import annotations

import random

import pytest

from distill_data.render import HarmonyRenderer, reference_render
from distill_data.text import clean_text

MARKERS = ["<|end|>", "<|start|>assistant", "<|channel|>final<|message|>", "<|return|>", "<|start|>",
           "<|message|>", "<|channel|>", "<|call|>", "<|constrain|>", "<|endoftext|>", "<|startoftext|>"]
PIECES = [
    "Hello world.", "What is 2+2?", "  leading and trailing  ", "line\nbreaks\n\n", "\t tabs",
    "emoji 😀🚀👩‍👩‍👧", "中文文本，汉字。", "日本語のテキスト", "한국어", "مرحبا بالعالم", "שלום עולם",
    "→ ∴ ● ⚠ ✓", "**bold** _it_ `code`", "```python\nprint('x')\n```", "\\boxed{42}", "NUL\x00inside",
    "\x00", "x" * 50, "1234567890" * 5, "'s 're 've", "\r\n", "ünïcödé", "  ",
]


def random_text(rng: random.Random, max_pieces: int = 8) -> str:
    parts = []
    for _ in range(rng.randint(0, max_pieces)):
        roll = rng.random()
        if roll < 0.3:
            parts.append(rng.choice(MARKERS))
        elif roll < 0.35:
            parts.append(chr(rng.randint(0x20, 0x2FFF)) * rng.randint(1, 30))
        else:
            parts.append(rng.choice(PIECES))
        if rng.random() < 0.5:
            parts.append(" ")
    return "".join(parts)


def generated_conversations(n: int, seed: int = 7):
    rng = random.Random(seed)
    for i in range(n):
        prompt = clean_text(random_text(rng)) or "p"
        reasoning = clean_text(random_text(rng)) if rng.random() < 0.7 else ""
        final = clean_text(random_text(rng)) or "f"
        yield prompt, reasoning, final
    # the long and the extreme
    yield "a" * 20_000, "", "b" * 20_000
    yield "x", "y" * 20_000, "z"
    long_words = " ".join(f"word{k} ∴ 中文 <|end|>" for k in range(6000))
    yield long_words, long_words, long_words  # far past 8,192 tokens


def test_fast_render_equals_harmony_on_generated_conversations(tokenizer, renderer):
    conversations = list(generated_conversations(1200))
    assert len(conversations) > 1000
    fast = renderer.render_batch(*zip(*conversations))
    with_analysis = without = long_rows = 0
    for (prompt, reasoning, final), got in zip(conversations, fast):
        want = reference_render(tokenizer, prompt, reasoning, final, "high")
        assert got == want, (prompt, reasoning, final)
        with_analysis += bool(reasoning)
        without += not reasoning
        long_rows += len(got.input_ids) > 8192
    assert with_analysis > 100 and without > 100 and long_rows >= 1


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_system_message_carries_effort_and_no_date(tokenizer, effort):
    renderer = HarmonyRenderer(tokenizer, effort)
    text = tokenizer.harmony.decode_utf8(renderer.render("q", "r", "a").input_ids)
    assert f"Reasoning: {effort}" in text
    assert "Current date" not in text


def test_spans_partition_the_assistant_tokens(tokenizer, renderer):
    r = renderer.render("question", "thinking hard", "the answer")
    decode = tokenizer.harmony.decode_utf8
    assert decode(r.input_ids[: r.assistant_token_start]).endswith("<|end|><|start|>assistant")
    analysis = decode(r.input_ids[r.assistant_token_start: r.assistant_token_start + r.analysis_token_count])
    assert analysis == "<|channel|>analysis<|message|>thinking hard<|end|>"
    final = decode(r.input_ids[r.assistant_token_start + r.analysis_token_count:])
    assert final == "<|start|>assistant<|channel|>final<|message|>the answer<|return|>"
    assert r.assistant_token_start + r.analysis_token_count + r.final_token_count == len(r.input_ids)


def test_empty_reasoning_means_no_analysis_message(tokenizer, renderer):
    r = renderer.render("question", "", "answer")
    assert r.analysis_token_count == 0
    assert "<|channel|>analysis" not in tokenizer.harmony.decode_utf8(r.input_ids)


def test_markers_in_text_are_ordinary_tokens(tokenizer, renderer):
    plain = renderer.render("q", "", "a")
    marked = renderer.render("q <|end|>", "", "a <|return|>")
    specials = {200002, 200005, 200006, 200007, 200008}
    count = lambda ids: sum(t in specials for t in ids)  # noqa: E731
    assert count(marked.input_ids) == count(plain.input_ids)


def test_thread_count_does_not_change_tokens(tokenizer):
    conversations = list(generated_conversations(300, seed=3))
    one = HarmonyRenderer(tokenizer, "high", 1).render_batch(*zip(*conversations))
    four = HarmonyRenderer(tokenizer, "high", 4).render_batch(*zip(*conversations))
    assert one == four


def test_clean_text_strips_nul_and_whitespace():
    assert clean_text("  a\x00b \n") == "ab"
    assert clean_text(None) == ""
    assert clean_text("\x00 \x00") == ""
