"""The composed node graph (adapters + fusion, as `bringup` builds and spins it) on real drivers' sizes.

A driver node publishes what a RealSense (848 x 480 16UC1 with holes and the invalid left band), an
Ouster (64 x 1024 organised, point_step 48) and the CSI tool publish, rendered by the simulator, plus
some malformed messages and a 2M-point cloud. Every input message must be accounted for, and bad ones
rejected with their reason, while skeletons keep coming.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_utils import wait_until  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from midas_ros import MODALITIES  # noqa: E402
from midas_ros.demo.cloud_layouts import driver_cloud  # noqa: E402
from midas_ros.interfaces import FUSION_TOPIC, SENSOR_TOPICS  # noqa: E402
from midas_ros.model import MIDAS, save_checkpoint, tiny_config  # noqa: E402
from midas_ros.ros.bringup import build_nodes, spin  # noqa: E402
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2  # noqa: E402
from midas_ros.ros.fusion_record import parse_fusion_record  # noqa: E402
from midas_ros.sim.drivers import D435, DriverSimulator  # noqa: E402
from midas_ros.sim.generate import simulate_sequence  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NS = 1_000_000_000
FRAMES = 3


@pytest.fixture(scope="module")
def driver_frames() -> list[dict[str, Image | PointCloud2]]:
    sim = DriverSimulator(40, 14, FRAMES, seed=0)
    csi = simulate_sequence(40, 14, FRAMES, 0)
    frames = []
    for f in range(FRAMES):
        depth = sim.depth_frame(f)
        assert depth.shape == (480, 848) and (depth[:, :20] == 0).all()  # the invalid left band
        scan = sim.ouster_scan(f)
        assert scan.shape == (64, 1024, 3)
        frames.append(
            {
                "depth": array_to_image(depth),
                "lidar": driver_cloud(scan, "ouster"),
                "csi": csi_to_pointcloud2(csi.csi_amplitude[f], csi.csi_phase[f]),
            }
        )
    assert frames[0]["lidar"].point_step == 48 and len(frames[0]["lidar"].data) == 64 * 1024 * 48
    return frames


class Drivers(Node):
    """Publishes the sensor topics best effort (SensorDataQoS), as the drivers do; keeps what returns."""

    def __init__(self) -> None:
        super().__init__("test_drivers")
        self.pubs = {
            m: self.create_publisher(
                Image if m == "depth" else PointCloud2, SENSOR_TOPICS[m], qos_profile_sensor_data
            )
            for m in MODALITIES
        }
        self.sent = dict.fromkeys(MODALITIES, 0)
        self.lock = threading.Lock()
        self.records: list = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.create_subscription(DiagnosticArray, FUSION_TOPIC, self._on_record, 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _on_record(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.records.append(parse_fusion_record(msg))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            for status in msg.status:
                self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def send(self, modality: str, msg: Image | PointCloud2, stamp_ns: int) -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
        self.pubs[modality].publish(msg)
        self.sent[modality] += 1

    def counts(self, modality: str) -> dict[str, int]:
        with self.lock:
            values = self.diagnostics.get(f"midas_ros/{modality}_adapter", {})
        return {k: int(v) for k, v in values.items() if v.isdigit()}  # the adapter's counters


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Node], Drivers]]:
    checkpoint = save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny")
    k = D435.intrinsics
    rclpy.init()
    nodes = build_nodes(
        use_sim_time=False,
        device="cpu",
        checkpoint=str(checkpoint),
        overrides={
            **{f"{m}_adapter": {"diagnostics_period_s": 0.2} for m in MODALITIES},
            # the D435's intrinsics as parameters (a driver without camera_info)
            "depth_adapter": {
                "diagnostics_period_s": 0.2,
                "camera_info_k": [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
                "camera_info_width": k.width,
                "camera_info_height": k.height,
            },
        },
    )
    drivers = Drivers()
    stop = threading.Event()
    thread = threading.Thread(target=spin, args=([*nodes, drivers],), kwargs={"until": stop}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: all(p.get_subscription_count() > 0 for p in drivers.pubs.values()), 20)
        yield nodes, drivers
    finally:
        stop.set()
        thread.join(timeout=10)
        for node in [drivers, *nodes]:
            node.destroy_node()
        rclpy.try_shutdown()


def settled(drivers: Drivers) -> bool:
    """Every message sent reached the adapter or is counted lost, and the adapter is done with it."""
    for m in MODALITIES:
        c = drivers.counts(m)
        if not c or c["received"] + c["lost_before_callback"] != drivers.sent[m]:
            return False
        if c["processed"] + c["rejected"] + c["dropped_busy"] != c["received"]:
            return False
    return True


def test_real_size_streams_are_fused_and_every_message_is_accounted_for(graph, driver_frames) -> None:
    _, drivers = graph
    t0 = 1000 * NS
    bad = {
        "depth": Image(encoding="rgb8", height=480, width=848, step=848 * 3, data=bytes(480 * 848 * 3)),
        "lidar": driver_cloud(np.zeros((64, 1024, 3), np.float32), "ouster"),  # no return at all
        "csi": csi_to_pointcloud2(np.ones((3, 56, 10)), np.zeros((3, 56, 10))),  # a 20 MHz channel
    }
    reasons = {"depth": "bad_encoding", "lidar": "non_finite", "csi": "bad_shape"}
    for k in range(12):
        for m in MODALITIES:
            drivers.send(m, driver_frames[k % FRAMES][m], t0 + k * NS // 10)
        if k == 6:
            for m in MODALITIES:
                drivers.send(m, bad[m], t0 + k * NS // 10 + NS // 20)
        threading.Event().wait(0.1)  # 10 Hz, as the drivers publish
    assert wait_until(lambda: settled(drivers), 20), {m: drivers.counts(m) for m in MODALITIES}
    for m in MODALITIES:
        counts = drivers.counts(m)
        assert counts[f"rejected/{reasons[m]}"] == 1, (m, counts)
        assert counts["processed"] >= 6, (m, counts)  # most frames made it through on a busy machine
    with drivers.lock:
        full = [r for r in drivers.records if r.subset == MODALITIES and r.stamp_ns >= t0]
    assert len(full) >= 4
    assert all(abs(r.sample_stamps_ns["lidar"] - r.stamp_ns) <= 50_000_000 for r in full)


def test_a_two_million_point_cloud_is_rejected_and_the_stream_goes_on(graph, driver_frames) -> None:
    _, drivers = graph
    t0 = 2000 * NS
    rng = np.random.default_rng(0)
    huge = driver_cloud(rng.uniform([0.5, -3, -1], [6, 3, 1], (2_000_000, 3)).astype(np.float32), "velodyne")
    before = drivers.counts("lidar").get("rejected/too_many_points", 0)
    # Alone on its topic, so no newer scan can replace it while the worker is busy (that would be
    # counted as dropped_busy instead): the adapter must see it and say why it refused it.
    drivers.send("lidar", huge, t0)
    assert wait_until(lambda: settled(drivers), 20)
    counts = drivers.counts("lidar")
    assert counts.get("rejected/too_many_points", 0) == before + 1, counts
    for k in range(1, 8):
        for m in MODALITIES:
            drivers.send(m, driver_frames[k % FRAMES][m], t0 + k * NS // 10)
        threading.Event().wait(0.1)
    assert wait_until(lambda: settled(drivers), 20)
    with drivers.lock:
        later = [r for r in drivers.records if r.stamp_ns > t0 and "lidar" in r.subset]
    assert len(later) >= 2, "LiDAR frames after the huge cloud are still fused"
