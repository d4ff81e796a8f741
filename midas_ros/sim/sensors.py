"""The room's WiFi link and the simulator's frame rate, as plain constants (no heavy imports).

Depth cameras and LiDARs belong to rigs (midas_ros.rig, the pool in sim.rigs); the WiFi transmitter and
receiver belong to the room. Positions are in the room frame (x forward into the room from MM-Fi's rig
spot, y left, z up), metres.
"""

from __future__ import annotations

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
