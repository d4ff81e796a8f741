"""LiDAR adapter: sensor_msgs/PointCloud2 (any x/y/z float layout) -> midas/sample/lidar (512 x, y, z).

The cloud is brought into the base frame with the LiDAR's pose (the ``lidar_pose`` parameter, or TF
with ``use_tf``: base_frame -> the cloud's frame_id), the person is found there, and their points are
sampled to the model's fixed count, in the base frame (midas_ros.preprocess.lidar); the sample's header
has the cloud's stamp and the base frame's name (``base_frame``) as frame_id.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from midas_ros.interfaces import LIDAR_NUM_POINTS
from midas_ros.preprocess import PersonTrack, PreprocessError, preprocess_lidar
from midas_ros.rig import MMFI_RIG
from midas_ros.ros.adapter import AdapterNode, synthetic_person
from midas_ros.ros.conversions import ConversionError, pointcloud2_to_xyz, stamp_to_ns
from midas_ros.ros.nodes import run_node


class LidarAdapter(AdapterNode):
    """Finds the person in the cloud and samples the model's fixed point count of them (base frame)."""

    modality = "lidar"
    input_type = PointCloud2
    output_type = PointCloud2

    def declare_modality_parameters(self) -> None:
        self.sensor_pose = self.declare_sensor_pose(
            "lidar_pose",
            MMFI_RIG.lidar_pose,
            "the LiDAR's frame (the cloud's frame_id) in the base frame: [x, y, z, roll, pitch, yaw] "
            "(m, rad, ROS fixed-axis RPY); the base frame's origin is on the floor below the depth camera",
        )
        self.search = self.declare_person_search()
        self.voxel_size_m: float = self.number_param("voxel_size_m", 0.02, "voxel downsampling size (m)")
        self.min_points: int = self.param(
            "min_points", 16, "a person with fewer points than this: rejected (too_few_points)"
        )
        self.max_points: int = self.param(
            "max_points",
            300_000,
            "clouds with more points are rejected (too_many_points) before any work; "
            "the largest common scan, 128 x 2048, has 262,144",
        )
        self.stride: tuple[int, int] = (
            self.param("stride_rings", 1, "organised scans: keep every n-th ring (thins a dense scan)"),
            self.param("stride_columns", 1, "organised scans: keep every n-th column"),
        )
        self.track = PersonTrack()  # used by the worker thread only

    def warm_up(self) -> None:
        """A person-sized box through the preprocessing: open3d's import (about a second) and first calls
        happen at start-up, not on the first scan."""
        import open3d  # noqa: F401

        pose = self.sensor_pose.pose
        local = pose.from_base(synthetic_person(self.search)).astype(np.float32)
        try:
            preprocess_lidar(local, pose, search=self.search, min_points=1)
        except PreprocessError as err:
            self.get_logger().warning(f"warm-up: a person-sized box was not found ({err}); search region?")

    def sample_header(self, msg: PointCloud2) -> Header:
        """The input's stamp; the frame_id is the base frame's, where the sample's points are."""
        return Header(stamp=msg.header.stamp, frame_id=self.sensor_pose.base_frame)

    def to_sample(self, msg: PointCloud2) -> np.ndarray:
        size = int(msg.width) * int(msg.height)
        if size > self.max_points:  # checked on the header: a huge cloud costs nothing here
            raise ConversionError("too_many_points", f"{size} points, more than max_points {self.max_points}")
        # preprocess_lidar drops NaN, Inf and (0, 0, 0) "no return" points itself, and takes an organised
        # scan as it is (rings x columns), which lets it stride over rings before any other work.
        points = pointcloud2_to_xyz(msg, drop_invalid=False)
        if msg.height > 1:
            points = points.reshape(int(msg.height), int(msg.width), 3)
        stride = self.stride if points.ndim == 3 else 1
        return preprocess_lidar(
            points,
            self.sensor_pose.pose_of(msg.header.frame_id),
            search=self.search,
            track=self.track,
            stamp_s=stamp_to_ns(msg.header.stamp) / 1e9,
            num_points=LIDAR_NUM_POINTS,
            voxel_size_m=self.voxel_size_m,
            min_points=self.min_points,
            stride=stride,
        )


def main(args: list[str] | None = None) -> None:
    """Entry point `lidar_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(LidarAdapter, args)


if __name__ == "__main__":
    main()
