"""Hugging Face tokenizers made from the staged Harmony vocabulary, for the tokenizer check:
the right one, and two wrong ones of the kinds users meet (a special token listed under two names
shifting later ids; a pre-tokenization pattern other than o200k's)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CONVERTER_PATTERN = None   # transformers' TikTokenConverter default (not o200k's)


def _names_by_id(tiktoken) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    for name, token_id in tiktoken._special_tokens.items():
        names.setdefault(token_id, []).append(name)
    return names


def make_hf_tokenizer(tiktoken, vocab_file: Path, out: Path, kind: str) -> Path:
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    names = _names_by_id(tiktoken)
    one_name = [sorted(names[i], key=lambda n: (n.startswith("<|reserved"), n))[0] for i in sorted(names)]
    if kind == "right":          # one name per id, in id order: ids as ours
        specials, options = one_name, {"pattern": tiktoken._pat_str}
    elif kind == "two_names":    # every name in turn: id 200018's second name shifts the rest
        specials, options = list(tiktoken._special_tokens), {"pattern": tiktoken._pat_str}
    elif kind == "other_pattern":
        specials, options = one_name, {}
    else:
        raise ValueError(kind)
    converted = TikTokenConverter(vocab_file=str(vocab_file), extra_special_tokens=specials, **options).converted()
    fast = PreTrainedTokenizerFast(tokenizer_object=converted, eos_token="<|return|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(out))
    return out
