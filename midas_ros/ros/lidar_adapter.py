"""LiDAR adapter: sensor_msgs/PointCloud2 (any x/y/z float layout) -> midas/sample/lidar (512 x, y, z)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2

from midas_ros.interfaces import LIDAR_NUM_POINTS
from midas_ros.preprocess import LidarROI, preprocess_lidar
from midas_ros.ros.adapter import AdapterNode
from midas_ros.ros.conversions import ConversionError, pointcloud2_to_xyz
from midas_ros.ros.nodes import run_node


class LidarAdapter(AdapterNode):
    """Crops the cloud to the sensing area and samples the model's fixed point count."""

    modality = "lidar"
    input_type = PointCloud2
    output_type = PointCloud2

    def declare_modality_parameters(self) -> None:
        defaults = LidarROI()
        bounds = {
            f"roi_{axis}_{end}": self.param(
                f"roi_{axis}_{end}",
                float(getattr(defaults, f"{axis}_{end}")),
                f"region of interest: {end} {axis} in the LiDAR frame (m)",
            )
            for axis in "xyz"
            for end in ("min", "max")
        }
        self.roi = LidarROI(**{key.removeprefix("roi_"): value for key, value in bounds.items()})
        self.voxel_size_m: float = self.param("voxel_size_m", 0.02, "voxel downsampling size (m)")
        self.min_points: int = self.param("min_points", 16, "fewer points than this in the ROI: rejected")
        self.max_points: int = self.param(
            "max_points",
            300_000,
            "clouds with more points are rejected (too_many_points) before any work; "
            "the largest common scan, 128 x 2048, has 262,144",
        )
        self.stride: tuple[int, int] = (
            self.param("stride_rings", 1, "organised scans: keep every n-th ring (2 turns 64 beams into 32)"),
            self.param("stride_columns", 1, "organised scans: keep every n-th column"),
        )

    def warm_up(self) -> None:
        """One small cloud through the preprocessing: open3d's import (about a second) and first calls
        happen at start-up, not on the first scan."""
        rng = np.random.default_rng(0)
        centre = [
            (lo + hi) / 2
            for lo, hi in (
                (self.roi.x_min, self.roi.x_max),
                (self.roi.y_min, self.roi.y_max),
                (self.roi.z_min, self.roi.z_max),
            )
        ]
        preprocess_lidar(rng.normal(centre, 0.1, (64, 3)), roi=self.roi, min_points=1)

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
            roi=self.roi,
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
