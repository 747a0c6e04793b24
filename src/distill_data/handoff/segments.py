"""The packed rows' segment layout as the 4D attention mask that eager/SDPA attention takes.

DistillKit's `prepacked` mode reads the segment layout (`attention_mask` 1, 2, … per example,
0 on padding) through its flash-attention packing patch, and TRL's padding-free collator through
`position_ids`, which only flash attention honours. For any other attention implementation,
pass this mask (with `position_ids`): each token sees the earlier tokens of its own example only.
Needs torch (installed with the `train` extra's trainers).
"""

from __future__ import annotations


def segment_attention_mask(attention_mask):
    """(batch, seq) segment numbers -> (batch, 1, seq, seq) bool: True where attention is allowed."""
    import torch

    segments = torch.as_tensor(attention_mask)
    seq = segments.shape[-1]
    same = segments[:, :, None] == segments[:, None, :]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=segments.device).tril()
    # padding (segment 0) attends to itself only, so no row of the mask is empty
    pad = (segments == 0)[:, :, None] & torch.eye(seq, dtype=torch.bool, device=segments.device)
    allowed = (same & causal & (segments != 0)[:, :, None]) | pad
    return allowed[:, None]
