"""One Harmony renderer for every builder.

An example is rendered as: system (default content, reasoning effort, no date) + user prompt
+ optional assistant `analysis` + assistant `final` ending in `<|return|>`: byte for byte what
``render_conversation_for_training(conv, RenderConversationConfig(auto_drop_analysis=False))``
produces. For speed the tokens are assembled here from the fixed special-token frames plus
``encode_ordinary`` of each text (text is never parsed for special tokens); the frames are
taken from openai-harmony itself and the assembly is checked against it at construction.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import render_check
from .tokenizer import HarmonyTokenizer

REASONING_EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    assistant_token_start: int
    analysis_token_count: int
    final_token_count: int


def harmony_system_content(effort: str):
    from openai_harmony import ReasoningEffort, SystemContent

    if effort not in REASONING_EFFORTS:
        raise ValueError(f"reasoning effort must be one of {REASONING_EFFORTS}, got {effort!r}")
    return (
        SystemContent.new()
        .with_reasoning_effort(ReasoningEffort(effort.capitalize()))
        .with_conversation_start_date(None)
    )


def harmony_conversation(prompt: str, reasoning: str, final: str, effort: str):
    """The conversation openai-harmony would be given for this example (texts already clean)."""
    from openai_harmony import Conversation, Message, Role

    messages = [
        Message.from_role_and_content(Role.SYSTEM, harmony_system_content(effort)),
        Message.from_role_and_content(Role.USER, prompt),
    ]
    if reasoning:
        messages.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
    messages.append(Message.from_role_and_content(Role.ASSISTANT, final).with_channel("final"))
    return Conversation.from_messages(messages)


def reference_render(tokenizer: HarmonyTokenizer, prompt: str, reasoning: str, final: str, effort: str) -> Rendered:
    """openai-harmony's own training render: slow, the definition of correct."""
    from openai_harmony import Conversation, RenderConversationConfig, Role

    conv = harmony_conversation(prompt, reasoning, final, effort)
    enc = tokenizer.harmony
    ids = enc.render_conversation_for_training(conv, RenderConversationConfig(auto_drop_analysis=False))
    start = len(enc.render_conversation_for_completion(Conversation.from_messages(conv.messages[:2]), Role.ASSISTANT))
    if reasoning:
        end_id = enc.encode("<|end|>", allowed_special={"<|end|>"})[0]
        analysis = ids.index(end_id, start) + 1 - start
    else:
        analysis = 0
    return Rendered(list(ids), start, analysis, len(ids) - start - analysis)


