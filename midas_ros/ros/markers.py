"""Skeleton messages for RViz: MarkerArray (joints, bones, subset label) and PoseArray.

Colour legend (additive RGB: each modality adds one primary, so the colour names the live subset):

| live subset          | colour  |
|----------------------|---------|
| depth                | red     |
| lidar                | green   |
| csi                  | blue    |
| depth + lidar        | yellow  |
| depth + csi          | magenta |
| lidar + csi          | cyan    |
| depth + lidar + csi  | white   |
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseArray
from rclpy.duration import Duration
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from midas_ros import MODALITIES
from midas_ros.skeleton import BONES, NUM_JOINTS

# One primary colour per modality; a subset's colour is their sum.
MODALITY_RGB: dict[str, tuple[float, float, float]] = {
    "depth": (1.0, 0.0, 0.0),
    "lidar": (0.0, 1.0, 0.0),
    "csi": (0.0, 0.0, 1.0),
}
MARKER_NS = "midas_skeleton"
JOINTS_ID, BONES_ID, LABEL_ID = 0, 1, 2


def subset_label(present: Iterable[str]) -> str:
    """'depth+lidar+csi' style name of a subset in MODALITIES order; 'none' for the empty set."""
    names = set(present)
    unknown = names - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; expected a subset of {MODALITIES}")
    ordered = [m for m in MODALITIES if m in names]
    return "+".join(ordered) if ordered else "none"


def subset_color(present: Iterable[str], alpha: float = 1.0) -> ColorRGBA:
    """The legend colour of a subset (see the module docstring); grey for the empty set."""
    names = set(present)
    if not names:
        return ColorRGBA(r=0.5, g=0.5, b=0.5, a=alpha)
    rgb = np.zeros(3)
    for name in names:
        rgb += MODALITY_RGB[name]
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=alpha)


def _check_joints(joints: np.ndarray) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be ({NUM_JOINTS}, 3), got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise ValueError("joints hold NaN or Inf")
    return joints


def _points(rows: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in rows]


def skeleton_markers(
    joints: np.ndarray,
    present: Iterable[str],
    *,
    frame_id: str,
    stamp: Time,
    lifetime_s: float,
    joint_diameter_m: float = 0.06,
    bone_width_m: float = 0.025,
    label: bool = True,
) -> MarkerArray:
    """Joints as one SPHERE_LIST, bones as one LINE_LIST and a TEXT label above the head.

    All markers share the subset colour and expire after `lifetime_s`, so a skeleton that stops being
    published disappears on its own.
    """
    joints = _check_joints(joints)
    present = tuple(present)
    header = Header(frame_id=frame_id, stamp=stamp)
    color = subset_color(present)
    lifetime = Duration(nanoseconds=int(lifetime_s * 1e9)).to_msg()

    spheres = Marker(header=header, ns=MARKER_NS, id=JOINTS_ID, type=Marker.SPHERE_LIST, action=Marker.ADD)
    spheres.pose.orientation.w = 1.0
    spheres.scale.x = spheres.scale.y = spheres.scale.z = joint_diameter_m
    spheres.color = color
    spheres.lifetime = lifetime
    spheres.points = _points(joints)

    lines = Marker(header=header, ns=MARKER_NS, id=BONES_ID, type=Marker.LINE_LIST, action=Marker.ADD)
    lines.pose.orientation.w = 1.0
    lines.scale.x = bone_width_m
    lines.color = color
    lines.lifetime = lifetime
    lines.points = _points(joints[np.asarray(BONES).reshape(-1)])

    markers = [spheres, lines]
    if label:
        text = Marker(
            header=header, ns=MARKER_NS, id=LABEL_ID, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD
        )
        top = joints[np.argmax(joints[:, 2])]
        text.pose.position = Point(x=float(top[0]), y=float(top[1]), z=float(top[2]) + 0.25)
        text.pose.orientation.w = 1.0
        text.scale.z = 0.12  # text height in metres
        text.color = color
        text.lifetime = lifetime
        text.text = subset_label(present)
        markers.append(text)
    return MarkerArray(markers=markers)


def delete_all_markers(frame_id: str, stamp: Time) -> MarkerArray:
    """A MarkerArray that clears every skeleton marker (DELETEALL in our namespace)."""
    marker = Marker(header=Header(frame_id=frame_id, stamp=stamp), ns=MARKER_NS, action=Marker.DELETEALL)
    return MarkerArray(markers=[marker])


def pose_array(joints: np.ndarray, *, frame_id: str, stamp: Time) -> PoseArray:
    """The 17 joints (MM-Fi order) as a PoseArray: positions only, identity orientations."""
    joints = _check_joints(joints)
    poses = []
    for x, y, z in joints:
        pose = Pose()
        pose.position = Point(x=float(x), y=float(y), z=float(z))
        pose.orientation.w = 1.0
        poses.append(pose)
    return PoseArray(header=Header(frame_id=frame_id, stamp=stamp), poses=poses)


def pose_array_to_numpy(msg: PoseArray) -> np.ndarray:
    """(N, 3) float64 positions of a PoseArray."""
    rows = [[p.position.x, p.position.y, p.position.z] for p in msg.poses]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)
