"""The papers' two simple baselines, with the same encoders and projections as MIDAS.

- Base.1 (`ConcatBaseline`, feature-level fusion): each modality's tokens mean-pooled to a vector,
  the three vectors concatenated (an absent modality contributes a zero vector, as such a baseline
  does), then an MLP head.
- Base.2 (`DecisionAverageBaseline`, decision-level fusion): one pose head per modality, the predictions
  of the present modalities averaged.
Both have MIDAS's forward signature and return a MidasOutput with zero auxiliary losses.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from midas_ros import MODALITIES
from midas_ros.model.config import MidasConfig
from midas_ros.model.midas import FusionModel, MidasOutput, PoseHead
from midas_ros.model.weights import check_present
from midas_ros.skeleton import NUM_JOINTS


class ConcatBaseline(FusionModel):
    """Base.1: concatenated pooled features (absent = zeros) -> MLP -> pose."""

    kind: ClassVar[str] = "base1"

    def __init__(self, config: MidasConfig) -> None:
        super().__init__(config)
        d = config.feature_dim
        hidden = config.head_hidden or d
        self.head = nn.Sequential(
            nn.Linear(len(MODALITIES) * d, hidden), nn.GELU(), nn.Linear(hidden, NUM_JOINTS * 3)
        )

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        check_present(present, len(MODALITIES))
        batch, d = present.shape[0], self.config.feature_dim
        pooled = [self.pose_mean.new_zeros(batch, d) for _ in MODALITIES]
        for j, idx, feats in self.project(tokens, present):
            pooled[j] = pooled[j].index_copy(0, idx, feats.mean(dim=-1))
        pose = self.head(torch.cat(pooled, dim=1)).view(-1, NUM_JOINTS, 3) + self.pose_mean
        zero = pose.new_zeros(())
        return MidasOutput(pose, self.modality_weights(present), zero, zero, zero)


class DecisionAverageBaseline(FusionModel):
    """Base.2: a pose head per modality, predictions averaged over the present modalities."""

    kind: ClassVar[str] = "base2"

    def __init__(self, config: MidasConfig) -> None:
        super().__init__(config)
        self.heads = nn.ModuleDict({m: PoseHead(config.feature_dim, config.head_hidden) for m in MODALITIES})

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        check_present(present, len(MODALITIES))
        weights = self.modality_weights(present)  # uniform over present
        batch = present.shape[0]
        pose = self.pose_mean.new_zeros(batch, NUM_JOINTS, 3)
        for j, idx, feats in self.project(tokens, present):
            pred = self.heads[MODALITIES[j]](feats) * weights[idx, j].view(-1, 1, 1)
            pose = pose.index_add(0, idx, pred)
        pose = pose + self.pose_mean
        zero = pose.new_zeros(())
        return MidasOutput(pose, weights, zero, zero, zero)
