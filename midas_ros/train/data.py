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


@dataclass
class TokenCache:
    """Frozen-encoder tokens of every frame: {modality: (N, C, L_m)} float16 on the CPU, plus the
    availability mask and joints. Stage 2 trains everything after the encoders on these."""

    tokens: dict[str, torch.Tensor]
    available: torch.Tensor  # (N, 3) bool
    joints: torch.Tensor  # (N, 17, 3) float32

    def __len__(self) -> int:
        return len(self.joints)

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return {m: t[index].to(device=device, dtype=torch.float32) for m, t in self.tokens.items()}


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
    tokens: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
        index = np.arange(start, min(start + batch_size, n))
        present = torch.from_numpy(data.present[index]).to(device)
        out = model.encode(batch_inputs(data, index, device), present)
        for m in MODALITIES:
            if m not in tokens:
                tokens[m] = torch.zeros((n, *out[m].shape[1:]), dtype=dtype)
            tokens[m][index] = out[m].to("cpu", dtype)
    return TokenCache(tokens, torch.from_numpy(data.present.copy()), torch.from_numpy(data.joints.copy()))
