"""Pose errors in the MM-Fi toolbox convention: MPJPE and PA-MPJPE, in millimetres.

MPJPE is the mean Euclidean joint distance on the coordinates as given (no root alignment). PA-MPJPE first
fits, per frame, the similarity transform (rotation, translation, isotropic scale; no reflection) that best
maps the prediction onto the ground truth in the least-squares sense (Umeyama's solution), then takes the
same mean.
"""

from __future__ import annotations

import numpy as np

M_TO_MM = 1000.0


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
    aligned = procrustes_align(pred, target)
    return float(joint_errors(aligned, target).mean() * M_TO_MM)


def pose_errors_mm(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Both metrics at once: {"mpjpe": ..., "pa_mpjpe": ...} in mm."""
    return {"mpjpe": mpjpe_mm(pred, target), "pa_mpjpe": pa_mpjpe_mm(pred, target)}
