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

from dataclasses import dataclass
from typing import Sequence

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
    """The conversation openai-harmony would be given for this example (texts already clean);
    `history` holds the earlier (user, assistant final) turns of a chat thread."""
    from openai_harmony import Conversation, Message, Role

    messages = [Message.from_role_and_content(Role.SYSTEM, harmony_system_content(effort))]
    for user, assistant in history:
        messages.append(Message.from_role_and_content(Role.USER, user))
        messages.append(Message.from_role_and_content(Role.ASSISTANT, assistant).with_channel("final"))
    messages.append(Message.from_role_and_content(Role.USER, prompt))
    if reasoning:
        messages.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
    messages.append(Message.from_role_and_content(Role.ASSISTANT, final).with_channel("final"))
    return Conversation.from_messages(messages)


def reference_render(tokenizer: HarmonyTokenizer, prompt: str, reasoning: str, final: str, effort: str,
                     history: Sequence[tuple[str, str]] = ()) -> Rendered:
    """openai-harmony's own training render: slow, the definition of correct. Only the last
    assistant turn is labelled: its start is the completion render of everything before it."""
    from openai_harmony import Conversation, RenderConversationConfig, Role

    conv = harmony_conversation(prompt, reasoning, final, effort, history)
    enc = tokenizer.harmony
    ids = enc.render_conversation_for_training(conv, RenderConversationConfig(auto_drop_analysis=False))
    before_reply = conv.messages[:2 + 2 * len(history)]  # system, earlier turns, last user message
    start = len(enc.render_conversation_for_completion(Conversation.from_messages(before_reply), Role.ASSISTANT))
    if reasoning:
        end_id = enc.encode("<|end|>", allowed_special={"<|end|>"})[0]
        analysis = ids.index(end_id, start) + 1 - start
    else:
        analysis = 0
    return Rendered(list(ids), start, analysis, len(ids) - start - analysis)


