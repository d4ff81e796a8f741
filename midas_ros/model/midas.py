"""MIDAS (Purify-then-Align): per-modality encoders, X-Fi projections, learnable modality weights,
diffusion refinement of each modality toward the weighted-sum teacher, pose head on the weighted sum of
the refined features (the papers' eq. 10, used both in training and at inference).

`FusionModel` holds what MIDAS and the baselines share: the person frame (model/person_frame.py),
encoders, projections, the batch checks, the encode / forward_from_tokens split and the mean pose.
Heads predict the pose in the person frame; `forward_from_tokens` returns it in the base frame. Absent
modalities are never computed: every encoder and projection runs only on the rows where its modality is
present, so absent inputs cannot reach the output, BatchNorm statistics or any gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from midas_ros import MODALITIES
from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.model.config import MidasConfig
from midas_ros.model.diffkd import DiffusionRefiner, PointwiseConv
from midas_ros.model.encoders import build_encoders
from midas_ros.model.heads import JointQueryHead
from midas_ros.model.person_frame import choose_anchor, from_frame, points_anchor, to_frame
from midas_ros.model.weights import check_present, renormalised_weights
from midas_ros.skeleton import NUM_JOINTS


@dataclass
class MidasOutput:
    """What every model's forward returns. Losses are 0-dim tensors (0 when not computed)."""

    pose: Tensor  # (B, 17, 3) metres
    weights: Tensor  # (B, 3) modality weights used for fusion (0 for absent)
    diffusion_loss: Tensor
    kd_loss: Tensor
    ae_loss: Tensor
    teacher_pose: Tensor | None = None  # (B, 17, 3): head on the unrefined teacher (training only)
    gamma: Tensor | None = None  # (N,) noise-adapter gamma of each (sample, present modality) row

    @property
    def aux_loss(self) -> Tensor:
        """diffusion + KD + autoencoder losses (the paper's distillation term, before lambda)."""
        return self.diffusion_loss + self.kd_loss + self.ae_loss


class TokenProjector(nn.Module):
    """X-Fi projection: 1x1 Conv1d(C, C) + BN + ReLU, then Linear over tokens L_in -> L_out."""

    def __init__(self, channels: int, in_tokens: int, out_tokens: int) -> None:
        super().__init__()
        self.channel = nn.Sequential(PointwiseConv(channels, channels), nn.BatchNorm1d(channels), nn.ReLU())
        self.tokens = nn.Linear(in_tokens, out_tokens)

    def forward(self, x: Tensor) -> Tensor:
        return self.tokens(self.channel(x))  # (B, C, out_tokens)


