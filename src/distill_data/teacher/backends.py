"""Teacher backends: the top-k next-token log-probabilities of a model on given token ids.

Every backend takes rows of exact token ids (never text: nothing is re-tokenized) and returns, per
row of L ids, (indices, logprobs), each (L-1, k), sorted by logprob descending: entry j is the
teacher's distribution over token j+1 given ids[0..j] (DistillKit's position convention, format.py).

- `transformers` (torch; CPU or GPU): a causal LM forward pass, log-softmax in float32, torch.topk.
- `vllm` (GPU): prompt token ids in, `prompt_logprobs=k` out (DistillKit's capture does the same).
  Request building and output parsing are plain functions, tested without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("distill_data")

# Positions of a batch whose logits are materialised at once: (positions x vocabulary) float32
# logits are the memory peak (4,096 x 201,088 x 4 bytes = 3.3 GB), so they are made in slices.
LOGIT_SLICE_POSITIONS = 1024


class TeacherError(RuntimeError):
    """The teacher stage cannot go on; the message names the file, row or setting."""


def model_fingerprint(model_path: str | Path) -> dict:
    """What identifies the teacher: sha256 of its config.json and of its weight index (or, for a
    single weights file, of the file's name and size), so a changed model reruns the stage."""
    path = Path(model_path)
    config = path / "config.json"
    if not config.is_file():
        raise TeacherError(f"{config}: not found; teacher.model must be a Hugging Face model folder")
    out = {"name": path.name, "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    index = sorted(path.glob("*.index.json"))
    if index:
        out["weight_index_sha256"] = hashlib.sha256(index[0].read_bytes()).hexdigest()
    else:
        weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
        if not weights:
            raise TeacherError(f"{path}: no *.safetensors or *.bin weights and no weight index")
        listing = [[p.name, p.stat().st_size] for p in weights]
        out["weight_index_sha256"] = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return out


def model_vocab_size(model_path: str | Path) -> int:
    """The width of the teacher's logits (the format's `d`), from its config.json."""
    path = Path(model_path) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TeacherError(f"{path}: not found; the teacher must be a Hugging Face model folder") from None
    except json.JSONDecodeError as exc:
        raise TeacherError(f"{path}: not valid JSON ({exc})") from None
    size = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    if not isinstance(size, int) or size < 1:
        raise TeacherError(f"{Path(model_path) / 'config.json'}: no vocab_size")
    return size


def batches_by_tokens(lengths: Sequence[int], batch_tokens: int) -> list[range]:
    """Consecutive rows, as many as fit `batch_tokens` once padded to the longest (a longer row
    goes alone). Depends only on the lengths, so a resumed capture batches the same way."""
    out, start, longest = [], 0, 0
    for i, length in enumerate(lengths):
        longest_with = max(longest, int(length))
        if i > start and longest_with * (i - start + 1) > batch_tokens:
            out.append(range(start, i))
            start, longest_with = i, int(length)
        longest = longest_with
    if start < len(lengths):
        out.append(range(start, len(lengths)))
    return out


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_path: str, k: int, dtype: str = "float32", device: str = "auto"):
        try:
            import torch
            import transformers
        except ImportError:
            raise TeacherError("teacher.backend transformers needs torch and transformers: "
                               "pip install torch, then pip install -e '.[teacher]'") from None
        self.torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.k = k
        torch_dtype = getattr(torch, dtype)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.head = self.model.get_output_embeddings()
        self.body = self.model.get_decoder()
        self.vocab = self.head.weight.shape[0]
        if k > self.vocab:
            raise TeacherError(f"teacher.top_k {k} exceeds the model's vocabulary of {self.vocab}")

    def top_k(self, rows: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        torch = self.torch
        longest = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), longest), dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):   # right padding: causal attention keeps real positions exact
            ids[i, :len(row)] = torch.from_numpy(np.asarray(row, dtype=np.int64))
            mask[i, :len(row)] = 1
        out = []
        with torch.inference_mode():
            hidden = self.body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
            for i, row in enumerate(rows):
                n = len(row) - 1
                values = np.empty((max(n, 0), self.k), dtype=np.float32)
                indices = np.empty((max(n, 0), self.k), dtype=np.int64)
                for at in range(0, n, LOGIT_SLICE_POSITIONS):
                    stop = min(n, at + LOGIT_SLICE_POSITIONS)
                    logits = self.head(hidden[i, at:stop]).float()
                    top = torch.topk(torch.log_softmax(logits, dim=-1), self.k, dim=-1)
                    values[at:stop] = top.values.cpu().numpy()
                    indices[at:stop] = top.indices.cpu().numpy()
                out.append((indices, values))
        return out


