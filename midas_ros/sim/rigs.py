"""The simulator's pool of sensor rigs: real depth cameras and LiDARs, mounted at many heights and tilts.

Every simulated sequence is seen through one rig of the pool (`sequence_rig`), stored beside it in its
sidecar file (midas_ros.rig.RIG_FILE), and placed somewhere near the room's back wall facing into it.
The pool is fixed (it does not depend on the data seed), so a rig id means the same rig in every data
set and the recipe can hold rigs out of training. `MMFI_RIG` stays available as a preset.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from midas_ros.rig import MMFI_RIG, CameraIntrinsics, LidarModel, Pose, Rig

POOL_SIZE = 32

# Depth modes of real cameras (intrinsics of typical units; the stereo noise model is used for all).
CAMERA_MODELS: dict[str, CameraIntrinsics] = {
    "D435 640x480": CameraIntrinsics(640, 480, 383.0, 383.0, 319.5, 239.5),
    "D435 848x480": CameraIntrinsics(848, 480, 421.0, 421.0, 423.5, 239.5),
    "D435 1280x720": CameraIntrinsics(1280, 720, 638.0, 638.0, 639.5, 359.5),
    "D455 848x480": CameraIntrinsics(848, 480, 428.0, 428.0, 423.5, 239.5),
    "Azure Kinect NFOV 640x576": CameraIntrinsics(640, 576, 504.0, 504.0, 319.5, 287.5),
    "Kinect v2 512x424": CameraIntrinsics(512, 424, 365.0, 365.0, 255.5, 211.5),
}
LIDAR_MODELS: dict[str, LidarModel] = {
    "VLP-16": LidarModel("VLP-16", 16, 1800, 30.0),
    "OS1-32": LidarModel("OS1-32", 32, 1024, 45.0),
    "OS1-64": LidarModel("OS1-64", 64, 1024, 45.0),
    "OS1-128": LidarModel("OS1-128", 128, 1024, 45.0),
}


@lru_cache(maxsize=1)
def rig_pool() -> tuple[Rig, ...]:
    """The POOL_SIZE rigs: camera 0.6..2.0 m high, looking 25 deg down to 5 deg up, rolled up to 2 deg;
    LiDAR up to 0.3 m beside the camera, 0.4..2.0 m high, tilted 20 deg down to 10 deg up, 16..128
    rings. High sensors look down at the sensing area, low ones level or up, as people mount them."""
    rng = np.random.default_rng(0x816)
    cameras, lidars = list(CAMERA_MODELS), list(LIDAR_MODELS)
    rigs = []
    for i in range(POOL_SIZE):
        camera = cameras[i % len(cameras)]  # every model in train and held-out rigs alike
        lidar = lidars[rng.integers(len(lidars))]
        # Sensors are aimed at the sensing area (a point 0.9 m high, 3 m ahead), give or take.
        height = rng.uniform(0.6, 2.0)
        aim = np.rad2deg(np.arctan2(height - 0.9, 3.0))
        depth_pose = Pose(
            z=height,
            roll=np.deg2rad(rng.uniform(-2, 2)),
            pitch=np.deg2rad(np.clip(aim + rng.uniform(-8, 8), -5, 25)),
        )
        lidar_height = rng.uniform(0.4, 2.0)
        lidar_aim = np.rad2deg(np.arctan2(lidar_height - 0.9, 3.0))
        lidar_pose = Pose(
            x=rng.uniform(-0.3, 0.2),
            y=rng.uniform(-0.3, 0.3),
            z=lidar_height,
            pitch=np.deg2rad(np.clip(lidar_aim + rng.uniform(-5, 5), -10, 20)),
            yaw=np.deg2rad(rng.uniform(-10, 10)),
        )
        rigs.append(
            Rig(f"pool{i:02d}", camera, CAMERA_MODELS[camera], depth_pose, LIDAR_MODELS[lidar], lidar_pose, i)
        )
    return tuple(rigs)


def sequence_rig(subject: int, action: int, seed: int = 0) -> Rig:
    """The pool rig of one (subject, action) sequence, drawn from its own stream."""
    rng = np.random.default_rng([seed, subject, action, 0x816])
    return rig_pool()[int(rng.integers(POOL_SIZE))]


def rig_placement(subject: int, action: int, seed: int = 0) -> Pose:
    """Where the rig's base frame sits in the room: near the back wall, facing into the room, turned up
    to 15 deg (the room frame's origin is the MM-Fi rig's spot)."""
    rng = np.random.default_rng([seed, subject, action, 0x9A5E])
    return Pose(x=rng.uniform(-0.3, 0.2), y=rng.uniform(-0.4, 0.4), yaw=np.deg2rad(rng.uniform(-15, 15)))


def rig_by_name(name: str) -> Rig:
    """'mmfi' or a pool rig's name ('pool07')."""
    if name == MMFI_RIG.name:
        return MMFI_RIG
    for rig in rig_pool():
        if rig.name == name:
            return rig
    raise ValueError(f"unknown rig {name!r}: 'mmfi' or pool00..pool{POOL_SIZE - 1:02d}")
