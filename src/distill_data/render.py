"""One Harmony renderer for every builder.

An example is rendered as: system (default content, reasoning effort, no date) + (for a chat
thread: its earlier turns, each a user message and an assistant `final` message ending in
`<|end|>`) + user prompt + optional assistant `analysis` + assistant `final` ending in
`<|return|>`: byte for byte what
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


def harmony_conversation(prompt: str, reasoning: str, final: str, effort: str,
                         history: Sequence[tuple[str, str]] = ()):
    """The conversation openai-harmony would be given for this example (texts already clean):
    `history` holds earlier (user, assistant final) turns, before the prompt."""
    from openai_harmony import Conversation, Message, Role

    messages = [Message.from_role_and_content(Role.SYSTEM, harmony_system_content(effort))]
    for user, answer in history:
        messages.append(Message.from_role_and_content(Role.USER, user))
        messages.append(Message.from_role_and_content(Role.ASSISTANT, answer).with_channel("final"))
    messages.append(Message.from_role_and_content(Role.USER, prompt))
    if reasoning:
        messages.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
    messages.append(Message.from_role_and_content(Role.ASSISTANT, final).with_channel("final"))
    return Conversation.from_messages(messages)


def reference_render(tokenizer: HarmonyTokenizer, prompt: str, reasoning: str, final: str, effort: str,
                     history: Sequence[tuple[str, str]] = ()) -> Rendered:
    """openai-harmony's own training render: slow, the definition of correct."""
    from openai_harmony import Conversation, RenderConversationConfig, Role

    conv = harmony_conversation(prompt, reasoning, final, effort, history)
    enc = tokenizer.harmony
    ids = enc.render_conversation_for_training(conv, RenderConversationConfig(auto_drop_analysis=False))
    prompt_messages = conv.messages[:2 + 2 * len(history)]
    start = len(enc.render_conversation_for_completion(Conversation.from_messages(prompt_messages), Role.ASSISTANT))
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
        # Every constant piece a row is made of, in one pool: name -> (start, length).
        pieces = {
            "system": self._system,
            "user_head": self._user_head,
            "prompt_end": [self._end, *self._assistant_head],    # closes the user message
            "analysis_head": self._analysis_head,
            "end": [self._end],
            "assistant_head": self._assistant_head,
            "final_head": self._final_head,
            "turn_middle": [self._end, *self._assistant_head, *self._final_head],  # user -> earlier answer
            "return": [self._return],
        }
        pool, self._piece_at = [], {}
        for name, piece in pieces.items():
            self._piece_at[name] = (len(pool), len(piece))
            pool += piece
        self._frame_pool = np.array(pool, dtype=np.int32)

    def _segments(self, turns: int) -> tuple[list, int, int]:
        """The segments of a row with up to `turns` earlier turns, in order, each
        (piece name, None, turn) for a constant piece or (None, slot, turn) for a text (slots:
        0 prompt, 1 reasoning, 2 final, 3 an earlier user message, 4 an earlier answer; turn -1
        for the last exchange, else the earlier turn it belongs to). Returns (segments, how many
        form the prompt, how many the analysis message). The analysis message runs through its
        <|end|> (absent without reasoning); the final message starts with <|start|>assistant
        when an analysis message came before it."""
        segments: list = [("system", None, -1)]
        for turn in range(turns):
            segments += [("user_head", None, turn), (None, 3, turn), ("turn_middle", None, turn), (None, 4, turn),
                         ("end", None, turn)]
        segments += [("user_head", None, -1), (None, 0, -1), ("prompt_end", None, -1)]
        prompt = len(segments)
        segments += [("analysis_head", None, -1), (None, 1, -1), ("end", None, -1)]
        segments += [("assistant_head", None, -1), ("final_head", None, -1), (None, 2, -1), ("return", None, -1)]
        return segments, prompt, 3

    def _self_check(self) -> None:
        probe = ("Say <|end|> twice.", "The user wants <|start|>assistant text.", "<|return|> done")
        history = (("First <|message|> question", "First answer <|end|>"), ("Then?", "<|return|> more"))
        for reasoning, turns in ((probe[1], ()), ("", ()), (probe[1], history), ("", history[:1])):
            got = self.render(probe[0], reasoning, probe[2], turns)
            want = reference_render(self.tokenizer, probe[0], reasoning, probe[2], self.effort, turns)
            if got != want:
                raise RuntimeError(
                    "The fast Harmony renderer disagrees with openai-harmony's own render; this "
                    "openai-harmony version renders differently and the renderer needs updating."
                )
        for text in (*probe, "ünïcödé 中文 😀 \x00 \r\n", ""):
            if np.frombuffer(self._encode(text), np.uint32).tolist() != self.tokenizer.tiktoken.encode_ordinary(text):
                raise RuntimeError("tiktoken's token-buffer encoding differs from encode_ordinary in this "
                                   "tiktoken version; the renderer needs updating.")

    def render(self, prompt: str, reasoning: str, final: str, history: Sequence[tuple[str, str]] = ()) -> Rendered:
        """Render clean texts (see ``text.clean_text``); empty reasoning means no analysis
        message; `history` holds earlier (user, assistant final) turns of a chat."""
        columns = self.render_columns([prompt], [reasoning], [final], [history] if history else None)
        if columns.errors:
            raise columns.errors[0]
        return columns.row(0)

    def render_batch(self, prompts: Sequence[str], reasonings: Sequence[str], finals: Sequence[str],
                     histories: Sequence[Sequence[tuple[str, str]]] | None = None) -> list[Rendered | Exception]:
        """Render many examples; an example that fails to encode yields its exception instead."""
        columns = self.render_columns(prompts, reasonings, finals, histories)
        return [columns.errors[i] if i in columns.errors else columns.row(i) for i in range(len(columns))]

    def render_with_history(self, history: Sequence[tuple[str, str]], prompt: str, reasoning: str,
                            final: str) -> Rendered:
        """``render`` with the earlier (user, assistant final) turns of a thread before `prompt`
        (clean texts); only the last reply is labelled."""
        return self.render(prompt, reasoning, final, history)

    def render_batch_with_history(self, histories: Sequence[Sequence[tuple[str, str]]], prompts: Sequence[str],
                                  reasonings: Sequence[str], finals: Sequence[str]) -> list[Rendered | Exception]:
        """``render_batch`` for examples with earlier turns (an empty history renders as ``render``)."""
        return self.render_batch(prompts, reasonings, finals, histories)

    def render_columns(self, prompts: Sequence[str], reasonings: Sequence[str], finals: Sequence[str],
                       histories: Sequence[Sequence[tuple[str, str]]] | None = None) -> RenderedColumns:
        """Render many examples into flat arrays; a failing example is listed in ``errors``.

        Each row is a fixed list of segments (``_segments``), each a constant piece or one
        encoded text; absent ones (no reasoning, fewer earlier turns) have length 0. All texts
        are encoded into one token pool and every row is assembled by one gather."""
        n = len(prompts)
        turns = max((len(h) for h in histories), default=0) if histories is not None else 0
        # the texts, slot by slot: text (slot, turn) of row i is texts[slot_base + i]
        texts = [*prompts, *reasonings, *finals]
        slot_base = {(0, -1): 0, (1, -1): n, (2, -1): 2 * n}
        for turn in range(turns):
            for side in (0, 1):
                slot_base[(3 + side, turn)] = len(texts)
                texts += [h[turn][side] if turn < len(h) else "" for h in histories]
        buffers, errors = self._encode_many(texts)
        failed: dict[int, Exception] = {}
        for i, exc in sorted(errors.items()):
            failed.setdefault(i % n, exc)
        text_tokens = np.frombuffer(b"".join(buffers), dtype=np.int32) if buffers else np.zeros(0, np.int32)
        text_lengths = np.fromiter(map(len, buffers), dtype=np.int64, count=len(buffers)) // 4
        text_starts = np.cumsum(text_lengths) - text_lengths + len(self._frame_pool)
        has_reasoning = text_lengths[n:2 * n] > 0
        segments, prompt_count, analysis_count = self._segments(turns)
        starts = np.empty((n, len(segments)), dtype=np.int64)
        lengths = np.empty((n, len(segments)), dtype=np.int64)
        turn_count = (np.fromiter((len(h) for h in histories), dtype=np.int64, count=n) if turns
                      else np.zeros(n, np.int64))
        for k, (piece, slot, turn) in enumerate(segments):
            if piece is None:
                base = slot_base[(slot, turn)]
                starts[:, k] = text_starts[base:base + n]
                lengths[:, k] = text_lengths[base:base + n]
            else:
                starts[:, k], lengths[:, k] = self._piece_at[piece]
            if turn >= 0:
                lengths[:, k] *= turn_count > turn  # an earlier turn this row does not have
        # no reasoning: no analysis message, and the final one opens the assistant's turn itself
        lengths[:, prompt_count:prompt_count + analysis_count + 1] *= has_reasoning[:, None]
        if failed:  # a failed example renders as an empty row
            keep = np.ones(n, dtype=bool)
            keep[list(failed)] = False
            lengths *= keep[:, None]
        seg_lengths = lengths.ravel()
        seg_out = np.cumsum(seg_lengths) - seg_lengths
        total = int(seg_lengths.sum())
        gather = np.repeat(starts.ravel() - seg_out, seg_lengths) + np.arange(total, dtype=np.int64)
        pool = np.concatenate([self._frame_pool, text_tokens])
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths.sum(axis=1), out=offsets[1:])
        end_analysis = prompt_count + analysis_count
        return RenderedColumns(pool[gather], offsets, lengths[:, :prompt_count].sum(axis=1),
                               lengths[:, prompt_count:end_analysis].sum(axis=1),
                               lengths[:, end_analysis:].sum(axis=1), failed)

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
    ``encode_ordinary`` (text that looks like a special token stays ordinary text); its buffer
    variant costs the same CPU as encode_ordinary (measured within 5%) but hands back raw
    uint32 tokens, so that no Python int per token is made, kept or iterated afterwards. The
    self-check compares the two. Falls back to encode_ordinary where tiktoken lacks it."""
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