# ---- vLLM ----

def vllm_requests(rows: Sequence[np.ndarray]) -> list[dict]:
    """One prompt per row, as token ids (vLLM's TokensPrompt shape): no text, no re-tokenizing."""
    return [{"prompt_token_ids": [int(t) for t in row]} for row in rows]


def vllm_sampling_kwargs(k: int) -> dict:
    """SamplingParams for prompt logprobs only: the top k per prompt position, one dummy token out."""
    return {"max_tokens": 1, "prompt_logprobs": k, "temperature": 1.0, "top_p": 1.0, "top_k": -1,
            "detokenize": False, "skip_special_tokens": False}


def _position_entries(prompt_logprobs):
    """Per prompt position, the list of (token_id, logprob, rank) vLLM returned (None = none)."""
    if hasattr(prompt_logprobs, "start_indices"):   # vLLM's FlatLogprobs
        flat = prompt_logprobs
        for start, end in zip(flat.start_indices, flat.end_indices):
            yield [(flat.token_ids[i], flat.logprobs[i], flat.ranks[i]) for i in range(start, end)]
        return
    for position in prompt_logprobs:   # a list of {token_id: Logprob} (or None for the first)
        if position is None:
            yield None
        else:
            yield [(token, entry.logprob, entry.rank) for token, entry in position.items()]


def parse_prompt_logprobs(prompt_logprobs, k: int, length: int, row_id: str = "") -> tuple[np.ndarray, np.ndarray]:
    """vLLM's prompt logprobs of one row of `length` ids -> (indices, logprobs), each (length-1, k).

    The first position has no distribution and is dropped. Entries without a rank or with rank > k
    are the prompt's own token, added by vLLM when it is outside the top k: skipped. A position with
    fewer than k ranked entries is an error (never filled with -inf: the validator requires finite
    values), as is a count of positions that does not match the row.
    """
    positions = list(_position_entries(prompt_logprobs))
    if positions and not positions[0]:
        positions = positions[1:]
    where = f"row {row_id}: " if row_id else ""
    if len(positions) != length - 1:
        raise TeacherError(f"{where}vLLM returned {len(positions)} prompt positions for {length} ids "
                           f"(expected {length - 1})")
    indices = np.empty((length - 1, k), dtype=np.int64)
    values = np.empty((length - 1, k), dtype=np.float32)
    for p, entries in enumerate(positions):
        ranked = {}
        for token, logprob, rank in entries or ():
            if rank is not None and rank <= k and token not in ranked:
                ranked[token] = float(logprob)
        if len(ranked) < k:
            raise TeacherError(f"{where}position {p + 1}: vLLM returned {len(ranked)} of the top {k} logprobs "
                               f"(is max_logprobs >= top_k?)")
        best = sorted(ranked.items(), key=lambda item: -item[1])[:k]   # stable: ties keep vLLM's order
        indices[p] = [token for token, _ in best]
        values[p] = [logprob for _, logprob in best]
    return indices, values


class VllmBackend:
    name = "vllm"

    def __init__(self, model_path: str, k: int, dtype: str = "bfloat16", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None):
        try:
            import vllm
        except ImportError:
            raise TeacherError("teacher.backend vllm needs vllm on a GPU node: pip install vllm") from None
        self.vllm = vllm
        self.k = k
        self.llm = vllm.LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            max_logprobs=k, logprobs_mode="raw_logprobs", skip_tokenizer_init=True)
        self.params = vllm.SamplingParams(**vllm_sampling_kwargs(k))

    def top_k(self, rows: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        outputs = self.llm.generate(vllm_requests(rows), sampling_params=self.params, use_tqdm=False)
        return [parse_prompt_logprobs(o.prompt_logprobs, self.k, len(row)) for o, row in zip(outputs, rows)]


def make_backend(name: str, model_path: str, k: int, dtype: str, device: str = "auto", **vllm_options):
    if name == "transformers":
        return TransformersBackend(model_path, k, dtype=dtype, device=device)
    if name == "vllm":
        return VllmBackend(model_path, k, dtype=dtype, **vllm_options)
    raise TeacherError(f"teacher.backend {name!r}: use transformers or vllm")
