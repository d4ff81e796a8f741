"""Slices of the test frames: facing the depth camera or not, seen or unseen actions, seen or unseen rigs.

Joints are in the base frame (`midas_ros.rig`): the depth camera stands above the origin looking along
+x, so a person faces the camera when their facing direction (`metrics.facing_direction`) points within
45 deg of the floor direction from their pelvis to the origin. Actions and rigs are unseen when the split
holds them out of training (`SubjectSplit.held_out_actions` / `held_out_rigs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from midas_ros.evaluate.metrics import ROOT, facing_direction

FACING_MAX_DEG = 45.0
NO_RIG = -1  # PreprocessedSet.rig of a frame without a rig sidecar (the MM-Fi rig)

# Slice groups, in report order: key -> title.
SLICE_GROUPS: dict[str, str] = {
    "heading": f"Facing the depth camera (within {FACING_MAX_DEG:.0f} deg) vs all headings",
    "actions": "Seen vs unseen actions",
    "rigs": "Seen vs unseen rigs",
}


@dataclass(frozen=True)
class Slice:
    """A named set of test frames."""

    group: str  # a SLICE_GROUPS key
    name: str  # e.g. "unseen actions"
    mask: np.ndarray  # (N,) bool over the test frames
    detail: str = ""  # e.g. which actions are held out


def facing_camera(
    joints: np.ndarray, camera_xy: tuple[float, float] = (0.0, 0.0), max_deg: float = FACING_MAX_DEG
) -> np.ndarray:
    """(F,) bool: the pose faces within `max_deg` of the floor direction from its pelvis to the camera's
    floor point (the base frame's origin). A pose standing on that point faces nothing (False)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2:
        joints = joints[None]
    forward = facing_direction(joints)
    to_camera = np.asarray(camera_xy, dtype=np.float64) - joints[:, ROOT, :2]
    dist = np.linalg.norm(to_camera, axis=1)
    cos = np.einsum("fi,fi->f", forward, to_camera) / np.where(dist > 0, dist, 1.0)
    return (dist > 0) & (np.linalg.norm(forward, axis=1) > 0) & (cos >= np.cos(np.radians(max_deg)) - 1e-12)


def frame_rigs(data: Any) -> np.ndarray:
    """(N,) rig id of each frame of a PreprocessedSet; NO_RIG for all when the set carries no rig ids."""
    rig = getattr(data, "rig", None)
    return np.full(len(data), NO_RIG, dtype=np.int64) if rig is None else np.asarray(rig, dtype=np.int64)


def split_slices(data: Any, split: Any, max_deg: float = FACING_MAX_DEG) -> list[Slice]:
    """The slices of the test frames `data` (a PreprocessedSet) under a SubjectSplit, in report order:
    facing the camera / all headings, seen / unseen actions, seen / unseen rigs."""
    n = len(data)
    actions = tuple(getattr(split, "held_out_actions", ()))
    rigs = tuple(getattr(split, "held_out_rigs", ()))
    unseen_action = np.isin(np.asarray(data.action), actions)
    unseen_rig = np.isin(frame_rigs(data), rigs)
    held = f"held-out actions: {', '.join(map(str, actions))}" if actions else "the split holds out no action"
    held_rigs = f"held-out rigs: {', '.join(map(str, rigs))}" if rigs else "the split holds out no rig"
    return [
        Slice(
            "heading", f"facing camera (<= {max_deg:.0f} deg)", facing_camera(data.joints, max_deg=max_deg)
        ),
        Slice("heading", "all headings", np.ones(n, dtype=bool)),
        Slice("actions", "seen actions", ~unseen_action, held),
        Slice("actions", "unseen actions", unseen_action, held),
        Slice("rigs", "seen rigs", ~unseen_rig, held_rigs),
        Slice("rigs", "unseen rigs", unseen_rig, held_rigs),
    ]
