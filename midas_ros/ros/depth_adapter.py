"""Depth adapter: sensor_msgs/Image (16UC1 mm or 32FC1 m) -> midas/sample/depth (32FC1, 96 x 128, metres)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from midas_ros.preprocess import preprocess_depth
from midas_ros.ros.adapter import AdapterNode
from midas_ros.ros.conversions import image_to_array
from midas_ros.ros.nodes import run_node


class DepthAdapter(AdapterNode):
    """Validates depth images and resizes them to the model's input with the training preprocessing."""

    modality = "depth"
    input_type = Image
    output_type = Image

    def declare_modality_parameters(self) -> None:
        self.scale_to_m: float = self.param(
            "scale_to_m", 0.0, "metres per depth unit; 0 = auto (0.001 for 16UC1 mm, 1.0 for 32FC1 m)"
        )
        self.max_range_m: float = self.param("max_range_m", 8.0, "valid depths beyond this are clipped (m)")
        crop = [
            self.param(
                f"crop_{name}", 0, f"crop {name} in pixels before resizing; crop_height/width 0 = no crop"
            )
            for name in ("top", "left", "height", "width")
        ]
        self.crop: tuple[int, int, int, int] | None = tuple(crop) if crop[2] > 0 and crop[3] > 0 else None

    def to_sample(self, msg: Image) -> np.ndarray:
        depth = image_to_array(msg)
        return preprocess_depth(
            depth, scale_to_m=self.scale_to_m or None, crop=self.crop, max_range_m=self.max_range_m
        )


def main(args: list[str] | None = None) -> None:
    """Entry point `depth_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(DepthAdapter, args)


if __name__ == "__main__":
    main()