class FusionModel(nn.Module):
    """Shared part of MIDAS and the baselines. Subclasses implement `forward_from_tokens`.

    Batches: inputs {modality: (B, *preprocessed shape)}, present (B, 3) bool in MODALITIES order.
    Token tensors are channels-first (B, C, L).
    """

    kind: ClassVar[str] = ""

    def __init__(self, config: MidasConfig) -> None:
        super().__init__()
        self.config = config
        d = config.feature_dim
        self.encoders = build_encoders(d, config.encoder_width)
        self.projectors = nn.ModuleDict(
            {m: TokenProjector(d, self.encoders[m].num_tokens, config.num_tokens) for m in MODALITIES}
        )
        # Added to the head's output: the trainer sets the training poses' mean in the person frame, so
        # the head regresses offsets from it. Stored in checkpoints, like the default anchor (x, y, yaw)
        # used when only CSI is present: the training poses' mean position.
        self.register_buffer("pose_mean", torch.zeros(NUM_JOINTS, 3))
        self.register_buffer("default_anchor", torch.zeros(3))

    # ---- parameter groups -------------------------------------------------------------------------------
    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoders.parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        """The modality-weight logits (outer loop of the bi-level training); [] for the baselines."""
        return []

    def model_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the modality-weight logits (inner loop)."""
        weight_ids = {id(p) for p in self.weight_parameters()}
        return [p for p in self.parameters() if id(p) not in weight_ids]

    def fusion_parameter_count(self) -> int:
        """Parameters of the fusion block: everything except the encoders."""
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith("encoders."))

    def set_pose_mean(self, mean: Tensor | np.ndarray) -> None:
        """Set the (17, 3) offset added to every predicted pose (e.g. the training-set mean)."""
        value = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        if value.shape != (NUM_JOINTS, 3):
            raise ValueError(f"pose mean must be ({NUM_JOINTS}, 3), got {tuple(value.shape)}")
        self.pose_mean.copy_(value)

    def set_default_anchor(self, anchor: Tensor | np.ndarray) -> None:
        """Set the (x, y, yaw) person frame used for rows with neither depth nor LiDAR."""
        value = torch.as_tensor(np.asarray(anchor, dtype=np.float32))
        if value.shape != (3,):
            raise ValueError(f"default anchor must be (3,), got {tuple(value.shape)}")
        self.default_anchor.copy_(value)

    # ---- shared computation -------------------------------------------------------------------------------
    def anchors(self, inputs: dict[str, Tensor], present: Tensor) -> Tensor:
        """(B, 3) person frame of each row (person_frame.choose_anchor) from its present inputs."""
        spatial = {m: points_anchor(inputs[m]) for m in ("depth", "lidar") if m in inputs}
        return choose_anchor(spatial.get("depth"), spatial.get("lidar"), self.default_anchor, present)

    def to_base(self, relative_pose: Tensor, anchor: Tensor) -> Tensor:
        """A head's (B, 17, 3) person-frame output plus the mean pose -> base frame."""
        return from_frame(relative_pose + self.pose_mean, anchor)

    def modality_weights(self, present: Tensor) -> Tensor:
        """(B, 3) fusion weights for a present mask; uniform over present modalities unless overridden."""
        return renormalised_weights(torch.zeros(len(MODALITIES), device=present.device), present)

    def encode(self, inputs: dict[str, Tensor], present: Tensor, anchor: Tensor) -> dict[str, Tensor]:
        """Encoder tokens {modality: (B, C, L_m)} for every modality; rows where it is absent are zeros.

        Depth and LiDAR points are taken into the person frame of `anchor` (B, 3) first. Each encoder
        runs only on its present rows. The result can be cached (frozen encoders) and fed to
        `forward_from_tokens` with the same anchor.
        """
        check_present(present, len(MODALITIES))
        return {
            m: self.encode_modality(m, inputs.get(m), present[:, j], anchor) for j, m in enumerate(MODALITIES)
        }

    def encode_modality(self, modality: str, x: Tensor | None, rows: Tensor, anchor: Tensor) -> Tensor:
        """One modality's tokens (B, C, L) for the rows where `rows` (B,) is True, zeros elsewhere."""
        encoder = self.encoders[modality]
        batch = rows.shape[0]
        if not bool(rows.any()):
            return self.pose_mean.new_zeros(batch, self.config.feature_dim, encoder.num_tokens)
        if x is None:
            raise ValueError(f"input {modality!r} is missing but marked present")
        _check_shape(x, modality, batch)
        if modality != "csi":
            x = to_frame(x, anchor)
        if bool(rows.all()):
            return encoder(x)
        idx = rows.nonzero(as_tuple=True)[0]
        out = encoder(x[idx])
        return out.new_zeros(batch, *out.shape[1:]).index_copy(0, idx, out)

    def project(self, tokens: dict[str, Tensor], present: Tensor) -> list[tuple[int, Tensor, Tensor]]:
        """Projected features of the present rows: [(modality index, row indices (n,), (n, C, T))]."""
        out = []
        for j, m in enumerate(MODALITIES):
            rows = present[:, j]
            if not bool(rows.any()):
                continue
            if m not in tokens:
                raise ValueError(f"tokens for present modality {m!r} are missing")
            idx = rows.nonzero(as_tuple=True)[0]
            x = tokens[m] if bool(rows.all()) else tokens[m][idx]
            out.append((j, idx, self.projectors[m](x)))
        return out

    def forward(
        self, inputs: dict[str, Tensor], present: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        """Pose (base frame) for a batch. compute_losses: None = in training mode only."""
        anchor = self.anchors(inputs, present)
        return self.forward_from_tokens(self.encode(inputs, present, anchor), present, anchor, compute_losses)

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, anchor: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        """Everything after the encoders; the pose comes out in the base frame of `anchor` (B, 3)."""
        raise NotImplementedError


def _check_shape(x: Tensor, modality: str, batch: int) -> None:
    expected = (batch, *INPUT_SHAPES[modality])
    if tuple(x.shape) != expected:
        raise ValueError(f"input {modality!r} must have shape {expected}, got {tuple(x.shape)}")


def _scatter_weighted(batch: int, rows: Tensor, weights: Tensor, features: Tensor) -> Tensor:
    """sum over entries of weights[i] * features[i] into row rows[i] of a (batch, C, T) zero tensor."""
    weighted = weights.view(-1, 1, 1) * features
    return weighted.new_zeros(batch, *features.shape[1:]).index_add(0, rows, weighted)


class MIDAS(FusionModel):
    """The MIDAS / Purify-then-Align fusion model (flags `use_diffkd`, `learn_weights` give the ablations)."""

    kind: ClassVar[str] = "midas"

    def __init__(self, config: MidasConfig) -> None:
        super().__init__(config)
        # Zeros = uniform weights; with learn_weights=False they stay frozen (the "w/o Meta" ablation).
        self.modality_logits = nn.Parameter(torch.zeros(len(MODALITIES)), requires_grad=config.learn_weights)
        self.refiner = (
            DiffusionRefiner(
                config.feature_dim,
                config.latent_channels,
                config.denoise_timesteps,
                config.num_tokens,
                noise_seed=config.noise_seed,
                ratio=config.bottleneck_ratio,
                num_train_timesteps=config.num_train_timesteps,
                beta_start=config.beta_start,
                beta_end=config.beta_end,
            )
            if config.use_diffkd
            else None
        )
        self.head = JointQueryHead(config.feature_dim, config.head_hidden, config.num_tokens)

    def weight_parameters(self) -> list[nn.Parameter]:
        """[modality_logits] when learn_weights, else [] (frozen uniform weights)."""
        return [self.modality_logits] if self.config.learn_weights else []

    def modality_weights(self, present: Tensor) -> Tensor:
        return renormalised_weights(self.modality_logits, present)

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, anchor: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        check_present(present, len(MODALITIES))
        losses = self.training if compute_losses is None else compute_losses
        batch = present.shape[0]
        weights = self.modality_weights(present)
        projected = self.project(tokens, present)
        rows = torch.cat([idx for _, idx, _ in projected])
        mods = torch.cat([torch.full_like(idx, j) for j, idx, _ in projected])
        students = torch.cat([f for _, _, f in projected])  # (N, C, T): one row per (sample, modality)
        row_weights = weights[rows, mods]
        teacher = _scatter_weighted(batch, rows, row_weights, students)
        zero = students.new_zeros(())

        if self.refiner is None:  # w/o Diff: the weighted sum of raw projected features
            return MidasOutput(self._pose(teacher, anchor), weights, zero, zero, zero)

        refined_latent, gamma = self.refiner.refine(self.refiner.to_latent(students))
        refined = self.refiner.from_latent(refined_latent)
        pose = self._pose(_scatter_weighted(batch, rows, row_weights, refined), anchor)
        if not losses:
            return MidasOutput(pose, weights, zero, zero, zero, gamma=gamma)

        teacher_latent = self.refiner.to_latent(teacher.detach()).detach()
        return MidasOutput(
            pose=pose,
            weights=weights,
            diffusion_loss=self.refiner.diffusion_loss(teacher_latent),
            kd_loss=F.mse_loss(refined_latent, teacher_latent[rows]),
            ae_loss=self.refiner.autoencoder_loss(teacher),
            teacher_pose=self._pose(teacher, anchor),
            gamma=gamma,
        )

    def _pose(self, features: Tensor, anchor: Tensor) -> Tensor:
        return self.to_base(self.head(features), anchor)
