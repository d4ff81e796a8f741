"""LiDAR adapter: sensor_msgs/PointCloud2 (any x/y/z float layout) -> midas/sample/lidar (512 x, y, z).

The cloud is brought into the base frame with the LiDAR's pose (the ``lidar_pose`` parameter, or TF
with ``use_tf``: base_frame -> the cloud's frame_id), the person is found there, and their points are
sampled to the model's fixed count, in the base frame (midas_ros.preprocess.lidar); the sample's header
has the cloud's stamp and the base frame's name (``base_frame``) as frame_id.

The cloud -> sample work (the max_points check, an organised scan's rings and stride, preprocess_lidar
with a PersonTrack) is `samples.LidarSampler`, which the replay uses too; this node declares its
parameters, subscribes, logs and publishes.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2

from midas_ros.preprocess import PreprocessError, preprocess_lidar
from midas_ros.ros.adapter import AdapterNode, synthetic_person
from midas_ros.ros.nodes import run_node
from midas_ros.ros.samples import LIDAR_PARAMETERS, POSE_FROM_TRANSFORM, POSE_PARAMETERS, LidarSampler


class LidarAdapter(AdapterNode):
    """Finds the person in the cloud and samples the model's fixed point count of them (base frame)."""

    modality = "lidar"
    input_type = PointCloud2
    output_type = PointCloud2
    sampler: LidarSampler

    def declare_modality_parameters(self) -> None:
        values = self.declare(LIDAR_PARAMETERS)
        self.sensor_pose = self.declare_sensor_pose(POSE_PARAMETERS["lidar"], POSE_FROM_TRANSFORM["lidar"])
        self.sampler = LidarSampler(values, self.sensor_pose.pose_of)  # used by the worker thread

    def warm_up(self) -> None:
        """A person-sized box through the preprocessing: open3d's import (about a second) and first calls
        happen at start-up, not on the first scan."""
        import open3d  # noqa: F401

        pose, search = self.sensor_pose.pose, self.sampler.search
        local = pose.from_base(synthetic_person(search)).astype(np.float32)
        try:
            preprocess_lidar(local, pose, search=search, min_points=1)
        except PreprocessError as err:
            self.get_logger().warning(f"warm-up: a person-sized box was not found ({err}); search region?")


def main(args: list[str] | None = None) -> None:
    """Entry point `lidar_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(LidarAdapter, args)


if __name__ == "__main__":
    main()
