"""MidasConfig: the hyper-parameters of MIDAS and the baselines (JSON-serialisable, stored in checkpoints)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any

# DiffKD's schedule: 10 DDIM inference steps over 1000 training steps, of which only the second half runs.
DIFFKD_TIMESTEPS: tuple[int, ...] = (400, 300, 200, 100, 0)


@dataclass(frozen=True)
class MidasConfig:
    """Sizes and switches shared by MIDAS and the baselines.

    The defaults are the deployed model (d = 512, 32 tokens, a 256-channel diffusion latent);
    tests use tiny values for speed.
    """

    feature_dim: int = 512  # token width d of every modality after its encoder and projection
    num_tokens: int = 32  # tokens per modality after the projection
    encoder_width: int = 24  # base channel count of the encoders (they scale with it)
    latent_channels: int | None = 256  # diffusion latent (PTA 3.3 autoencoder); None = diffuse at d
    bottleneck_ratio: int = 4  # channel reduction inside the noise predictor's Bottlenecks
    denoise_timesteps: tuple[int, ...] = DIFFKD_TIMESTEPS  # DDIM timesteps visited by the refinement
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    noise_seed: int = 0  # seed of the fixed noise used at inference (deterministic outputs)
    head_hidden: int = 256  # width of the joint-query pose head (4 attention heads)
    use_diffkd: bool = True  # False = "w/o Diff": weighted sum of raw projected features
    learn_weights: bool = True  # False = "w/o Meta": uniform weights, frozen

    def __post_init__(self) -> None:
        steps = self.denoise_timesteps
        if not steps or any(a <= b for a, b in itertools.pairwise(steps)):
            raise ValueError(f"denoise_timesteps must be non-empty and strictly decreasing, got {steps}")
        if steps[0] >= self.num_train_timesteps or steps[-1] < 0:
            raise ValueError(f"denoise_timesteps must lie in [0, {self.num_train_timesteps}), got {steps}")
        if self.head_hidden <= 0 or self.head_hidden % 4:
            raise ValueError(f"head_hidden must be a positive multiple of 4, got {self.head_hidden}")
        if self.diffusion_channels % max(self.bottleneck_ratio, 8) != 0:
            raise ValueError("the diffusion channels must be divisible by bottleneck_ratio and by 8")

    @property
    def diffusion_channels(self) -> int:
        """Channel count the diffusion model works at (the latent, or d without the autoencoder)."""
        return self.latent_channels if self.latent_channels is not None else self.feature_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        data = asdict(self)
        data["denoise_timesteps"] = list(self.denoise_timesteps)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MidasConfig:
        """Inverse of to_dict; unknown keys are an error (a checkpoint from another version)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MidasConfig keys: {sorted(unknown)}")
        data = dict(data)
        if "denoise_timesteps" in data:
            data["denoise_timesteps"] = tuple(int(t) for t in data["denoise_timesteps"])
        return cls(**data)


def tiny_config(**overrides: Any) -> MidasConfig:
    """A very small config for tests and smoke runs (same structure, far fewer parameters)."""
    base: dict[str, Any] = {
        "feature_dim": 64,
        "num_tokens": 8,
        "encoder_width": 8,
        "latent_channels": 32,
        "head_hidden": 32,
    }
    base.update(overrides)
    return MidasConfig(**base)
