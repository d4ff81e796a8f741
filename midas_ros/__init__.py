"""midas_ros: multimodal 3D human pose under sensor failure (MIDAS), as a ROS 2 package."""

MODALITIES: tuple[str, ...] = ("depth", "lidar", "csi")
__version__ = "0.1.0"
