"""Modality subsets: the papers' seven evaluation rows and per-sample random subsets for training."""

from __future__ import annotations

import torch

from midas_ros import MODALITIES

# The papers' row order: D, L, W, D+L, D+W, L+W, D+L+W (W = WiFi CSI).
SUBSETS: tuple[tuple[str, ...], ...] = (
    ("depth",),
    ("lidar",),
    ("csi",),
    ("depth", "lidar"),
    ("depth", "csi"),
    ("lidar", "csi"),
    ("depth", "lidar", "csi"),
)
SHORT_NAMES: dict[str, str] = {"depth": "D", "lidar": "L", "csi": "W"}


def subset_label(subset: tuple[str, ...]) -> str:
    """'D+L' style label of a subset, in MODALITIES order."""
    return "+".join(SHORT_NAMES[m] for m in MODALITIES if m in subset)


SUBSET_LABELS: tuple[str, ...] = tuple(subset_label(s) for s in SUBSETS)


def subset_mask(subset: tuple[str, ...]) -> torch.Tensor:
    """(3,) bool mask in MODALITIES order."""
    unknown = set(subset) - set(MODALITIES)
    if unknown or not subset:
        raise ValueError(f"a subset is a non-empty selection of {MODALITIES}, got {subset}")
    return torch.tensor([m in subset for m in MODALITIES])


_ALL_MASKS = torch.stack([subset_mask(s) for s in SUBSETS])  # (7, 3)


def random_present(available: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per sample, a uniformly drawn non-empty subset of the modalities it actually has.

    available: (B, 3) bool, which modality files exist for each frame (each row needs at least one).
    Returns (B, 3) bool. Deterministic for the generator's state.
    """
    if available.ndim != 2 or available.shape[1] != len(MODALITIES):
        raise ValueError(f"available must be (B, {len(MODALITIES)}), got {tuple(available.shape)}")
    available = available.bool().cpu()
    if not available.any(dim=1).all():
        raise ValueError("every sample needs at least one available modality")
    # A subset is allowed when it uses no modality the sample lacks.
    allowed = ~(_ALL_MASKS[None] & ~available[:, None]).any(dim=2)  # (B, 7)
    choice = torch.multinomial(allowed.float(), 1, generator=generator).squeeze(1)
    return _ALL_MASKS[choice]
