"""Raw sensor message -> model-ready sample, per modality: the adapters' work without a node.

One class per modality holds what turning its messages into samples needs: the adapter's parameters
(`DEPTH_PARAMETERS`, `LIDAR_PARAMETERS`, declared by the adapter nodes, read from a plain mapping by
the replay), the sensor's pose (a `pose_of(frame_id)` callable: the node's SensorPose, TF or parameter;
a fixed pose in the replay), a `PersonTrack` (frames in order, by their header stamps) and, for depth,
the latest CameraInfo. `sample(msg)` takes a message (rclpy's or rosbags': the conversions are
duck-typed) and returns the sample from the conversions (conversions.py) and the preprocess functions
(midas_ros.preprocess), or raises ConversionError / PreprocessError whose ``reason`` the adapters count.

The adapter nodes (depth_adapter.py, lidar_adapter.py, csi_adapter.py) only declare the parameters,
subscribe, log and publish around these classes; the replay's fast mode (midas_ros/replay/fast.py)
calls them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from midas_ros.interfaces import LIDAR_NUM_POINTS
from midas_ros.preprocess import PersonSearch, PersonTrack, preprocess_csi, preprocess_depth, preprocess_lidar
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose
from midas_ros.ros.conversions import (
    ConversionError,
    camera_info_to_intrinsics,
    image_to_array,
    pointcloud2_to_csi,
    pointcloud2_to_xyz,
    stamp_to_ns,
)
from midas_ros.ros.parameters import ParameterSpec, resolve

PoseOf = Callable[[str], Pose]  # a message's frame_id -> the sensor's pose in the base frame

# -- sensor poses --------------------------------------------------------------------------------------------

# camera_link's axes in optical coordinates (REP 103): x forward = optical z, y left = -optical x,
# z up = -optical y. Row i is camera_link axis i, so p_link = OPTICAL_TO_BODY @ p_optical.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def body_pose_from_optical(translation: Any, quaternion_xyzw: Any) -> Pose:
    """A camera's camera_link pose from its optical frame's pose (TF base -> optical frame).

    TF gives R_base_optical (optical coordinates -> base). A point's camera_link coordinates are
    p_link = OPTICAL_TO_BODY @ p_optical, so p_base = R_base_optical @ OPTICAL_TO_BODY.T @ p_link + t:
    R_base_link = R_base_optical @ OPTICAL_TO_BODY.T, and the origin is the same point. (A level camera's
    optical frame has quaternion (-0.5, 0.5, -0.5, 0.5), which gives roll = pitch = yaw = 0.)
    """
    r_optical = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=float)).as_matrix()
    body = Rotation.from_matrix(r_optical @ OPTICAL_TO_BODY.T)
    return Pose.from_transform(translation, body.as_quat())


# The posed sensors' pose parameter (in the base frame) and how TF's base_frame -> <message frame_id>
# transform (translation, quaternion x, y, z, w) becomes that pose: a depth image's frame_id is its
# optical frame, the parameter is camera_link's; a cloud's frame_id is the LiDAR's frame itself.
POSE_PARAMETERS: dict[str, ParameterSpec] = {
    "depth": ParameterSpec(
        "camera_pose",
        MMFI_RIG.depth_pose.as_list(),
        "the depth camera's camera_link (x along the optical axis, z up) in the base frame: "
        "[x, y, z, roll, pitch, yaw] (m, rad, ROS fixed-axis RPY; pitch > 0 looks down); the base "
        "frame's origin is on the floor below the camera, so x = y = yaw = 0 and z is its height",
        number=True,
    ),
    "lidar": ParameterSpec(
        "lidar_pose",
        MMFI_RIG.lidar_pose.as_list(),
        "the LiDAR's frame (the cloud's frame_id) in the base frame: [x, y, z, roll, pitch, yaw] "
        "(m, rad, ROS fixed-axis RPY); the base frame's origin is on the floor below the depth camera",
        number=True,
    ),
}
POSE_FROM_TRANSFORM: dict[str, Callable[[Any, Any], Pose]] = {
    "depth": body_pose_from_optical,
    "lidar": Pose.from_transform,
}


def fixed_pose(pose: Pose) -> PoseOf:
    """`pose_of` for a sensor whose pose is known up front, whatever its messages' frame_id."""
    return lambda frame_id: pose


