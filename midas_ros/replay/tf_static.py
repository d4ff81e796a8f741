"""Sensor poses in the base frame from a bag's /tf_static, and the choice between option, TF and config.

The adapters take their sensor's pose as a parameter (camera_pose: the depth camera's camera_link;
lidar_pose: the cloud's frame) in the base frame ``midas_base``. A bag recorded with a robot's static
transforms holds them in /tf_static: the transform base frame -> the message's frame_id is looked up in
the static tree (chains and transforms given either way round are followed). A depth image's frame_id
is its optical frame (REP 103), turned into camera_link's pose as the depth adapter does with use_tf
(``ros/samples.py``'s POSE_FROM_TRANSFORM: ``body_pose_from_optical``).

Which pose is used, per sensor: the command's option (``--camera-pose`` / ``--lidar-pose``, or a
``--set`` of the parameter), else /tf_static when it holds the frame, else the parameter of
config/adapters.yaml (with a note: the bag does not say where the sensor was).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from midas_ros.interfaces import TF_STATIC_TOPIC
from midas_ros.rig import Pose
from midas_ros.ros.bag_io import read_messages
from midas_ros.ros.samples import POSE_FROM_TRANSFORM, POSE_PARAMETERS


def _matrix(translation: Any, quaternion_xyzw: Any) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=float)).as_matrix()
    m[:3, 3] = np.asarray(translation, dtype=float)
    return m


def read_static_transforms(path: Path | str) -> dict[str, tuple[str, np.ndarray]]:
    """{child frame: (parent frame, 4x4 parent_T_child)} of every /tf_static message (later ones win)."""
    edges: dict[str, tuple[str, np.ndarray]] = {}
    for message in read_messages(path, [TF_STATIC_TOPIC]):
        for tf in message.deserialize().transforms:
            t, q = tf.transform.translation, tf.transform.rotation
            edges[tf.child_frame_id.lstrip("/")] = (
                tf.header.frame_id.lstrip("/"),
                _matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)),
            )
    return edges


def _to_root(edges: Mapping[str, tuple[str, np.ndarray]], frame: str) -> tuple[str, np.ndarray]:
    """(root frame, root_T_frame) following parents up the tree."""
    transform, seen = np.eye(4), {frame}
    while frame in edges:
        parent, parent_t_child = edges[frame]
        transform = parent_t_child @ transform
        frame = parent
        if frame in seen:
            raise ValueError(f"/tf_static has a loop through {frame!r}")
        seen.add(frame)
    return frame, transform


def lookup(
    edges: Mapping[str, tuple[str, np.ndarray]], base: str, frame: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(translation, quaternion x, y, z, w) of base_T_frame, or None when not connected."""
    base, frame = base.lstrip("/"), frame.lstrip("/")
    root_a, root_t_base = _to_root(edges, base)
    root_b, root_t_frame = _to_root(edges, frame)
    if root_a != root_b:
        return None
    base_t_frame = np.linalg.inv(root_t_base) @ root_t_frame
    return base_t_frame[:3, 3], Rotation.from_matrix(base_t_frame[:3, :3]).as_quat()


@dataclass(frozen=True)
class ResolvedPose:
    pose: Pose
    source: str  # "option", "/tf_static", "config"


def sensor_poses(
    bag: Path | str,
    frame_ids: Mapping[str, str],
    adapter_parameters: Mapping[str, Mapping[str, Any]],
    explicit: Mapping[str, Pose],
    *,
    base_frame: str,
    use_tf_static: bool,
) -> dict[str, ResolvedPose]:
    """The pose of each posed sensor that is replayed (see the module docstring for the order).

    frame_ids: modality -> its messages' frame_id; adapter_parameters: modality -> its adapter's
    parameters (settings.node_parameters); explicit: modality -> a pose the user gave.
    """
    edges = read_static_transforms(bag) if use_tf_static else {}
    out: dict[str, ResolvedPose] = {}
    for modality, spec in POSE_PARAMETERS.items():
        if modality not in frame_ids:
            continue
        if modality in explicit:
            out[modality] = ResolvedPose(explicit[modality], "option")
            continue
        found = lookup(edges, base_frame, frame_ids[modality]) if edges and frame_ids[modality] else None
        if found is not None:
            out[modality] = ResolvedPose(POSE_FROM_TRANSFORM[modality](*found), "/tf_static")
            continue
        configured = spec.value(adapter_parameters.get(modality, {}))
        out[modality] = ResolvedPose(Pose.from_list(configured), "config")
    return out
