"""Depth adapter: sensor_msgs/Image (16UC1 mm or 32FC1 m) + its CameraInfo -> midas/sample/depth.

The image is back-projected with the camera's intrinsics and pose into the base frame, the person is
found there, and only the person's visible surface is kept (midas_ros.preprocess.depth): averaged on a
2 cm voxel grid and brought to DEPTH_NUM_POINTS (5120) points, published as an x, y, z float32
PointCloud2 in the base frame (metres, floor z = 0); the sample's header has the image's stamp and the
base frame's name (``base_frame``) as frame_id.

Intrinsics come from the latest sensor_msgs/CameraInfo on ``camera/camera/depth/camera_info``
(interfaces.DEPTH_CAMERA_INFO_TOPIC, relative: remap it beside the image topic): K and the image size
(binning and ROI applied; distortion ignored, the image is taken as rectified, as image_rect_raw is).
For a driver without camera_info, the parameters ``camera_info_k`` (CameraInfo's row-major K, 9 values)
and ``camera_info_width`` / ``camera_info_height`` stand in until a CameraInfo arrives; all zero = none.
An image that comes before any intrinsics is rejected (``no_camera_info``), one whose size is not the
CameraInfo's (``camera_info_mismatch``, e.g. camera_info of another stream or resolution).

The camera's pose is the ``camera_pose`` parameter (camera_link in the base frame), or with ``use_tf``
TF's base_frame -> the image's frame_id, which is the optical frame (REP 103: z forward, x right, y
down); `samples.body_pose_from_optical` turns that into the camera_link pose.

The image -> sample work (intrinsics, size check, preprocess_depth with a PersonTrack) is
`samples.DepthSampler`, which the replay uses too; this node declares its parameters, subscribes, logs
and publishes.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC
from midas_ros.preprocess import PreprocessError, find_person
from midas_ros.rig import CameraIntrinsics
from midas_ros.ros.adapter import AdapterNode, synthetic_person
from midas_ros.ros.conversions import ConversionError
from midas_ros.ros.nodes import run_node
from midas_ros.ros.samples import DEPTH_PARAMETERS, POSE_FROM_TRANSFORM, POSE_PARAMETERS, DepthSampler

# Best effort connects to reliable and best-effort publishers alike (realsense2_camera uses either);
# only the latest CameraInfo matters.
CAMERA_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)


def _describe(intrinsics: CameraIntrinsics | None) -> str:
    if intrinsics is None:
        return "none"
    k = intrinsics
    return f"{k.width}x{k.height} fx {k.fx:.2f} fy {k.fy:.2f} cx {k.cx:.2f} cy {k.cy:.2f}"


class DepthAdapter(AdapterNode):
    """Finds the person in depth images and publishes their visible surface as base-frame points."""

    modality = "depth"
    input_type = Image
    output_type = PointCloud2
    sampler: DepthSampler

    def __init__(self, node_name: str | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._info_sub = self.create_subscription(
            CameraInfo, DEPTH_CAMERA_INFO_TOPIC, self._on_camera_info, CAMERA_INFO_QOS
        )
        self.sampler.camera_info_source = self._info_sub.topic_name
        fallback = self.sampler.fallback
        until = "" if fallback is None else f" (until then camera_info_k: {_describe(fallback)})"
        self.get_logger().info(f"intrinsics from {self._info_sub.topic_name}{until}")

    def declare_modality_parameters(self) -> None:
        values = self.declare(DEPTH_PARAMETERS)
        self.sensor_pose = self.declare_sensor_pose(POSE_PARAMETERS["depth"], POSE_FROM_TRANSFORM["depth"])
        self.sampler = DepthSampler(values, self.sensor_pose.pose_of)  # used by the worker thread

    @property
    def camera_info(self) -> CameraIntrinsics | None:
        """The latest usable CameraInfo's intrinsics (None before the first)."""
        return self.sampler.camera_info

    def intrinsics(self) -> CameraIntrinsics | None:
        """What the next frame is read with: the latest CameraInfo, else the parameters, else None."""
        return self.sampler.intrinsics()

    def warm_up(self) -> None:
        """The person search's first run (imports, first calls) at start-up, not on the first frame."""
        search = self.sampler.search
        try:
            find_person(synthetic_person(search), search)
        except PreprocessError as err:
            self.get_logger().warning(f"warm-up: a person-sized box was not found ({err}); search region?")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        previous, problem = self.sampler.camera_info, self.sampler.camera_info_problem
        try:
            intrinsics = self.sampler.on_camera_info(msg)
        except ConversionError as err:
            if str(err) != problem:
                self.get_logger().warning(f"ignored a CameraInfo on {self._info_sub.topic_name}: {err}")
            return
        if intrinsics != previous:
            self.get_logger().info(f"camera intrinsics from CameraInfo: {_describe(intrinsics)}")

    def diagnostic_status(self) -> DiagnosticStatus:
        status = super().diagnostic_status()
        intrinsics = self.intrinsics()
        source = "camera_info" if self.camera_info is not None else "camera_info_k parameter"
        if intrinsics is None:
            source = "none yet"
        status.values.append(KeyValue(key="intrinsics", value=f"{_describe(intrinsics)} ({source})"))
        return status


def main(args: list[str] | None = None) -> None:
    """Entry point `depth_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(DepthAdapter, args)


if __name__ == "__main__":
    main()
