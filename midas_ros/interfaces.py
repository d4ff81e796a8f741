"""The package's fixed interfaces, in one light module: topic names and the model's input shapes.

Everything that names a topic or an input shape imports it from here (nodes, launch file, demo, model,
preprocessing, tests); nothing here imports more than the standard library.

Topic names are relative, as ROS nodes' names should be: they resolve in the node's namespace and are
remapped at launch (``ros2 run ... --ros-args -r points:=/my_lidar/points`` or the launch file's
arguments). In the root namespace the sensor inputs resolve to the default drivers' own topics, so a
RealSense (realsense2_camera), an Ouster (ouster-ros) and the CSI capture node connect without remapping.
"""

from __future__ import annotations

from midas_ros import MODALITIES

# -- raw sensor inputs (the adapters subscribe to these; remap them to your drivers') ---------------------
SENSOR_TOPICS: dict[str, str] = {
    "depth": "camera/camera/depth/image_rect_raw",  # sensor_msgs/Image, 16UC1 mm or 32FC1 m (REP 118)
    "lidar": "ouster/points",  # sensor_msgs/PointCloud2, any layout with float x, y, z
    "csi": "wifi/csi",  # sensor_msgs/PointCloud2 in the CSI layout (README)
}
DEPTH_CAMERA_INFO_TOPIC = "camera/camera/depth/camera_info"  # sensor_msgs/CameraInfo of the depth stream

# -- between the nodes ------------------------------------------------------------------------------------
SAMPLE_TOPICS: dict[str, str] = {m: f"midas/sample/{m}" for m in MODALITIES}  # adapters -> fusion node
MARKERS_TOPIC = "midas/skeleton/markers"  # visualization_msgs/MarkerArray for RViz
POSES_TOPIC = "midas/skeleton/poses"  # geometry_msgs/PoseArray, 17 joints in MM-Fi order
# diagnostic_msgs/DiagnosticArray, one per published skeleton, stamped with its set's stamp: the live
# subset, the modality weights used, each sample's stamp and the latencies (for recorders and scoring).
FUSION_TOPIC = "midas/skeleton/fusion"
GROUND_TRUTH_TOPIC = "midas/ground_truth"  # geometry_msgs/PoseArray in simulated and scored bags
DIAGNOSTICS_TOPIC = "/diagnostics"  # absolute by ROS convention (diagnostic_aggregator listens there)
TF_STATIC_TOPIC = "/tf_static"  # absolute by ROS convention (tf2)

# -- the model's inputs (preprocess.py produces them, the model and the sample topics carry them) --------
DEPTH_NUM_POINTS = 5120  # x, y, z of the person's visible surface (2 cm voxels), base frame
LIDAR_NUM_POINTS = 512  # x, y, z of the person's points, base frame
CSI_RAW_SHAPE: tuple[int, int, int] = (3, 114, 10)  # antennas x subcarriers x packets, amplitude or phase
CSI_INPUT_SHAPE: tuple[int, int, int] = (2 * CSI_RAW_SHAPE[0], *CSI_RAW_SHAPE[1:])  # amplitude + phase
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "depth": (DEPTH_NUM_POINTS, 3),
    "lidar": (LIDAR_NUM_POINTS, 3),
    "csi": CSI_INPUT_SHAPE,
}