# -- parameters ----------------------------------------------------------------------------------------------

# The person search parameters (search_<name>) and what they set in PersonSearch.
SEARCH_PARAMETERS: dict[str, str] = {
    "x_min": "person search region, base frame: nearest x (m, forward from the depth camera's foot)",
    "x_max": "person search region, base frame: farthest x (m)",
    "y_min": "person search region, base frame: rightmost y (m, y is left)",
    "y_max": "person search region, base frame: leftmost y (m)",
    "floor_m": "points below this height (m) are floor and floor noise",
    "ceiling_m": "points above this height (m) are ignored (ceiling, lamps)",
}
SEARCH_SPECS: tuple[ParameterSpec, ...] = tuple(
    ParameterSpec(f"search_{name}", float(getattr(PersonSearch(), name)), text, number=True)
    for name, text in SEARCH_PARAMETERS.items()
)
DEPTH_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "scale_to_m",
        0.0,
        "metres per depth unit; 0 = auto (0.001 for 16UC1 mm, 1.0 for 32FC1 m)",
        number=True,
    ),
    ParameterSpec("max_range_m", 8.0, "depths beyond this are ignored (m)", number=True),
    *SEARCH_SPECS,
    ParameterSpec(
        "camera_info_k",
        [0.0] * 9,
        "for drivers without camera_info: the rectified image's K (fx, 0, cx, 0, fy, cy, 0, 0, 1), "
        "used until a CameraInfo arrives; all zero = none",
        number=True,
    ),
    ParameterSpec("camera_info_width", 0, "image width (px) of camera_info_k"),
    ParameterSpec("camera_info_height", 0, "image height (px) of camera_info_k"),
)
LIDAR_PARAMETERS: tuple[ParameterSpec, ...] = (
    *SEARCH_SPECS,
    ParameterSpec("voxel_size_m", 0.02, "voxel downsampling size (m)", number=True),
    ParameterSpec("min_points", 16, "a person with fewer points than this: rejected (too_few_points)"),
    ParameterSpec(
        "max_points",
        300_000,
        "clouds with more points are rejected (too_many_points) before any work; "
        "the largest common scan, 128 x 2048, has 262,144",
    ),
    ParameterSpec("stride_rings", 1, "organised scans: keep every n-th ring (thins a dense scan)"),
    ParameterSpec("stride_columns", 1, "organised scans: keep every n-th column"),
)


def person_search(values: Mapping[str, Any]) -> PersonSearch:
    """The search_* parameters as a PersonSearch; the rest keep its defaults."""
    return PersonSearch(**{spec.name.removeprefix("search_"): spec.value(values) for spec in SEARCH_SPECS})


def fallback_intrinsics(values: Mapping[str, Any]) -> CameraIntrinsics | None:
    """The camera_info_k / camera_info_width / camera_info_height parameters (None when K is all zero)."""
    k = values["camera_info_k"]
    if not any(k):
        return None
    try:
        return CameraIntrinsics.from_k(int(values["camera_info_width"]), int(values["camera_info_height"]), k)
    except ValueError as err:
        raise ValueError(
            f"camera_info_k / camera_info_width / camera_info_height: {err} (set all three, "
            "or K all zero for none)"
        ) from err


# -- the samplers --------------------------------------------------------------------------------------------


