"""CSI adapter: CSI-layout PointCloud2 (3 x 114 x 10) -> midas/sample/csi (6 x 114 x 10, same layout).

The frame -> sample work is `samples.CsiSampler` (the replay uses it too).
"""

from __future__ import annotations

from sensor_msgs.msg import PointCloud2

from midas_ros.ros.adapter import AdapterNode
from midas_ros.ros.nodes import run_node
from midas_ros.ros.samples import CsiSampler


class CsiAdapter(AdapterNode):
    """Sanitises CSI frames (NaN fill, phase unwrap and detrend, amplitude normalisation)."""

    modality = "csi"
    input_type = PointCloud2
    output_type = PointCloud2

    def declare_modality_parameters(self) -> None:
        self.sampler = CsiSampler()


def main(args: list[str] | None = None) -> None:
    """Entry point `csi_adapter`: spin the adapter until Ctrl-C or shutdown."""
    run_node(CsiAdapter, args)


if __name__ == "__main__":
    main()
