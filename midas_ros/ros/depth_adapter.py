"""Depth adapter: sensor_msgs/Image (16UC1 mm or 32FC1 m) + its CameraInfo -> midas/sample/depth.

The image is back-projected with the camera's intrinsics and pose into the base frame, the person is
found there and drawn by the canonical camera (midas_ros.preprocess.depth): 32FC1, 96 x 128, metres.

Intrinsics come from the latest sensor_msgs/CameraInfo on ``camera/camera/depth/camera_info``
(interfaces.DEPTH_CAMERA_INFO_TOPIC, relative: remap it beside the image topic): K and the image size
(binning and ROI applied; distortion ignored, the image is taken as rectified, as image_rect_raw is).
For a driver without camera_info, the parameters ``camera_info_k`` (CameraInfo's row-major K, 9 values)
and ``camera_info_width`` / ``camera_info_height`` stand in until a CameraInfo arrives; all zero = none.
An image that comes before any intrinsics is rejected (``no_camera_info``), one whose size is not the
CameraInfo's (``camera_info_mismatch``, e.g. camera_info of another stream or resolution).

The camera's pose is the ``camera_pose`` parameter (camera_link in the base frame), or with ``use_tf``
TF's base_frame -> the image's frame_id, which is the optical frame (REP 103: z forward, x right, y
down); `body_pose_from_optical` turns that into the camera_link pose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image

from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC
from midas_ros.preprocess import PersonTrack, PreprocessError, find_person, preprocess_depth
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose
from midas_ros.ros.adapter import AdapterNode, synthetic_person
from midas_ros.ros.conversions import (
    ConversionError,
    camera_info_to_intrinsics,
    image_to_array,
    stamp_to_ns,
)
from midas_ros.ros.nodes import run_node

# Best effort connects to reliable and best-effort publishers alike (realsense2_camera uses either);
# only the latest CameraInfo matters.
CAMERA_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

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


def _describe(intrinsics: CameraIntrinsics | None) -> str:
    if intrinsics is None:
        return "none"
    k = intrinsics
    return f"{k.width}x{k.height} fx {k.fx:.2f} fy {k.fy:.2f} cx {k.cx:.2f} cy {k.cy:.2f}"


class DepthAdapter(AdapterNode):
    """Finds the person in depth images and draws them into the model's canonical depth input."""

    modality = "depth"
    input_type = Image
    output_type = Image

    def __init__(self, node_name: str | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._info_sub = self.create_subscription(
            CameraInfo, DEPTH_CAMERA_INFO_TOPIC, self._on_camera_info, CAMERA_INFO_QOS
        )
        fallback = self.fallback_intrinsics
        until = "" if fallback is None else f" (until then camera_info_k: {_describe(fallback)})"
        self.get_logger().info(f"intrinsics from {self._info_sub.topic_name}{until}")

    def declare_modality_parameters(self) -> None:
        self.scale_to_m: float = self.number_param(
            "scale_to_m", 0.0, "metres per depth unit; 0 = auto (0.001 for 16UC1 mm, 1.0 for 32FC1 m)"
        )
        self.max_range_m: float = self.number_param("max_range_m", 8.0, "depths beyond this are ignored (m)")
        self.sensor_pose = self.declare_sensor_pose(
            "camera_pose",
            MMFI_RIG.depth_pose,
            "the depth camera's camera_link (x along the optical axis, z up) in the base frame: "
            "[x, y, z, roll, pitch, yaw] (m, rad, ROS fixed-axis RPY; pitch > 0 looks down); the base "
            "frame's origin is on the floor below the camera, so x = y = yaw = 0 and z is its height",
            body_pose_from_optical,
        )
        self.search = self.declare_person_search()
        k = self.number_param(
            "camera_info_k",
            [0.0] * 9,
            "for drivers without camera_info: the rectified image's K (fx, 0, cx, 0, fy, cy, 0, 0, 1), "
            "used until a CameraInfo arrives; all zero = none",
        )
        width: int = self.param("camera_info_width", 0, "image width (px) of camera_info_k")
        height: int = self.param("camera_info_height", 0, "image height (px) of camera_info_k")
        self.fallback_intrinsics: CameraIntrinsics | None = None
        if any(k):
            try:
                self.fallback_intrinsics = CameraIntrinsics.from_k(width, height, k)
            except ValueError as err:
                raise ValueError(
                    f"camera_info_k / camera_info_width / camera_info_height: {err} (set all three, "
                    "or K all zero for none)"
                ) from err
        # The latest CameraInfo's intrinsics: swapped whole by the callback (executor thread), read once
        # per frame by to_sample (worker thread); an immutable value, so no lock.
        self.camera_info: CameraIntrinsics | None = None
        self._camera_info_problem = ""
        self.track = PersonTrack()  # used by the worker thread only

    def warm_up(self) -> None:
        """The person search's first run (imports, first calls) at start-up, not on the first frame."""
        try:
            find_person(synthetic_person(self.search), self.search)
        except PreprocessError as err:
            self.get_logger().warning(f"warm-up: a person-sized box was not found ({err}); search region?")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except ConversionError as err:
            if str(err) != self._camera_info_problem:
                self.get_logger().warning(f"ignored a CameraInfo on {self._info_sub.topic_name}: {err}")
            self._camera_info_problem = str(err)
            return
        if intrinsics != self.camera_info:
            self.get_logger().info(f"camera intrinsics from CameraInfo: {_describe(intrinsics)}")
        self.camera_info = intrinsics

    def intrinsics(self) -> CameraIntrinsics | None:
        """What the next frame is read with: the latest CameraInfo, else the parameters, else None."""
        latest = self.camera_info
        return latest if latest is not None else self.fallback_intrinsics

    def to_sample(self, msg: Image) -> np.ndarray:
        depth = image_to_array(msg)
        intrinsics = self.intrinsics()
        if intrinsics is None:
            ignored = self._camera_info_problem
            problem = f" (the last one was ignored: {ignored})" if ignored else ""
            raise ConversionError(
                "no_camera_info",
                f"no CameraInfo on {self._info_sub.topic_name} yet{problem} and no camera_info_k parameter",
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
            self.sensor_pose.pose_of(msg.header.frame_id),
            scale_to_m=self.scale_to_m or None,
            search=self.search,
            track=self.track,
            stamp_s=stamp_to_ns(msg.header.stamp) / 1e9,
            max_range_m=self.max_range_m,
        )

    def diagnostic_status(self) -> DiagnosticStatus:
        status = super().diagnostic_status()
        source = "camera_info" if self.camera_info is not None else "camera_info_k parameter"
        if self.intrinsics() is None:
            source = "none yet"
        status.values.append(KeyValue(key="intrinsics", value=f"{_describe(self.intrinsics())} ({source})"))
        return status


def main(args: list[str] | None = None) -> None:
    """Entry point `depth_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(DepthAdapter, args)


if __name__ == "__main__":
    main()