class HarmonyRenderer:
    """Fast, exact renderer. ``render_batch`` tokenizes with several threads; the result
    does not depend on the thread count."""

    def __init__(self, tokenizer: HarmonyTokenizer, reasoning_effort: str = "high", num_threads: int = 1):
        from openai_harmony import Message, Role

        self.tokenizer = tokenizer
        self.effort = reasoning_effort
        self.num_threads = max(1, int(num_threads))
        self._encode = tokenizer.tiktoken.encode_ordinary
        harmony = tokenizer.harmony
        special = {name: harmony.encode(name, allowed_special={name})[0]
                   for name in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>")}
        start, end, message, channel = (special[k] for k in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>"))
        self._system = list(harmony.render(Message.from_role_and_content(Role.SYSTEM, harmony_system_content(reasoning_effort))))
        assistant = self._encode("assistant")
        self._user_head = [start, *self._encode("user"), message]
        # What the model sees before it generates: ...<|start|>assistant
        self._assistant_head = [start, *assistant]
        self._analysis_head = [channel, *self._encode("analysis"), message]
        self._final_head = [channel, *self._encode("final"), message]
        self._end = end
        self._return = special["<|return|>"]
        self._self_check()

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
        # multi-turn (chat threads): earlier turns, the last one with a marker in both texts
        history = (("First <|message|> question", "First answer <|end|>"), ("Then?", "<|return|> more"))
        for reasoning in (probe[1], ""):
            got = self.render_with_history(history, probe[0], reasoning, probe[2])
            want = reference_render(self.tokenizer, probe[0], reasoning, probe[2], self.effort, history)
            if got != want:
                raise RuntimeError(
                    "The fast Harmony renderer disagrees with openai-harmony's own render of a "
                    "multi-turn conversation; the renderer needs updating for this openai-harmony version."
                )

    def _assemble(self, prompt_ids: Sequence[int], reasoning_ids: Sequence[int] | None, final_ids: Sequence[int]) -> Rendered:
        ids = [*self._system, *self._user_head, *prompt_ids, self._end, *self._assistant_head]
        start = len(ids)
        if reasoning_ids is not None:
            ids += self._analysis_head
            ids += reasoning_ids
            ids.append(self._end)
            ids += self._assistant_head
            analysis = len(ids) - len(self._assistant_head) - start
        else:
            analysis = 0
        ids += self._final_head
        ids += final_ids
        ids.append(self._return)
        return Rendered(ids, start, analysis, len(ids) - start - analysis)

    def render(self, prompt: str, reasoning: str, final: str) -> Rendered:
        """Render clean texts (see ``text.clean_text``); empty reasoning means no analysis message."""
        return self._assemble(
            self._encode(prompt),
            self._encode(reasoning) if reasoning else None,
            self._encode(final),
        )

    def render_batch(self, prompts: Sequence[str], reasonings: Sequence[str], finals: Sequence[str]) -> list[Rendered | Exception]:
        """Render many examples; an example that fails to encode yields its exception instead."""
        texts = [*prompts, *(r for r in reasonings if r), *finals]
        try:
            encoded = self._encode_many(texts)
        except Exception:  # isolate the failing example(s)
            return [self._render_or_error(p, r, f) for p, r, f in zip(prompts, reasonings, finals)]
        n = len(prompts)
        prompt_ids = encoded[:n]
        finals_ids = encoded[len(encoded) - n:]
        reasoning_iter = iter(encoded[n:len(encoded) - n])
        return [
            self._assemble(p, next(reasoning_iter) if r else None, f)
            for p, r, f in zip(prompt_ids, reasonings, finals_ids)
        ]

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        if self.num_threads == 1 or len(texts) < 64:
            return [self._encode(t) for t in texts]
        return self.tokenizer.tiktoken.encode_ordinary_batch(texts, num_threads=self.num_threads)

    def _render_or_error(self, prompt: str, reasoning: str, final: str) -> Rendered | Exception:
        try:
            return self.render(prompt, reasoning, final)
        except Exception as exc:  # counted as an encoding error by the caller
            return exc


    # --- multi-turn (chat threads) ---------------------------------------------------------------
    # Kept apart from the single-turn path above, which stays as fast as it was: the earlier
    # turns are spliced in after the system message, each as
    #   <|start|>user<|message|>{user}<|end|><|start|>assistant<|channel|>final<|message|>{reply}<|end|>
    # (an earlier reply ends in <|end|>; only the last one ends in <|return|>, as openai-harmony
    # renders it), and the labelled part starts after them.

    def _turns(self, history_ids: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[int]:
        ids: list[int] = []
        for user_ids, assistant_ids in history_ids:
            ids += self._user_head
            ids += user_ids
            ids.append(self._end)
            ids += self._assistant_head
            ids += self._final_head
            ids += assistant_ids
            ids.append(self._end)
        return ids

    def _assemble_with_history(self, history_ids, prompt_ids, reasoning_ids, final_ids) -> Rendered:
        single = self._assemble(prompt_ids, reasoning_ids, final_ids)
        if not history_ids:
            return single
        turns = self._turns(history_ids)
        cut = len(self._system)
        ids = single.input_ids[:cut] + turns + single.input_ids[cut:]
        return Rendered(ids, single.assistant_token_start + len(turns), single.analysis_token_count,
                        single.final_token_count)

    def render_with_history(self, history: Sequence[tuple[str, str]], prompt: str, reasoning: str,
                            final: str) -> Rendered:
        """``render`` with the earlier (user, assistant final) turns of a thread before `prompt`
        (clean texts); only the last reply is labelled."""
        return self._assemble_with_history(
            [(self._encode(u), self._encode(a)) for u, a in history],
            self._encode(prompt),
            self._encode(reasoning) if reasoning else None,
            self._encode(final),
        )

    def render_batch_with_history(self, histories: Sequence[Sequence[tuple[str, str]]], prompts: Sequence[str],
                                  reasonings: Sequence[str], finals: Sequence[str]) -> list[Rendered | Exception]:
        """``render_batch`` for examples with earlier turns (an empty history renders as ``render``)."""
        texts = [t for h in histories for turn in h for t in turn]
        texts += [*prompts, *(r for r in reasonings if r), *finals]
        try:
            encoded = iter(self._encode_many(texts))
            history_ids = [[(next(encoded), next(encoded)) for _ in h] for h in histories]
            prompt_ids = [next(encoded) for _ in prompts]
            reasoning_ids = [next(encoded) if r else None for r in reasonings]
            final_ids = [next(encoded) for _ in finals]
        except Exception:  # isolate the failing example(s)
            return [self._render_with_history_or_error(*args) for args in zip(histories, prompts, reasonings, finals)]
        return [self._assemble_with_history(*args) for args in zip(history_ids, prompt_ids, reasoning_ids, final_ids)]

    def _render_with_history_or_error(self, history, prompt, reasoning, final) -> Rendered | Exception:
        try:
            return self.render_with_history(history, prompt, reasoning, final)
        except Exception as exc:  # counted as an encoding error by the caller
            return exc
