"""Small synthetic PreprocessedSet arrays for tests and smoke runs of the training code (no simulator).

Each frame's pose is a base skeleton moved by a 3-D latent; every modality carries the latent in its own
way (the depth points' height and width, the LiDAR points' height, a CSI pattern), with CSI the noisiest,
so models can learn something. Depth and LiDAR are points of a box-shaped "person" 3 m ahead.
"""

from __future__ import annotations

import numpy as np

from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.mmfi.preprocessed import PreprocessedSet


def synthetic_set(
    subjects: tuple[int, ...] = (1, 2, 11, 12),
    frames_per_subject: int = 24,
    seed: int = 0,
    missing: float = 0.0,
) -> PreprocessedSet:
    """A PreprocessedSet with the real shapes; `missing` is the share of (frame, modality) entries absent."""
    rng = np.random.default_rng(seed)
    n = len(subjects) * frames_per_subject
    latent = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    base = rng.normal(scale=0.3, size=(17, 3)).astype(np.float32) + np.array([3.0, 0.0, 1.0], np.float32)
    joints = base + 0.2 * latent[:, None, :] + rng.normal(scale=0.01, size=(n, 17, 3)).astype(np.float32)

    def person(count: int, height: np.ndarray, width: np.ndarray) -> np.ndarray:
        unit = rng.uniform(0, 1, size=(n, count, 3)).astype(np.float32)
        x = 2.9 + 0.2 * unit[..., 0]
        y = (unit[..., 1] - 0.5) * width[:, None]
        return np.stack([x, y, unit[..., 2] * height[:, None]], axis=-1)

    depth = person(INPUT_SHAPES["depth"][0], 1.7 + 0.2 * latent[:, 0], 0.5 + 0.2 * latent[:, 1])
    lidar = person(INPUT_SHAPES["lidar"][0], 1.7 + 0.2 * latent[:, 0], 0.5 + 0.2 * latent[:, 1])
    csi = rng.normal(scale=1.0, size=(n, 6, 114, 10)).astype(np.float32)
    csi[:, :3] += latent[:, 2, None, None, None]

    present = rng.random((n, 3)) >= missing
    present[~present.any(axis=1), 0] = True  # every frame keeps one modality, as PreprocessedSet guarantees
    for j, array in enumerate((depth, lidar, csi)):
        array[~present[:, j]] = 0.0
    return PreprocessedSet(
        depth=depth.astype(np.float16),
        lidar=lidar,
        csi=csi.astype(np.float16),
        present=present,
        joints=joints,
        subject=np.repeat(np.asarray(subjects, dtype=np.int16), frames_per_subject),
        action=np.tile(np.arange(1, frames_per_subject + 1, dtype=np.int16) % 27 + 1, len(subjects)),
        frame=np.tile(np.arange(1, frames_per_subject + 1, dtype=np.int16), len(subjects)),
        rig=np.full(len(subjects) * frames_per_subject, -1, dtype=np.int16),
        source="synthetic",
    )
