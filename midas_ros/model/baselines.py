"""The papers' two simple baselines, with the same encoders and projections as MIDAS.

- Base.1 (`ConcatBaseline`, feature-level fusion): the present modalities' tokens concatenated (an
  absent modality's are masked out), then the joint-query head over all of them.
- Base.2 (`DecisionAverageBaseline`, decision-level fusion): one joint-query head per modality, the
  predictions of the present modalities averaged.
Both have MIDAS's forward signature and return a MidasOutput with zero auxiliary losses.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from midas_ros import MODALITIES
from midas_ros.model.config import MidasConfig
from midas_ros.model.heads import JointQueryHead
from midas_ros.model.midas import FusionModel, MidasOutput
from midas_ros.model.weights import check_present
from midas_ros.skeleton import NUM_JOINTS


class ConcatBaseline(FusionModel):
    """Base.1: the present modalities' tokens, concatenated -> joint-query head -> pose."""

    kind: ClassVar[str] = "base1"

    def __init__(self, config: MidasConfig) -> None:
        super().__init__(config)
        tokens = len(MODALITIES) * config.num_tokens
        self.head = JointQueryHead(config.feature_dim, config.head_hidden, tokens)

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, anchor: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        check_present(present, len(MODALITIES))
        batch, d, t = present.shape[0], self.config.feature_dim, self.config.num_tokens
        concatenated = self.pose_mean.new_zeros(batch, d, len(MODALITIES) * t)
        for j, idx, feats in self.project(tokens, present):
            concatenated[idx, :, j * t : (j + 1) * t] = feats
        padding = (~present).repeat_interleave(t, dim=1)
        pose = self.to_base(self.head(concatenated, padding), anchor)
        zero = pose.new_zeros(())
        return MidasOutput(pose, self.modality_weights(present), zero, zero, zero)


class DecisionAverageBaseline(FusionModel):
    """Base.2: a joint-query head per modality, predictions averaged over the present modalities."""

    kind: ClassVar[str] = "base2"

    def __init__(self, config: MidasConfig) -> None:
        super().__init__(config)
        self.heads = nn.ModuleDict(
            {m: JointQueryHead(config.feature_dim, config.head_hidden, config.num_tokens) for m in MODALITIES}
        )

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, anchor: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        check_present(present, len(MODALITIES))
        weights = self.modality_weights(present)  # uniform over present
        batch = present.shape[0]
        pose = self.pose_mean.new_zeros(batch, NUM_JOINTS, 3)
        for j, idx, feats in self.project(tokens, present):
            pred = self.heads[MODALITIES[j]](feats) * weights[idx, j].view(-1, 1, 1)
            pose = pose.index_add(0, idx, pred)
        pose = self.to_base(pose, anchor)
        zero = pose.new_zeros(())
        return MidasOutput(pose, weights, zero, zero, zero)
