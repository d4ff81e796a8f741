"""Real WiFi CSI -> the CSI topic (CSI-layout PointCloud2, 3 antennas x 114 subcarriers x 10 packets).

Two sources (parameter ``source``):

- ``file``: a capture recorded by a CSI tool (Intel 5300 / Atheros ``.dat``, nexmon ``.pcap``, ESP32
  ``.csv``; see midas_ros.csi_devices) is read with csiread, mapped onto MM-Fi's grid and published at
  ``rate_hz`` frames a second, optionally looping.
- ``udp``: live packets. Point the CSI tool's UDP forwarder at ``udp_host:udp_port`` (default
  127.0.0.1:5500): each datagram holds one record as the tool logs it, without the file's 2-byte length
  prefix (csiread's real-time ``pmsg`` format): Intel 5300 netlink records (code byte 0xbb first) or
  Atheros CSI Tool records. Every 10 CSI packets make one frame, stamped with the node's clock when its
  first packet arrived.

A device whose receive-antenna count cannot be mapped onto MM-Fi's 3 (ESP32, most nexmon setups) is
refused at start with a message naming the device and its counts. Frame stamps come from the node's
clock (the NIC clocks are not ROS time).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from midas_ros.csi_devices import CsiDeviceError, CsiFrame, FrameAssembler, LivePacketParser, load_frames
from midas_ros.interfaces import SENSOR_TOPICS
from midas_ros.ros.conversions import csi_to_pointcloud2
from midas_ros.ros.nodes import declare_param, run_node

CSI_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,  # accepted by reliable and best-effort subscribers alike
    durability=DurabilityPolicy.VOLATILE,
)


class CsiCaptureNode(Node):
    """Publishes CSI frames from a capture file or a live UDP stream (see the module docstring)."""

    def __init__(self, node_name: str = "csi_capture", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.declared_parameters: list[str] = []  # this node's own parameters (config/adapters.yaml)
        self.source: str = self._param("source", "file", "file (a recorded capture) or udp (live packets)")
        self.capture_path: str = self._param("capture_path", "", "capture file for source=file")
        self.device: str = self._param(
            "device", "", "intel5300 | atheros | nexmon | esp32; '' = guess from the file name (file only)"
        )
        self.rate_hz: float = self._param("rate_hz", 10.0, "frames published per second (source=file)")
        self.loop: bool = self._param("loop", False, "start the capture over at its end (source=file)")
        self.udp_host: str = self._param("udp_host", "127.0.0.1", "address to receive packets on (udp)")
        self.udp_port: int = self._param("udp_port", 5500, "UDP port to receive packets on (udp)")
        self.frame_id: str = self._param("frame_id", "wifi_csi", "frame_id of the published frames")
        antennas = self._param("antennas", [0, 1, 2], "the 3 rx antenna indices to use, in order")
        self.antennas = tuple(int(a) for a in antennas)

        self.published = 0
        self._pub = self.create_publisher(PointCloud2, SENSOR_TOPICS["csi"], CSI_QOS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.source == "file":
            if not self.capture_path:
                raise CsiDeviceError("source=file needs the capture_path parameter")
            self.frames = load_frames(Path(self.capture_path), self.device or None, antennas=self.antennas)
            self._next = 0
            self._timer = self.create_timer(1.0 / self.rate_hz, self._publish_next)
            self.get_logger().info(
                f"{len(self.frames)} frames from {self.capture_path} -> {self._pub.topic_name} "
                f"at {self.rate_hz} Hz"
            )
        elif self.source == "udp":
            parser = LivePacketParser(self.device or "intel5300")
            self._assembler = FrameAssembler(parser.device, self.antennas)
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.bind((self.udp_host, self.udp_port))
            self._socket.settimeout(0.2)  # so the receive thread notices shutdown
            self.udp_port = self._socket.getsockname()[1]  # the real port when 0 (any) was asked for
            self._thread = threading.Thread(target=self._receive, args=(parser,), daemon=True)
            self._thread.start()
            self.get_logger().info(f"{parser.device} packets on udp://{self.udp_host}:{self.udp_port}")
        else:
            raise ValueError(f"source must be 'file' or 'udp', not {self.source!r}")

    def _param(self, name: str, default: Any, description: str) -> Any:
        self.declared_parameters.append(name)
        return declare_param(self, name, default, description)

    def _publish(self, frame: CsiFrame, header: Header) -> None:
        self._pub.publish(csi_to_pointcloud2(frame.amplitude, frame.phase, header))
        self.published += 1

    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)

    def _publish_next(self) -> None:
        if self._next >= len(self.frames):
            if not self.loop:
                self._timer.cancel()
                self.get_logger().info(f"end of capture: {self.published} frames published")
                return
            self._next = 0
        self._publish(self.frames[self._next], self._header())
        self._next += 1

    def _receive(self, parser: LivePacketParser) -> None:
        header = None
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break  # socket closed
            try:
                csi = parser.parse(data)
            except Exception as err:  # a corrupt datagram must not end the stream
                self.get_logger().warning(f"unreadable CSI datagram ({len(data)} bytes): {err}")
                continue
            if csi is None:
                continue
            header = header or self._header()  # the frame's stamp: its first packet's arrival
            try:
                frame = self._assembler.push(csi)
            except CsiDeviceError as err:
                self.get_logger().error(str(err), throttle_duration_sec=5.0)
                header = None
                continue
            if frame is not None:
                self._publish(frame, header)
                header = None

    def destroy_node(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._socket.close()
            self._thread.join(timeout=1.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point `csi_capture`: publish until Ctrl-C or shutdown; exit 1 when the device is unusable."""

    def make_node() -> CsiCaptureNode:
        try:
            return CsiCaptureNode()
        except CsiDeviceError as err:
            rclpy.logging.get_logger("csi_capture").fatal(str(err))
            raise SystemExit(1) from err

    run_node(make_node, args)


if __name__ == "__main__":
    main()
