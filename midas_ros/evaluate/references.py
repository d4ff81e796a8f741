"""Reference poses that use no sensor, or only where the person is: what a model must beat.

Two references are scored beside every model, on the same frames:

- **Constant pose** (no sensor at all): the generalised Procrustes mean of the training poses, the one
  shape that best fits every training pose after a per-frame similarity fit. Its PA-MPJPE is the floor of
  knowing nothing (PA-MPJPE ignores where the pose stands, how it is turned and how large it is). For
  MPJPE and the placement errors it stands at the mean training pelvis position, turned to the circular
  mean of the training headings (documented choice: the constant that a no-sensor predictor would
  emit; the canonical heading, facing +x, would be arbitrary and can be 180 deg off a typical frame).
- **Placement only**: the same canonical mean shape with its pelvis on the true pelvis and turned about z
  to the true heading. Its MPJPE is what knowing only where the person stands and which way they face
  buys; its root and heading errors are 0 by construction, and its PA-MPJPE equals the constant's.

The averaged base-frame pose (`predict.mean_pose_errors`, the report's reference before) is no such
floor: averaging poses over random headings collapses the skeleton, so its PA-MPJPE is far above the
Procrustes mean's.

The training stages store the constant pose in every checkpoint's JSON metadata under
``REFERENCE_KEY`` (see `ReferencePose.to_metadata`), so any later evaluation or demo can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midas_ros.evaluate.metrics import ROOT, heading_rad, procrustes_align

REFERENCE_KEY = "reference_pose"  # key in a checkpoint's JSON "metadata"
_MAX_ITERATIONS = 100
_TOLERANCE_M = 1e-7  # convergence: largest joint move of the mean between iterations


def rotate_about_z(joints: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Poses (F, J, 3) (or one (J, 3)) turned about the z axis through the origin by `angle` rad
    (scalar or (F,))."""
    joints = np.asarray(joints, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    x, y = joints[..., 0], joints[..., 1]
    if np.ndim(angle) == 1:
        c, s = c[:, None], s[:, None]
    return np.stack([c * x - s * y, s * x + c * y, joints[..., 2]], axis=-1)


def canonical_poses(joints: np.ndarray) -> np.ndarray:
    """(F, J, 3): each pose with its pelvis at the origin and turned about z to face +x (heading 0)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2:
        joints = joints[None]
    centred = joints - joints[:, ROOT : ROOT + 1]
    return rotate_about_z(centred, -heading_rad(joints))


def _size(poses: np.ndarray) -> np.ndarray:
    """(F,) root-mean-square distance of the joints from their centroid."""
    centred = poses - poses.mean(axis=-2, keepdims=True)
    return np.sqrt((centred**2).sum(axis=-1).mean(axis=-1))


def procrustes_mean_pose(
    joints: np.ndarray, max_iterations: int = _MAX_ITERATIONS, tol: float = _TOLERANCE_M
) -> np.ndarray:
    """Generalised Procrustes mean (17, 3) of training poses (F, 17, 3), metres, in the canonical frame:
    pelvis at the origin, facing +x, z up.

    Every pose starts canonical (pelvis at the origin, heading 0); then, until the mean moves less than
    `tol`: each pose is fitted onto the current mean with the similarity transform PA-MPJPE uses
    (rotation, translation, isotropic scale), the fitted poses are averaged, and the average is put back
    into the gauge (rotated onto the first mean, so that it stays upright; scaled to the training poses'
    mean size; pelvis to the origin; turned to heading 0).
    """
    poses = canonical_poses(joints)
    if len(poses) == 0:
        raise ValueError("the Procrustes mean needs at least one pose")
    size = float(_size(poses).mean())
    first = poses.mean(axis=0)

    def gauge(mean: np.ndarray) -> np.ndarray:
        mean = procrustes_align(mean, first)[0]  # rotation (and scale) onto the upright first mean
        mean = mean * (size / max(float(_size(mean)), 1e-12))
        return canonical_poses(mean)[0]

    mean = gauge(first)
    for _ in range(max_iterations):
        aligned = procrustes_align(poses, np.broadcast_to(mean, poses.shape))
        new = gauge(aligned.mean(axis=0))
        moved = float(np.abs(new - mean).max())
        mean = new
        if moved < tol:
            break
    return mean


def circular_mean_rad(angles: np.ndarray) -> float:
    """Mean direction of angles (rad); 0 when they cancel out exactly."""
    angles = np.asarray(angles, dtype=np.float64)
    return float(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()))


@dataclass(frozen=True)
class ReferencePose:
    """The no-sensor constant pose of a training set, and where it is placed."""

    pose: np.ndarray  # (17, 3) canonical Procrustes mean (metres): pelvis at origin, facing +x, z up
    mean_root: np.ndarray  # (3,) mean training pelvis position in the base frame (metres)
    mean_heading_rad: float  # circular mean of the training headings
    frames: int  # training poses it was computed from
    source: str = ""  # where it came from (a checkpoint, or computed now), for the report

    @classmethod
    def from_training(cls, joints: np.ndarray, source: str = "") -> ReferencePose:
        """Computed from training poses (F, 17, 3) in the base frame."""
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or len(joints) == 0:
            raise ValueError(f"need training poses (F, 17, 3), got {joints.shape}")
        return cls(
            pose=procrustes_mean_pose(joints),
            mean_root=joints[:, ROOT].mean(axis=0),
            mean_heading_rad=circular_mean_rad(heading_rad(joints)),
            frames=len(joints),
            source=source or f"computed from {len(joints)} training frames",
        )

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready form for a checkpoint's metadata (under REFERENCE_KEY)."""
        return {
            "procrustes_mean_m": np.round(self.pose, 6).tolist(),
            "mean_root_m": np.round(self.mean_root, 6).tolist(),
            "mean_heading_deg": round(float(np.degrees(self.mean_heading_rad)), 4),
            "frames": int(self.frames),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], source: str = "") -> ReferencePose:
        pose = np.asarray(meta["procrustes_mean_m"], dtype=np.float64)
        root = np.asarray(meta["mean_root_m"], dtype=np.float64)
        if pose.shape != (17, 3) or root.shape != (3,):
            raise ValueError(f"reference pose metadata has shapes {pose.shape}, {root.shape}")
        return cls(
            pose=pose,
            mean_root=root,
            mean_heading_rad=float(np.radians(meta.get("mean_heading_deg", 0.0))),
            frames=int(meta.get("frames", 0)),
            source=source,
        )

    def constant(self, frames: int) -> np.ndarray:
        """(frames, 17, 3): the constant prediction, turned to the mean heading at the mean pelvis."""
        placed = rotate_about_z(self.pose, self.mean_heading_rad) + self.mean_root
        return np.broadcast_to(placed, (frames, *placed.shape))

    def placed(self, target: np.ndarray) -> np.ndarray:
        """(F, 17, 3): the canonical shape with its pelvis on each target pelvis, facing the target's way."""
        target = np.asarray(target, dtype=np.float64)
        if target.ndim == 2:
            target = target[None]
        turned = rotate_about_z(np.broadcast_to(self.pose, target.shape), heading_rad(target))
        return turned + target[:, ROOT : ROOT + 1]


def reference_metadata(train_joints: np.ndarray) -> dict[str, Any]:
    """{REFERENCE_KEY: ...} for a checkpoint's metadata, from the training poses a stage was given."""
    return {REFERENCE_KEY: ReferencePose.from_training(train_joints).to_metadata()}


def reference_from_info(info: dict[str, Any], source: str = "") -> ReferencePose | None:
    """The reference stored in a checkpoint's JSON (read_checkpoint_info), None when it has none."""
    meta = (info.get("metadata") or {}).get(REFERENCE_KEY)
    return None if meta is None else ReferencePose.from_metadata(meta, source)


def reference_from_checkpoint(path: str | Path) -> ReferencePose | None:
    """The reference stored in a checkpoint's JSON (path: stem, .json or .safetensors), None when absent."""
    from midas_ros.model.checkpoint import read_checkpoint_info

    return reference_from_info(read_checkpoint_info(path), f"stored in {Path(path)}")
