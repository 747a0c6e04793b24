"""Teacher top-k logprobs for offline distillation, stored in DistillKit's compressed form (issue 16)."""
