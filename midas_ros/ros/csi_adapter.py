"""CSI adapter: CSI-layout PointCloud2 (3 x 114 x 10) -> midas/sample/csi (6 x 114 x 10, same layout)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2

from midas_ros.preprocess import preprocess_csi
from midas_ros.ros.adapter import AdapterNode
from midas_ros.ros.conversions import pointcloud2_to_csi
from midas_ros.ros.nodes import run_node


class CsiAdapter(AdapterNode):
    """Sanitises CSI frames (NaN fill, phase unwrap and detrend, amplitude normalisation)."""

    modality = "csi"
    input_type = PointCloud2
    output_type = PointCloud2

    def to_sample(self, msg: PointCloud2) -> np.ndarray:
        amplitude, phase = pointcloud2_to_csi(msg)
        return preprocess_csi(amplitude, phase)


def main(args: list[str] | None = None) -> None:
    """Entry point `csi_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(CsiAdapter, args)


if __name__ == "__main__":
    main()
