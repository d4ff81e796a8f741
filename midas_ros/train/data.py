"""Training data: the preprocessed arrays of a data folder, batches as tensors, and the token cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.mmfi.dataset import MMFiDataset
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import FusionModel
from midas_ros.model.person_frame import choose_anchor, points_anchor, to_frame

logger = logging.getLogger(__name__)


def generate_dataset(root: Path, preset: str, seed: int = 0, workers: int = 2) -> None:
    """Simulate the `preset` data set (midas_ros.sim.presets) into `root`, each sequence through its
    rig from the pool; `workers` processes."""
    from midas_ros.sim.generate import generate  # open3d: only when data must be made
    from midas_ros.sim.presets import PRESETS

    spec = PRESETS[preset]
    logger.info("generating the %s data set into %s with %d workers", preset, root, workers)
    generate(root, spec["subjects"], spec["actions"], spec["frames"], seed, workers)


def load_preprocessed(root: Path, cache: Path, workers: int = 2) -> PreprocessedSet:
    """All frames under `root` (protocol P3, no split) preprocessed, cached at `cache` (.npz)."""
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    dataset = MMFiDataset(root, split="all")
    if len(dataset) == 0:
        raise ValueError(f"no MM-Fi frames found under {root}")
    return PreprocessedSet.load_or_build(cache, dataset, workers=workers)


def batch_inputs(data: PreprocessedSet, index: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    """Float32 model inputs of some rows on `device`."""
    arrays = data.inputs(index)
    return {m: torch.from_numpy(arrays[m]).to(device) for m in MODALITIES}


def data_anchors(data: PreprocessedSet, rows: np.ndarray, chunk: int = 1024) -> dict[str, torch.Tensor]:
    """{"depth", "lidar"}: (n, 3) person-frame anchors of each modality's points on `rows` (zeros where
    the modality is absent)."""
    out = {}
    for m in ("depth", "lidar"):
        source = getattr(data, m)
        parts = [
            points_anchor(torch.from_numpy(source[rows[i : i + chunk]].astype(np.float32)))
            for i in range(0, len(rows), chunk)
        ]
        out[m] = torch.cat(parts) if parts else torch.zeros(0, 3)
    return out


def person_frame_statistics(data: PreprocessedSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean pose (17, 3) in the person frame, default anchor (3,)) of the training rows: what a model
    adds to its head's output, and the frame it uses when only CSI is present."""
    joints = torch.from_numpy(data.joints[rows])
    pelvis = joints[:, 0, :2].double().mean(dim=0)
    default = torch.tensor([pelvis[0], pelvis[1], torch.atan2(pelvis[1], pelvis[0])], dtype=torch.float32)
    anchors = data_anchors(data, rows)
    present = torch.from_numpy(data.present[rows])
    anchor = choose_anchor(anchors["depth"], anchors["lidar"], default, present)
    return to_frame(joints, anchor).double().mean(dim=0).float().numpy(), default.numpy()


@dataclass
class TokenCache:
    """Frozen-encoder tokens of every frame, float16 on the CPU, and what picks a batch's person frame.

    LiDAR tokens depend on the frame: "lidar" holds them in depth's frame (used when depth is present)
    and "lidar_alone" in LiDAR's own (depth absent). anchors: {"depth", "lidar"} (N, 3).
    """

    tokens: dict[str, torch.Tensor]  # depth, lidar, lidar_alone, csi: (N, C, L_m)
    anchors: dict[str, torch.Tensor]
    default_anchor: torch.Tensor  # (3,)
    available: torch.Tensor  # (N, 3) bool
    joints: torch.Tensor  # (N, 17, 3) float32

    def __len__(self) -> int:
        return len(self.joints)

    def batch(
        self, index: torch.Tensor, present: torch.Tensor, device: torch.device
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(tokens {modality: (B, C, L)}, anchor (B, 3)) of some rows with a modality subset present."""
        present = present.to(device)
        tokens = {m: self.tokens[m][index].to(device=device, dtype=torch.float32) for m in MODALITIES}
        alone = self.tokens["lidar_alone"][index].to(device=device, dtype=torch.float32)
        tokens["lidar"] = torch.where(present[:, 0, None, None], tokens["lidar"], alone)
        anchor = choose_anchor(
            self.anchors["depth"][index].to(device),
            self.anchors["lidar"][index].to(device),
            self.default_anchor,
            present,
        )
        return tokens, anchor


@torch.no_grad()
def build_token_cache(
    model: FusionModel,
    data: PreprocessedSet,
    device: torch.device,
    batch_size: int = 128,
    desc: str = "tokens",
    dtype: torch.dtype = torch.float16,
) -> TokenCache:
    """Run the (frozen, eval-mode) encoders once over all frames of `data`: the one place that does.

    Stored as float16 by default to halve the memory (tokens are post-ReLU activations of order 1; the
    relative rounding of 5e-4 is far below the noise of training); evaluation asks for float32.
    """
    model.eval()
    n = len(data)
    rows = np.arange(n)
    anchors = data_anchors(data, rows)
    available = torch.from_numpy(data.present.copy())
    default = model.default_anchor.detach().cpu()
    tokens: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
        index = np.arange(start, min(start + batch_size, n))
        present = available[index].to(device)
        inputs = batch_inputs(data, index, device)
        anchor = choose_anchor(anchors["depth"][index], anchors["lidar"][index], default, present.cpu())
        out = model.encode(inputs, present, anchor.to(device))
        # LiDAR in its own frame, for the subsets without depth (absent rows: zeros, never used).
        alone_anchor = torch.where(present[:, 1:2].cpu(), anchors["lidar"][index], default)
        out["lidar_alone"] = model.encode_modality(
            "lidar", inputs["lidar"], present[:, 1], alone_anchor.to(device)
        )
        for m, value in out.items():
            if m not in tokens:
                tokens[m] = torch.zeros((n, *value.shape[1:]), dtype=dtype)
            tokens[m][index] = value.to("cpu", dtype)
    return TokenCache(tokens, anchors, default, available, torch.from_numpy(data.joints.copy()))
