"""Modality weights: one logit per modality, softmax renormalised over the modalities present per sample."""

from __future__ import annotations

import torch
from torch import Tensor


def check_present(present: Tensor, num_modalities: int) -> None:
    """Raise ValueError unless `present` is a (B, M) bool tensor with at least one modality per row."""
    if present.dtype != torch.bool or present.ndim != 2 or present.shape[1] != num_modalities:
        raise ValueError(
            f"present must be a (B, {num_modalities}) bool tensor, got {tuple(present.shape)} {present.dtype}"
        )
    if not bool(present.any(dim=1).all()):
        raise ValueError("every sample needs at least one present modality")


def renormalised_weights(logits: Tensor, present: Tensor) -> Tensor:
    """Softmax of `logits` (M,) restricted to the present modalities of each row of `present` (B, M).

    Absent modalities get exactly 0 and no gradient; each row sums to 1. Same as softmax(logits) * present
    renormalised, but computed as a masked softmax so it stays exact for any logit values.
    """
    masked = logits.unsqueeze(0).expand(present.shape[0], -1).masked_fill(~present, float("-inf"))
    return torch.softmax(masked, dim=1)
