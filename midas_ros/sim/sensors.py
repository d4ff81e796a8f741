"""The simulated sensor rig (docs/design.md "Frames and sensors"): poses and intrinsics as plain constants.

Import these for ROS frame ids, camera_info and static transforms; this module has no heavy imports.
Positions are in the room frame `midas_room` (x forward into the room, y left, z up), metres.
"""

from __future__ import annotations

# Depth camera (RealSense-D435-like), pinhole, image = optical frame (z forward, x right, y down).
DEPTH_WIDTH = 640
DEPTH_HEIGHT = 480
DEPTH_FX = 383.0
DEPTH_FY = 383.0
DEPTH_CX = 319.5
DEPTH_CY = 239.5
DEPTH_K: tuple[float, ...] = (DEPTH_FX, 0.0, DEPTH_CX, 0.0, DEPTH_FY, DEPTH_CY, 0.0, 0.0, 1.0)
DEPTH_CAMERA_POSITION: tuple[float, float, float] = (0.0, 0.0, 1.0)
# Rotation from the optical frame to the room frame: row i gives room axis i in optical coordinates,
# i.e. room x = optical z, room y = -optical x, room z = -optical y.
DEPTH_OPTICAL_TO_ROOM: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0),
    (-1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
)
# The same rotation as a quaternion (x, y, z, w), for a static transform room -> optical frame.
DEPTH_OPTICAL_QUATERNION_XYZW: tuple[float, float, float, float] = (-0.5, 0.5, -0.5, 0.5)

# LiDAR (Ouster-OS1-32-like), axes parallel to the room frame.
LIDAR_POSITION: tuple[float, float, float] = (0.0, 0.0, 1.3)
LIDAR_RINGS = 32
LIDAR_COLUMNS = 1024
LIDAR_VERTICAL_FOV_DEG = 45.0

# WiFi: 5 GHz channel 38 (40 MHz), 114 subcarriers, a transmitter and a 3-antenna receiver array
# (half a wavelength apart along x) on either side of the sensing area.
CSI_CENTER_HZ = 5.19e9
CSI_SUBCARRIER_SPACING_HZ = 312.5e3
SPEED_OF_LIGHT = 299_792_458.0
CSI_WAVELENGTH_M = SPEED_OF_LIGHT / CSI_CENTER_HZ
WIFI_TX_POSITION: tuple[float, float, float] = (3.0, 2.4, 1.1)
WIFI_RX_POSITIONS: tuple[tuple[float, float, float], ...] = tuple(
    (3.0 + (i - 1) * CSI_WAVELENGTH_M / 2, -2.4, 1.1) for i in range(3)
)

FRAME_RATE_HZ = 10.0
