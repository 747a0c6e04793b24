"""The vLLM backend: request building and prompt-logprob parsing without a GPU; a real run where
a GPU and vllm are present."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from distill_data.teacher.backends import (TeacherError, parse_prompt_logprobs, vllm_requests,
                                           vllm_sampling_kwargs)


def lp(logprob, rank):
    return SimpleNamespace(logprob=logprob, rank=rank, decoded_token=None)


def test_requests_are_token_ids_never_text():
    rows = [np.array([200006, 17360, 200008], dtype=np.int32), np.array([5, 6], dtype=np.int32)]
    assert vllm_requests(rows) == [{"prompt_token_ids": [200006, 17360, 200008]}, {"prompt_token_ids": [5, 6]}]
    assert all(type(t) is int for t in vllm_requests(rows)[0]["prompt_token_ids"])
    kwargs = vllm_sampling_kwargs(32)
    assert kwargs["prompt_logprobs"] == 32 and kwargs["max_tokens"] == 1 and kwargs["detokenize"] is False


def test_dict_list_shape_first_position_dropped_and_unranked_prompt_token_skipped():
    # 3 ids -> 2 positions; vLLM adds the prompt's own token with its rank even outside the top k
    prompt = [None,
              {7: lp(-0.1, 1), 9: lp(-2.5, 2), 4: lp(-9.0, 57)},    # 4 is the prompt token, rank 57 > k
              {3: lp(-1.0, 2), 8: lp(-0.5, 1), 2: lp(-4.0, None)}]
    indices, values = parse_prompt_logprobs(prompt, k=2, length=3)
    assert indices.tolist() == [[7, 9], [8, 3]]
    assert np.allclose(values, [[-0.1, -2.5], [-0.5, -1.0]])


def test_flat_shape():
    flat = SimpleNamespace(start_indices=[0, 0, 3], end_indices=[0, 3, 5],
                           token_ids=[11, 12, 13, 21, 22], logprobs=[-0.2, -1.7, -8.0, -0.3, -1.4],
                           ranks=[1, 2, 90, 1, 2])
    indices, values = parse_prompt_logprobs(flat, k=2, length=3)
    assert indices.tolist() == [[11, 12], [21, 22]]
    assert np.allclose(values, [[-0.2, -1.7], [-0.3, -1.4]])


def test_tied_ranks_keep_both_tokens():
    # vLLM ranks ties alike; both tokens are in the top k
    prompt = [None, {1: lp(-0.7, 1), 2: lp(-0.7, 1), 3: lp(-3.0, 3)}]
    indices, values = parse_prompt_logprobs(prompt, k=2, length=2)
    assert sorted(indices[0].tolist()) == [1, 2] and np.allclose(values, -0.7)


def test_too_few_logprobs_or_positions_are_errors_naming_the_row():
    with pytest.raises(TeacherError, match="row r7: position 1: vLLM returned 1 of the top 2"):
        parse_prompt_logprobs([None, {1: lp(-0.1, 1)}], k=2, length=2, row_id="r7")
    with pytest.raises(TeacherError, match="2 prompt positions for 4 ids"):
        parse_prompt_logprobs([None, {1: lp(-0.1, 1)}, {1: lp(-0.1, 1)}], k=1, length=4)


def _gpu_and_vllm() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (it needs a GPU node: pip install vllm)"
    import torch
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


@pytest.mark.skipif(_gpu_and_vllm() is not None, reason=f"vLLM backend not exercised: {_gpu_and_vllm()}")
def test_vllm_matches_transformers_on_a_tiny_model(tmp_path):
    from teacher_helpers import tiny_teacher
    from distill_data.teacher.backends import TransformersBackend, VllmBackend
    model = tiny_teacher(tmp_path / "tiny")
    rows = [np.arange(100, 140, dtype=np.int32), np.arange(5000, 5017, dtype=np.int32)]
    ours = TransformersBackend(str(model), 8, dtype="float32", device="cuda").top_k(rows)
    theirs = VllmBackend(str(model), 8, dtype="float32", gpu_memory_utilization=0.3).top_k(rows)
    for (ia, va), (ib, vb) in zip(ours, theirs):
        assert va.shape == vb.shape and np.allclose(va, vb, atol=1e-3)