class RenderedColumns:
    """A batch of rendered examples as flat arrays (no per-token Python objects).

    Row ``i`` holds ``tokens[offsets[i]:offsets[i + 1]]``; ``errors`` maps the index of an
    example that failed to encode to its exception (that row is empty)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, assistant_start: np.ndarray,
                 analysis: np.ndarray, final: np.ndarray, errors: dict[int, Exception]):
        self.tokens = tokens                    # int32, all rows back to back
        self.offsets = offsets                  # int64, len(self) + 1
        self.assistant_start = assistant_start  # int64 per row
        self.analysis = analysis                # int64 per row
        self.final = final                      # int64 per row
        self.errors = errors

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> Rendered:
        return Rendered(self.tokens[self.offsets[i]:self.offsets[i + 1]].tolist(), int(self.assistant_start[i]),
                        int(self.analysis[i]), int(self.final[i]))


class HarmonyRenderer:
    """Fast, exact renderer. ``render_batch`` tokenizes with several threads; the result
    does not depend on the thread count.

    Texts are tokenized into raw token buffers (no Python int per token) and each batch is
    assembled with one vectorised gather: every row is a fixed sequence of *segments*, each
    either a constant Harmony frame or one encoded text."""

    def __init__(self, tokenizer: HarmonyTokenizer, reasoning_effort: str = "high", num_threads: int = 1):
        if reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(f"reasoning effort must be one of {REASONING_EFFORTS}, got {reasoning_effort!r}")
        self.tokenizer = tokenizer
        self.effort = reasoning_effort
        self.num_threads = max(1, int(num_threads))
        self._encode = _buffer_encoder(tokenizer.tiktoken)
        frames = render_check.cached_frames(tokenizer, reasoning_effort)
        checked = frames is not None
        if frames is None:
            frames = self._harmony_frames()
        self._set_frames(frames)
        if not checked:
            self._self_check()
            render_check.store_frames(tokenizer, reasoning_effort, frames)

    def _harmony_frames(self) -> dict[str, list[int]]:
        """The constant token frames, taken from openai-harmony itself."""
        from openai_harmony import Message, Role

        harmony = self.tokenizer.harmony
        special = {name: harmony.encode(name, allowed_special={name})[0]
                   for name in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>")}
        start, end, message, channel = (special[k] for k in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>"))
        ordinary = self.tokenizer.tiktoken.encode_ordinary
        return {
            "system": list(harmony.render(Message.from_role_and_content(Role.SYSTEM, harmony_system_content(self.effort)))),
            "user_head": [start, *ordinary("user"), message],
            # What the model sees before it generates: ...<|start|>assistant
            "assistant_head": [start, *ordinary("assistant")],
            "analysis_head": [channel, *ordinary("analysis"), message],
            "final_head": [channel, *ordinary("final"), message],
            "end": [end],
            "return": [special["<|return|>"]],
        }

    def _set_frames(self, frames: dict[str, list[int]]) -> None:
        self._frames = frames
        self._system = list(frames["system"])
        self._user_head = list(frames["user_head"])
        self._assistant_head = list(frames["assistant_head"])
        self._analysis_head = list(frames["analysis_head"])
        self._final_head = list(frames["final_head"])
        self._end = frames["end"][0]
        self._return = frames["return"][0]
        # The segments of a row, in order: frames, and None for a text (prompt, reasoning,
        # final). Segments 0-2 are the prompt as the model sees it; 3-5 the analysis message
        # through its <|end|>, and 6 the next <|start|>assistant (3-6 absent without
        # reasoning); 6-9 the final message.
        pieces = [
            [*self._system, *self._user_head], None, [self._end, *self._assistant_head],
            self._analysis_head, None, [self._end], self._assistant_head,
            self._final_head, None, [self._return],
        ]
        pool, self._frame_at = [], []
        for piece in pieces:
            self._frame_at.append(None if piece is None else (len(pool), len(piece)))
            pool += piece or []
        self._frame_pool = np.array(pool, dtype=np.int32)

    def _self_check(self) -> None:
        probe = ("Say <|end|> twice.", "The user wants <|start|>assistant text.", "<|return|> done")
        for reasoning in (probe[1], ""):
            got = self.render(probe[0], reasoning, probe[2])
            want = reference_render(self.tokenizer, probe[0], reasoning, probe[2], self.effort)
            if got != want:
                raise RuntimeError(
                    "The fast Harmony renderer disagrees with openai-harmony's own render; this "
                    "openai-harmony version renders differently and the renderer needs updating."
                )
        for text in (*probe, "ünïcödé 中文 😀 \x00 \r\n", ""):
            if np.frombuffer(self._encode(text), np.uint32).tolist() != self.tokenizer.tiktoken.encode_ordinary(text):
                raise RuntimeError("tiktoken's token-buffer encoding differs from encode_ordinary in this "
                                   "tiktoken version; the renderer needs updating.")

    def render(self, prompt: str, reasoning: str, final: str) -> Rendered:
        """Render clean texts (see ``text.clean_text``); empty reasoning means no analysis message."""
        columns = self.render_columns([prompt], [reasoning], [final])
        if columns.errors:
            raise columns.errors[0]
        return columns.row(0)

    def render_batch(self, prompts: Sequence[str], reasonings: Sequence[str], finals: Sequence[str]) -> list[Rendered | Exception]:
        """Render many examples; an example that fails to encode yields its exception instead."""
        columns = self.render_columns(prompts, reasonings, finals)
        return [columns.errors[i] if i in columns.errors else columns.row(i) for i in range(len(columns))]

    def render_columns(self, prompts: Sequence[str], reasonings: Sequence[str], finals: Sequence[str]) -> RenderedColumns:
        """Render many examples into flat arrays; a failing example is listed in ``errors``."""
        n = len(prompts)
        texts = [*prompts, *reasonings, *finals]  # slot-major: text k of row i is texts[k * n + i]
        buffers, errors = self._encode_many(texts)
        failed = {i % n: exc for i, exc in errors.items()}
        text_tokens = np.frombuffer(b"".join(buffers), dtype=np.int32) if buffers else np.zeros(0, np.int32)
        text_lengths = np.fromiter(map(len, buffers), dtype=np.int64, count=len(buffers)) // 4
        text_starts = np.cumsum(text_lengths) - text_lengths + len(self._frame_pool)
        text_lengths = text_lengths.reshape(3, n)
        text_starts = text_starts.reshape(3, n)
        has_reasoning = text_lengths[1] > 0
        if failed:  # a failed example renders as an empty row
            keep = np.ones(n, dtype=bool)
            keep[list(failed)] = False
            text_lengths = text_lengths * keep
        else:
            keep = None
        segments = len(self._frame_at)
        starts = np.empty((n, segments), dtype=np.int64)
        lengths = np.empty((n, segments), dtype=np.int64)
        text_slot = {s: k for k, s in enumerate(s for s, frame in enumerate(self._frame_at) if frame is None)}
        for s, frame in enumerate(self._frame_at):
            if frame is None:
                starts[:, s] = text_starts[text_slot[s]]
                lengths[:, s] = text_lengths[text_slot[s]]
            else:
                starts[:, s] = frame[0]
                lengths[:, s] = frame[1]
        lengths[:, 3:7] *= has_reasoning[:, None]  # no reasoning: no analysis message
        if keep is not None:
            lengths *= keep[:, None]
        seg_lengths = lengths.ravel()
        seg_out = np.cumsum(seg_lengths) - seg_lengths
        total = int(seg_lengths.sum())
        gather = np.repeat(starts.ravel() - seg_out, seg_lengths) + np.arange(total, dtype=np.int64)
        pool = np.concatenate([self._frame_pool, text_tokens])
        row_lengths = lengths.sum(axis=1)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(row_lengths, out=offsets[1:])
        return RenderedColumns(pool[gather], offsets, lengths[:, 0:3].sum(axis=1), lengths[:, 3:6].sum(axis=1),
                               lengths[:, 6:].sum(axis=1), failed)

    def _encode_many(self, texts: list[str]) -> tuple[list[bytes], dict[int, Exception]]:
        """Token buffers of the texts, in order (b"" for an empty or failing text), and the
        exception of each text that failed. Threads take contiguous chunks, so the result does
        not depend on their number."""
        if self.num_threads == 1 or len(texts) < 64:
            return self._encode_chunk(texts, 0)
        step = -(-len(texts) // self.num_threads)
        with ThreadPoolExecutor(self.num_threads) as pool:
            parts = list(pool.map(self._encode_chunk, [texts[i:i + step] for i in range(0, len(texts), step)],
                                  range(0, len(texts), step)))
        buffers: list[bytes] = []
        errors: dict[int, Exception] = {}
        for chunk, failed in parts:
            buffers += chunk
            errors.update(failed)
        return buffers, errors

    def _encode_chunk(self, texts: Sequence[str], base: int) -> tuple[list[bytes], dict[int, Exception]]:
        encode = self._encode
        out: list[bytes] = []
        errors: dict[int, Exception] = {}
        for i, text in enumerate(texts):
            if not text:
                out.append(b"")
                continue
            try:
                tokens = encode(text)
            except Exception as exc:  # counted as an encoding error by the caller
                errors[base + i] = exc
                out.append(b"")
                continue
            out.append(tokens if type(tokens) is bytes else np.asarray(tokens, dtype=np.int32).tobytes())
        return out, errors


def _buffer_encoder(encoding) -> Callable[[str], bytes]:
    """``text -> bytes`` of the tokens as native uint32, equal to ``encode_ordinary(text)``.

    tiktoken's ``encode`` with no special token allowed splits and merges exactly as
    ``encode_ordinary`` (text that looks like a special token stays ordinary text), and its
    buffer variant skips building a Python int per token: half the time of encode_ordinary.
    The self-check compares the two. Falls back to encode_ordinary where tiktoken lacks it."""
    core = getattr(encoding, "_core_bpe", None)
    to_buffer = getattr(core, "encode_to_tiktoken_buffer", None)
    if to_buffer is None:
        ordinary = encoding.encode_ordinary
        return lambda text: np.asarray(ordinary(text), dtype=np.uint32).tobytes()
    no_special: set = set()

    def encode(text: str) -> bytes:
        try:
            return bytes(to_buffer(text, no_special))
        except UnicodeEncodeError:  # lone surrogates: replaced, as encode_ordinary does
            return bytes(to_buffer(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), no_special))

    return encode
