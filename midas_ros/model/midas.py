"""MIDAS (Purify-then-Align): per-modality encoders, X-Fi projections, learnable modality weights,
diffusion refinement of each modality toward the weighted-sum teacher, pose head on the weighted sum of
the refined features (the papers' eq. 10, used both in training and at inference).

`FusionModel` holds what MIDAS and the baselines share: encoders, projections, the batch checks, the
encode / forward_from_tokens split and the pose offset. Absent modalities are never computed: every
encoder and projection runs only on the rows where its modality is present, so absent inputs cannot reach
the output, BatchNorm statistics or any gradient.
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


class PoseHead(nn.Module):
    """Mean over tokens -> LayerNorm -> (Linear + GELU) -> Linear -> (B, 17, 3)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.LayerNorm(channels)]
        if hidden > 0:
            layers += [nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, NUM_JOINTS * 3)]
        else:
            layers.append(nn.Linear(channels, NUM_JOINTS * 3))
        self.mlp = nn.Sequential(*layers)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.mlp(tokens.mean(dim=-1)).view(-1, NUM_JOINTS, 3)


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
        # Added to the head's output: the trainer sets the training-set mean pose so the head regresses
        # offsets (the room-frame pose is ~3 m away from the origin). Stored in checkpoints.
        self.register_buffer("pose_mean", torch.zeros(NUM_JOINTS, 3))

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

    # ---- shared computation -------------------------------------------------------------------------------
    def modality_weights(self, present: Tensor) -> Tensor:
        """(B, 3) fusion weights for a present mask; uniform over present modalities unless overridden."""
        return renormalised_weights(torch.zeros(len(MODALITIES), device=present.device), present)

    def encode(self, inputs: dict[str, Tensor], present: Tensor) -> dict[str, Tensor]:
        """Encoder tokens {modality: (B, C, L_m)} for every modality; rows where it is absent are zeros.

        Each encoder runs only on its present rows. The result can be cached (frozen encoders) and fed
        to `forward_from_tokens`.
        """
        check_present(present, len(MODALITIES))
        batch = present.shape[0]
        tokens: dict[str, Tensor] = {}
        for j, m in enumerate(MODALITIES):
            encoder = self.encoders[m]
            rows = present[:, j]
            if not bool(rows.any()):
                tokens[m] = self.pose_mean.new_zeros(batch, self.config.feature_dim, encoder.num_tokens)
                continue
            x = _checked_input(inputs, m, batch)
            if bool(rows.all()):
                tokens[m] = encoder(x)
            else:
                idx = rows.nonzero(as_tuple=True)[0]
                out = encoder(x[idx])
                tokens[m] = out.new_zeros(batch, *out.shape[1:]).index_copy(0, idx, out)
        return tokens

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
        """Pose for a batch. compute_losses: None = in training mode only."""
        return self.forward_from_tokens(self.encode(inputs, present), present, compute_losses)

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, compute_losses: bool | None = None
    ) -> MidasOutput:
        raise NotImplementedError


def _checked_input(inputs: dict[str, Tensor], modality: str, batch: int) -> Tensor:
    if modality not in inputs:
        raise ValueError(f"input {modality!r} is missing but marked present")
    x = inputs[modality]
    expected = (batch, *INPUT_SHAPES[modality])
    if tuple(x.shape) != expected:
        raise ValueError(f"input {modality!r} must have shape {expected}, got {tuple(x.shape)}")
    return x


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
        self.head = PoseHead(config.feature_dim, config.head_hidden)

    def weight_parameters(self) -> list[nn.Parameter]:
        """[modality_logits] when learn_weights, else [] (frozen uniform weights)."""
        return [self.modality_logits] if self.config.learn_weights else []

    def modality_weights(self, present: Tensor) -> Tensor:
        return renormalised_weights(self.modality_logits, present)

    def forward_from_tokens(
        self, tokens: dict[str, Tensor], present: Tensor, compute_losses: bool | None = None
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
            return MidasOutput(self._pose(teacher), weights, zero, zero, zero)

        refined_latent, gamma = self.refiner.refine(self.refiner.to_latent(students))
        refined = self.refiner.from_latent(refined_latent)
        pose = self._pose(_scatter_weighted(batch, rows, row_weights, refined))
        if not losses:
            return MidasOutput(pose, weights, zero, zero, zero, gamma=gamma)

        teacher_latent = self.refiner.to_latent(teacher.detach()).detach()
        return MidasOutput(
            pose=pose,
            weights=weights,
            diffusion_loss=self.refiner.diffusion_loss(teacher_latent),
            kd_loss=F.mse_loss(refined_latent, teacher_latent[rows]),
            ae_loss=self.refiner.autoencoder_loss(teacher),
            teacher_pose=self._pose(teacher),
            gamma=gamma,
        )

    def _pose(self, features: Tensor) -> Tensor:
        return self.head(features) + self.pose_mean
