"""PosePredictor: inference from a checkpoint (numpy in, numpy out), a frame at a time for the ROS fusion
node or many at once for fast replay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        return self.predict_batch([sample])[0]

    def predict_batch(
        self, samples: Sequence[Mapping[str, np.ndarray]], max_batch: int = 32
    ) -> list[Prediction]:
        """Many frames' `predict` at once: frames with the same modalities go through the model together,
        up to max_batch at a time (several times faster a frame on a CPU than one by one). A frame's
        result does not depend on the others in its batch (eval-mode normalisation, fixed refinement
        noise), so it is the one `predict` gives it."""
        checked = [_checked(sample) for sample in samples]
        groups: dict[tuple[str, ...], list[int]] = {}
        for k, sample in enumerate(checked):
            groups.setdefault(tuple(m for m in MODALITIES if m in sample), []).append(k)
        results: list[Prediction | None] = [None] * len(checked)
        for subset, members in groups.items():
            for start in range(0, len(members), max_batch):
                chunk = members[start : start + max_batch]
                inputs = {
                    m: torch.from_numpy(np.stack([checked[k][m] for k in chunk])).to(self.device)
                    for m in subset
                }
                present = torch.tensor([[m in subset for m in MODALITIES]] * len(chunk), device=self.device)
                with torch.inference_mode():
                    out = self.model(inputs, present)
                poses = out.pose.float().cpu().numpy()
                weights = out.weights.float().cpu().tolist()
                for row, k in enumerate(chunk):
                    results[k] = Prediction(poses[row], dict(zip(MODALITIES, weights[row], strict=True)))
        return results  # type: ignore[return-value]  # every frame is in one group


def _checked(sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A frame's inputs as contiguous float32 arrays, after checking modality names, shapes and values."""
    if not sample:
        raise ValueError("predict needs at least one modality")
    checked = {}
    for m, array in sample.items():
        if m not in INPUT_SHAPES:
            raise ValueError(f"unknown modality {m!r}; expected one of {MODALITIES}")
        arr = np.asarray(array)
        if arr.shape != INPUT_SHAPES[m]:
            raise ValueError(f"{m} input must have shape {INPUT_SHAPES[m]}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{m} input contains NaN or Inf")
        checked[m] = np.ascontiguousarray(arr, dtype=np.float32)
    return checked
