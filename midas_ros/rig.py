"""Sensor rigs: where each sensor sits in the base frame, and the depth camera's intrinsics.

Base frame ``midas_base`` (REP 103 axes): origin on the floor directly below the depth camera, z up
(against gravity), x the camera's viewing direction projected onto the floor, y left. Every input is
brought into it before the model and the skeleton is published in it, so the model never sees how high
or how tilted a user's sensors are mounted. By that definition the depth camera's pose has x = y = 0 and
yaw = 0; its height, roll and pitch are what a user measures (or reads from TF).

Poses use ROS conventions: position in metres, then roll, pitch, yaw in radians about the fixed x, y, z
axes (tf2's setRPY, static_transform_publisher's order); a positive pitch turns x towards -z, so a camera
looking 20 deg down has pitch +0.35. A camera's pose is that of its body frame (``camera_link``: x along
the optical axis, y left, z up), not of its optical frame.

Sequences written by the simulator carry their rig in a small sidecar file (``rig.json`` beside the
modality folders); real MM-Fi data has none and is read with ``MMFI_RIG``, the MM-Fi capture rig.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

BASE_FRAME = "midas_base"
RIG_FILE = "rig.json"


@dataclass(frozen=True)
class Pose:
    """A frame's pose in the base frame: translation (m) and roll, pitch, yaw (rad, fixed axes)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.as_list()).all():
            raise ValueError(f"pose values must be finite, got {self.as_list()}")

    @classmethod
    def from_list(cls, values: Any) -> Pose:
        """[x, y, z, roll, pitch, yaw] (the form of the nodes' pose parameters)."""
        values = [float(v) for v in values]
        if len(values) != 6:
            raise ValueError(f"a pose is [x, y, z, roll, pitch, yaw], got {len(values)} values: {values}")
        return cls(*values)

    @classmethod
    def from_transform(cls, translation: Any, quaternion_xyzw: Any) -> Pose:
        """From a TF transform (translation, rotation as x, y, z, w), e.g. base -> sensor from tf2."""
        roll, pitch, yaw = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=float)).as_euler("xyz")
        return cls(*(float(t) for t in translation), float(roll), float(pitch), float(yaw))

    def as_list(self) -> list[float]:
        return [float(v) for v in (self.x, self.y, self.z, self.roll, self.pitch, self.yaw)]

    @property
    def translation(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def rotation(self) -> np.ndarray:
        """(3, 3) rotation taking this frame's axes into the base frame."""
        return Rotation.from_euler("xyz", [self.roll, self.pitch, self.yaw]).as_matrix()

    def quaternion_xyzw(self) -> np.ndarray:
        return Rotation.from_euler("xyz", [self.roll, self.pitch, self.yaw]).as_quat()

    def compose(self, inner: Pose) -> Pose:
        """The pose of `inner`'s frame (given in this frame) in this frame's parent: self * inner."""
        rotation = Rotation.from_euler("xyz", [self.roll, self.pitch, self.yaw]) * Rotation.from_euler(
            "xyz", [inner.roll, inner.pitch, inner.yaw]
        )
        roll, pitch, yaw = rotation.as_euler("xyz")
        return Pose(*self.to_base(inner.translation), float(roll), float(pitch), float(yaw))

    def to_base(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in this frame -> base frame, float64."""
        return _rotate(np.asarray(points, dtype=np.float64), self.rotation()) + self.translation

    def from_base(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the base frame -> this frame, float64."""
        return _rotate(np.asarray(points, dtype=np.float64) - self.translation, self.rotation().T)


def _rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """rotation @ each point, written out per column: a (N, 3) x (3, 3) product through BLAS spawns
    threads that thrash on a busy 2-core machine (48 ms against 0.6 ms for a 64 x 1024 scan)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([r[0] * x + r[1] * y + r[2] * z for r in rotation], axis=-1)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a rectified depth image (pixels), as sensor_msgs/CameraInfo's K gives them."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width} x {self.height}")
        if not (self.fx > 0 and self.fy > 0 and np.isfinite([self.fx, self.fy, self.cx, self.cy]).all()):
            raise ValueError(f"focal lengths must be positive and finite, got {self}")

    @classmethod
    def from_k(cls, width: int, height: int, k: Any) -> CameraIntrinsics:
        """From CameraInfo's row-major 3x3 K (fx, 0, cx, 0, fy, cy, 0, 0, 1) and the image size."""
        k = [float(v) for v in k]
        if len(k) != 9:
            raise ValueError(f"K must have 9 values, got {len(k)}")
        return cls(int(width), int(height), k[0], k[4], k[2], k[5])


@dataclass(frozen=True)
class LidarModel:
    """A spinning LiDAR: beams evenly spread over the vertical field of view, columns per turn."""

    name: str = "OS1-32"
    rings: int = 32
    columns: int = 1024
    vertical_fov_deg: float = 45.0


@dataclass(frozen=True)
class Rig:
    """One sensor rig: the depth camera's intrinsics and pose, the LiDAR's model and pose (base frame).

    The WiFi transmitter and receivers belong to the room, not to the rig.
    """

    name: str
    camera_model: str
    depth_intrinsics: CameraIntrinsics
    depth_pose: Pose
    lidar: LidarModel = field(default_factory=LidarModel)
    lidar_pose: Pose = field(default_factory=Pose)
    id: int = -1  # index in the simulator's rig pool (sim.rigs); -1 for any other rig

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "depth_camera": {
                "model": self.camera_model,
                "intrinsics": asdict(self.depth_intrinsics),
                "pose_xyz_rpy": self.depth_pose.as_list(),
            },
            "lidar": {**asdict(self.lidar), "pose_xyz_rpy": self.lidar_pose.as_list()},
            "frame": BASE_FRAME,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rig:
        camera, lidar = dict(data["depth_camera"]), dict(data["lidar"])
        lidar_pose = Pose.from_list(lidar.pop("pose_xyz_rpy"))
        return cls(
            name=str(data["name"]),
            camera_model=str(camera["model"]),
            depth_intrinsics=CameraIntrinsics(**camera["intrinsics"]),
            depth_pose=Pose.from_list(camera["pose_xyz_rpy"]),
            lidar=LidarModel(**lidar),
            lidar_pose=lidar_pose,
            id=int(data.get("id", -1)),
        )


# MM-Fi's capture rig as the simulator has always modelled it: a 640 x 480 depth camera 1.0 m above the
# floor looking level, an OS1-32-like LiDAR 0.3 m above it with axes parallel to the base frame.
MMFI_RIG = Rig(
    name="mmfi",
    camera_model="D435 640x480",
    depth_intrinsics=CameraIntrinsics(640, 480, 383.0, 383.0, 319.5, 239.5),
    depth_pose=Pose(z=1.0),
    lidar=LidarModel("OS1-32", 32, 1024, 45.0),
    lidar_pose=Pose(z=1.3),
)


def write_rig(seq_dir: Path | str, rig: Rig) -> Path:
    """Write a sequence's rig sidecar (seq_dir/rig.json)."""
    path = Path(seq_dir) / RIG_FILE
    path.write_text(json.dumps(rig.to_dict(), indent=2) + "\n")
    return path


def read_rig(seq_dir: Path | str) -> Rig:
    """A sequence's rig from its sidecar; MMFI_RIG when there is none (real MM-Fi data)."""
    path = Path(seq_dir) / RIG_FILE
    if not path.is_file():
        return MMFI_RIG
    try:
        return Rig.from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a rig file ({error})") from error
