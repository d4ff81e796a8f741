"""PosePredictor: batch-1 inference from a checkpoint, for the ROS fusion node (numpy in, numpy out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from midas_ros import MODALITIES
from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.model.checkpoint import load_checkpoint, read_checkpoint_info
from midas_ros.model.midas import FusionModel


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda when available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Prediction:
    """One frame's output: the joints and the fusion weights used for them (absent modalities: 0)."""

    joints: np.ndarray  # (17, 3) float32 metres
    weights: dict[str, float]


class PosePredictor:
    """Wraps a trained model in eval mode; deterministic (fixed refinement noise)."""

    def __init__(
        self, model: FusionModel, device: str | torch.device = "auto", info: dict | None = None
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.info = info or {}  # the checkpoint's JSON (kind, config, metadata) when loaded from one

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "auto", num_threads: int | None = None
    ) -> PosePredictor:
        """Load a checkpoint. num_threads: if given, sets torch's (process-wide) intra-op thread count;
        on a small shared CPU, 1 is much faster for batch-1 inference than oversubscribed cores."""
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        dev = resolve_device(device)
        return cls(load_checkpoint(path, dev), dev, read_checkpoint_info(path))

    @property
    def kind(self) -> str:
        return self.model.kind

    def predict(self, sample: Mapping[str, np.ndarray]) -> Prediction:
        """{modality: preprocessed array} (missing modalities simply absent) -> the pose and the weights
        the same forward pass fused with."""
        if not sample:
            raise ValueError("predict needs at least one modality")
        inputs: dict[str, torch.Tensor] = {}
        for m, array in sample.items():
            if m not in INPUT_SHAPES:
                raise ValueError(f"unknown modality {m!r}; expected one of {MODALITIES}")
            arr = np.asarray(array)
            if arr.shape != INPUT_SHAPES[m]:
                raise ValueError(f"{m} input must have shape {INPUT_SHAPES[m]}, got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{m} input contains NaN or Inf")
            inputs[m] = (
                torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).unsqueeze(0).to(self.device)
            )
        present = torch.tensor([[m in inputs for m in MODALITIES]], device=self.device)
        with torch.inference_mode():
            out = self.model(inputs, present)
        weights = out.weights[0].float().cpu().tolist()
        return Prediction(out.pose[0].float().cpu().numpy(), dict(zip(MODALITIES, weights, strict=True)))