class DepthSampler:
    """Depth Image (16UC1 mm or 32FC1 m) + the latest CameraInfo -> the depth sample (preprocess_depth).

    Intrinsics: the latest CameraInfo (`on_camera_info`), else the camera_info_k parameters, else the
    image is rejected (``no_camera_info``); an image whose size is not theirs is rejected
    (``camera_info_mismatch``). `camera_info` is swapped whole by `on_camera_info` and read once per
    image, an immutable value: the node calls the two from different threads without a lock.
    """

    modality = "depth"

    def __init__(self, values: Mapping[str, Any], pose_of: PoseOf, camera_info_source: str = "") -> None:
        p = resolve(DEPTH_PARAMETERS, values)
        self.pose_of = pose_of
        self.search = person_search(p)
        self.scale_to_m: float | None = p["scale_to_m"] or None
        self.max_range_m: float = p["max_range_m"]
        self.fallback = fallback_intrinsics(p)
        self.camera_info: CameraIntrinsics | None = None
        self.camera_info_problem = ""  # why the last unusable CameraInfo was ignored
        self.camera_info_source = camera_info_source or "the camera_info topic"  # for messages
        self.track = PersonTrack()

    def on_camera_info(self, msg: Any) -> CameraIntrinsics:
        """Take a CameraInfo's intrinsics for the next images; an unusable one (ConversionError) leaves
        the current ones and is remembered in `camera_info_problem`."""
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except ConversionError as err:
            self.camera_info_problem = str(err)
            raise
        self.camera_info = intrinsics
        return intrinsics

    def intrinsics(self) -> CameraIntrinsics | None:
        """What the next image is read with: the latest CameraInfo, else the parameters, else None."""
        latest = self.camera_info
        return latest if latest is not None else self.fallback

    def sample(self, msg: Any) -> np.ndarray:
        depth = image_to_array(msg)
        intrinsics = self.intrinsics()
        if intrinsics is None:
            ignored = self.camera_info_problem
            problem = f" (the last one was ignored: {ignored})" if ignored else ""
            raise ConversionError(
                "no_camera_info",
                f"no CameraInfo on {self.camera_info_source} yet{problem} and no camera_info_k parameter",
            )
        if depth.shape != (intrinsics.height, intrinsics.width):
            source = "camera_info" if intrinsics is self.camera_info else "camera_info_k parameter"
            raise ConversionError(
                "camera_info_mismatch",
                f"the image is {depth.shape[1]}x{depth.shape[0]} but its {source} says "
                f"{intrinsics.width}x{intrinsics.height} (intrinsics of another stream or resolution?)",
            )
        return preprocess_depth(
            depth,
            intrinsics,
            self.pose_of(msg.header.frame_id),
            scale_to_m=self.scale_to_m,
            search=self.search,
            track=self.track,
            stamp_s=stamp_to_ns(msg.header.stamp) / 1e9,
            max_range_m=self.max_range_m,
        )


class LidarSampler:
    """PointCloud2 (any x/y/z float layout, organised or not) -> the LiDAR sample (preprocess_lidar)."""

    modality = "lidar"

    def __init__(self, values: Mapping[str, Any], pose_of: PoseOf) -> None:
        p = resolve(LIDAR_PARAMETERS, values)
        self.pose_of = pose_of
        self.search = person_search(p)
        self.voxel_size_m: float = p["voxel_size_m"]
        self.min_points = int(p["min_points"])
        self.max_points = int(p["max_points"])
        self.stride = (int(p["stride_rings"]), int(p["stride_columns"]))
        self.track = PersonTrack()

    def sample(self, msg: Any) -> np.ndarray:
        size = int(msg.width) * int(msg.height)
        if size > self.max_points:  # checked on the header: a huge cloud costs nothing here
            raise ConversionError("too_many_points", f"{size} points, more than max_points {self.max_points}")
        # preprocess_lidar drops NaN, Inf and (0, 0, 0) "no return" points itself, and takes an organised
        # scan as it is (rings x columns), which lets it stride over rings before any other work.
        points = pointcloud2_to_xyz(msg, drop_invalid=False)
        if msg.height > 1:
            points = points.reshape(int(msg.height), int(msg.width), 3)
        return preprocess_lidar(
            points,
            self.pose_of(msg.header.frame_id),
            search=self.search,
            track=self.track,
            stamp_s=stamp_to_ns(msg.header.stamp) / 1e9,
            num_points=LIDAR_NUM_POINTS,
            voxel_size_m=self.voxel_size_m,
            min_points=self.min_points,
            stride=self.stride if points.ndim == 3 else 1,
        )


class CsiSampler:
    """CSI-layout PointCloud2 (3 x 114 x 10) -> the CSI sample (preprocess_csi: 6 x 114 x 10)."""

    modality = "csi"

    def __init__(self, values: Mapping[str, Any] | None = None, pose_of: PoseOf | None = None) -> None:
        pass  # no parameters, no pose: CSI is not placed in the base frame

    def sample(self, msg: Any) -> np.ndarray:
        amplitude, phase = pointcloud2_to_csi(msg)
        return preprocess_csi(amplitude, phase)


Sampler = DepthSampler | LidarSampler | CsiSampler
SAMPLERS: dict[str, type[DepthSampler] | type[LidarSampler] | type[CsiSampler]] = {
    "depth": DepthSampler,
    "lidar": LidarSampler,
    "csi": CsiSampler,
}
