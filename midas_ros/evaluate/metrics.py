"""Pose errors in the MM-Fi toolbox convention: MPJPE and PA-MPJPE, in millimetres.

MPJPE is the mean Euclidean joint distance on the coordinates as given (no root alignment). PA-MPJPE first
fits, per frame, the similarity transform (rotation, translation, isotropic scale; no reflection) that best
maps the prediction onto the ground truth in the least-squares sense (Umeyama's solution), then takes the
same mean.

Placement errors, for any pose in the base frame (z up): the root position error is the distance of the
pelvis (joint 0); the heading error is the absolute difference, wrapped to [0, 180] degrees, of the two
facing directions. A pose faces along the horizontal normal of its hip and shoulder lines: with the H36M
joints' left-minus-right vector a (hips plus shoulders), forward = a x z_up, as in the simulator's body
frame (x forward, y left, z up). Heading = atan2(forward_y, forward_x); 0 = facing +x, away from the
depth camera.
"""

from __future__ import annotations

import numpy as np

M_TO_MM = 1000.0
RAD_TO_DEG = 180.0 / np.pi
ROOT = 0  # pelvis
LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 4, 1, 11, 14
# Per-frame error arrays of frame_errors, by key; the means of the first two are the table's MPJPE / PA-MPJPE.
FRAME_METRICS = ("mpjpe", "pa_mpjpe", "root_mm", "heading_deg")


def _validate(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (F, J, 3); a single frame (J, 3) is promoted. Raises ValueError on bad input."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ in shape")
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape[0] == 0 or pred.shape[1] == 0:
        raise ValueError(f"expected (frames, joints, 3) or (joints, 3) arrays, got {pred.shape}")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("poses contain NaN or Inf")
    return pred, target


def joint_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(F, J) Euclidean distance of each joint, in the input's units."""
    pred, target = _validate(pred, target)
    return np.linalg.norm(pred - target, axis=-1)


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per frame, `pred` moved by the least-squares similarity transform onto `target`. (F, J, 3)."""
    pred, target = _validate(pred, target)
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_t = target.mean(axis=1, keepdims=True)
    p0 = pred - mu_p
    t0 = target - mu_t
    var_p = (p0**2).sum(axis=(1, 2))  # (F,)
    # Cross-covariance; with rows as points, R maps p0 onto t0 as p0 @ R.
    cov = np.einsum("fji,fjk->fik", p0, t0)  # (F, 3, 3)
    u, s, vt = np.linalg.svd(cov)
    # A reflection would lower the residual for degenerate or mirrored poses but is not a rigid motion:
    # flip the axis of the smallest singular value when det(U V^T) < 0 (Umeyama 1991).
    d = np.sign(np.linalg.det(u @ vt))
    d[d == 0] = 1.0
    flip = np.ones_like(s)
    flip[:, -1] = d
    rot = u @ (flip[:, :, None] * vt)  # U diag(1, 1, d) V^T
    # Scale: trace(diag(s) diag(1,1,d)) / var_p; a frame whose prediction collapses to a point keeps scale 0.
    scale = np.divide((s * flip).sum(axis=1), var_p, out=np.zeros_like(var_p), where=var_p > 0)
    return scale[:, None, None] * np.einsum("fji,fik->fjk", p0, rot) + mu_t


def mpjpe_mm(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint position error in mm; inputs in metres, (F, J, 3) or (J, 3)."""
    return float(joint_errors(pred, target).mean() * M_TO_MM)


def pa_mpjpe_mm(pred: np.ndarray, target: np.ndarray) -> float:
    """Procrustes-aligned MPJPE in mm (per-frame similarity fit); inputs in metres."""
    pred, target = _validate(pred, target)
    aligned = procrustes_align(pred, target)
    return float(joint_errors(aligned, target).mean() * M_TO_MM)


def pose_errors_mm(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Both metrics at once: {"mpjpe": ..., "pa_mpjpe": ...} in mm."""
    return {"mpjpe": mpjpe_mm(pred, target), "pa_mpjpe": pa_mpjpe_mm(pred, target)}


def facing_direction(joints: np.ndarray) -> np.ndarray:
    """(F, 2) unit horizontal facing direction of each pose (H36M order, z up); (0, 0) when the hip and
    shoulder lines are vertical or collapsed."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2:
        joints = joints[None]
    across = (joints[:, LEFT_HIP] - joints[:, RIGHT_HIP]) + (
        joints[:, LEFT_SHOULDER] - joints[:, RIGHT_SHOULDER]
    )
    forward = np.stack([across[:, 1], -across[:, 0]], axis=1)  # (a x z_up) in the floor plane
    norm = np.linalg.norm(forward, axis=1, keepdims=True)
    return np.divide(forward, norm, out=np.zeros_like(forward), where=norm > 0)


def heading_rad(joints: np.ndarray) -> np.ndarray:
    """(F,) facing angle about z, radians in (-pi, pi]; 0 = facing +x."""
    forward = facing_direction(joints)
    return np.arctan2(forward[:, 1], forward[:, 0])


def wrap_rad(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi]."""
    return -np.remainder(np.pi - np.asarray(angle, dtype=np.float64), 2 * np.pi) + np.pi


def heading_error_deg(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(F,) absolute wrapped difference of the facing directions, degrees in [0, 180]."""
    pred, target = _validate(pred, target)
    return np.abs(wrap_rad(heading_rad(pred) - heading_rad(target))) * RAD_TO_DEG


def root_error_mm(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(F,) distance of the pelvis (joint 0), mm; inputs in metres."""
    pred, target = _validate(pred, target)
    return np.linalg.norm(pred[:, ROOT] - target[:, ROOT], axis=-1) * M_TO_MM


def frame_errors(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame errors {FRAME_METRICS key: (F,)}: MPJPE, PA-MPJPE and root error in mm, heading error
    in degrees. Their means over any set of frames are that set's table entries."""
    pred, target = _validate(pred, target)
    return {
        "mpjpe": joint_errors(pred, target).mean(axis=1) * M_TO_MM,
        "pa_mpjpe": joint_errors(procrustes_align(pred, target), target).mean(axis=1) * M_TO_MM,
        "root_mm": root_error_mm(pred, target),
        "heading_deg": heading_error_deg(pred, target),
    }


def mean_errors(frame_errs: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Means of frame_errors' arrays over the frames of a boolean mask (all when None); {} for no frames."""
    if mask is None:
        return {k: float(v.mean()) for k, v in frame_errs.items()} if _frames(frame_errs) else {}
    if not np.any(mask):
        return {}
    return {k: float(v[mask].mean()) for k, v in frame_errs.items()}


def _frames(frame_errs: dict[str, np.ndarray]) -> int:
    return len(next(iter(frame_errs.values()))) if frame_errs else 0
