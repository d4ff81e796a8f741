"""The adapter nodes and the CSI capture node with real rclpy nodes (one process, and across processes)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from conftest import REPO_ROOT, SHARED_DATA
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_utils import Collector, make_cloud, ros_context, ros_context_fixture, spin_until, wait_for_match
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header

from midas_ros.csi_devices import CsiDeviceError
from midas_ros.interfaces import SAMPLE_TOPICS, SENSOR_TOPICS
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2, msg_to_sample, pointcloud2_to_csi
from midas_ros.ros.csi_adapter import CsiAdapter
from midas_ros.ros.csi_capture_node import CsiCaptureNode
from midas_ros.ros.depth_adapter import DepthAdapter
from midas_ros.ros.lidar_adapter import LidarAdapter

pytestmark = pytest.mark.ros
CSI_DIR = SHARED_DATA / "csi"
INTEL = CSI_DIR / "5300_sample_0x1_ap.dat"
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
context = pytest.fixture(ros_context_fixture)  # a private rclpy context per test


def remap(modality: str, raw: str, sample: str | None = None) -> list[str]:
    """Node arguments that remap an adapter's relative input (and output) topic, as a launch file does."""
    rules = ["-r", f"{SENSOR_TOPICS[modality]}:={raw}"]
    if sample is not None:
        rules += ["-r", f"{SAMPLE_TOPICS[modality]}:={sample}"]
    return ["--ros-args", *rules]


ADAPTERS = {
    "depth": (DepthAdapter, Image),
    "lidar": (LidarAdapter, PointCloud2),
    "csi": (CsiAdapter, PointCloud2),
}


class Rig:
    """Three adapters plus a probe node publishing raw messages and collecting samples, one executor."""

    def __init__(self, context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.probe = Node("probe", context=context)
        self.executor.add_node(self.probe)
        self.adapters, self.pubs, self.samples = {}, {}, {}
        for modality, (cls, msg_type) in ADAPTERS.items():
            self.adapters[modality] = cls(
                context=context,
                parameter_overrides=[Parameter("diagnostics_period_s", value=0.25)],
                cli_args=remap(modality, f"/test/raw/{modality}", f"/test/sample/{modality}"),
            )
            self.executor.add_node(self.adapters[modality])
            # Depth like a RealSense driver (best effort), the others like a bag player (reliable).
            qos = BEST_EFFORT if modality == "depth" else RELIABLE
            self.pubs[modality] = self.probe.create_publisher(msg_type, f"/test/raw/{modality}", qos)
            self.samples[modality] = Collector(self.probe, msg_type, f"/test/sample/{modality}", RELIABLE)
        self.diagnostics = Collector(self.probe, DiagnosticArray, "/diagnostics")
        for modality in ADAPTERS:
            assert wait_for_match(self.executor, self.pubs[modality]), f"{modality} adapter never subscribed"
            assert wait_for_match(self.executor, self.samples[modality].subscription)
        self.stamp = 1000

    def header(self, frame_id: str) -> Header:
        self.stamp += 1
        h = Header(frame_id=frame_id)
        h.stamp.sec, h.stamp.nanosec = self.stamp, 123_456_789
        return h

    def expect_sample(self, modality: str, msg) -> object:
        """Publish; the adapter's sample with the same stamp and frame_id arrives."""
        got = self.samples[modality].messages
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.pubs[modality].publish(msg)
        match = lambda: [m for m in got if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp]  # noqa: E731
        assert spin_until(self.executor, lambda: bool(match())), f"no {modality} sample for stamp {stamp}"
        out = match()[0]
        assert out.header.frame_id == msg.header.frame_id
        return out

    def expect_rejection(self, modality: str, msg, reason: str) -> None:
        accounting = self.adapters[modality].accounting
        before = accounting.snapshot()
        self.pubs[modality].publish(msg)
        assert spin_until(
            self.executor,
            lambda: accounting.snapshot().rejected.get(reason, 0) > before.rejected.get(reason, 0),
        ), f"{modality}: no '{reason}' rejection; counts {accounting.snapshot()}"
        assert accounting.snapshot().processed == before.processed

    def close(self) -> None:
        for node in [*self.adapters.values(), self.probe]:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()


@pytest.fixture(scope="module")
def rig():
    with ros_context() as context:
        r = Rig(context)
        yield r
        r.close()


# -- valid inputs and what they look like ----------------------------------------------------------------


def depth_mm(h: int = 480, w: int = 640) -> np.ndarray:
    """A wall at 4 m with a person-sized box at 3 m, 16-bit mm, a few holes."""
    depth = np.full((h, w), 4000, np.uint16)
    depth[h // 4 : 3 * h // 4, w // 3 : w // 2] = 3000
    depth[::17, ::13] = 0
    return depth


def person_points(n: int = 800, seed: int = 0) -> np.ndarray:
    """A person-sized blob 3 m ahead of the LiDAR (inside the default ROI)."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.normal(3.0, 0.1, n), rng.normal(0.0, 0.2, n), rng.uniform(-1.2, 0.4, n)]
    ).astype(np.float32)


def csi_frame(seed: int = 0, shape=(3, 114, 10)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(1, 20, shape).astype(np.float32), rng.uniform(-np.pi, np.pi, shape).astype(np.float32)


# -- depth -----------------------------------------------------------------------------------------------


def test_depth_16uc1_and_32fc1(rig):
    out = rig.expect_sample("depth", array_to_image(depth_mm(), rig.header("camera_depth_optical_frame")))
    assert (out.encoding, out.height, out.width) == ("32FC1", 96, 128)
    sample = msg_to_sample("depth", out)
    assert sample.shape == (1, 96, 128)
    assert np.isclose(sample[0, 48, 10], 4.0, atol=0.01)  # metres, holes ignored by the resize
    assert np.isclose(sample[0, 48, 53], 3.0, atol=0.01)

    metres = depth_mm().astype(np.float32) / 1000
    metres[metres == 0] = np.nan
    out = rig.expect_sample("depth", array_to_image(metres, rig.header("cam2")))
    np.testing.assert_allclose(msg_to_sample("depth", out), sample, atol=1e-4)


def test_depth_rejections_and_node_survives(rig):
    h = rig.header("cam")
    rgb = Image(header=h, height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    rig.expect_rejection("depth", rgb, "bad_encoding")
    bad_step = array_to_image(depth_mm(8, 8), rig.header("cam"))
    bad_step.step = 10
    rig.expect_rejection("depth", bad_step, "bad_step")
    rig.expect_rejection("depth", Image(header=rig.header("cam"), encoding="16UC1"), "empty")
    rig.expect_rejection(
        "depth", array_to_image(np.zeros((48, 64), np.uint16), rig.header("c")), "no_valid_pixels"
    )
    rig.expect_sample("depth", array_to_image(depth_mm(), rig.header("cam")))  # still alive


# -- LiDAR -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "kwargs"),
    [
        ("ouster", {}),
        ("ouster", {"big_endian": True}),
        ("velodyne", {"row_pad": 0}),
        ("livox", {"is_dense": True}),
    ],
    ids=["ouster", "ouster-big-endian", "velodyne", "livox-nan"],
)
def test_lidar_layouts(rig, layout, kwargs):
    person = person_points()
    if layout == "ouster":  # organised 32 x 1024 with the person somewhere in it, zeros elsewhere
        xyz = np.zeros((32, 1024, 3), np.float32)
        xyz.reshape(-1, 3)[:: (32 * 1024) // len(person)][: len(person)] = person
    else:
        xyz = np.concatenate([person, np.full((50, 3), np.nan, np.float32)]) if layout == "livox" else person
    out = rig.expect_sample("lidar", make_cloud(xyz, layout, header=rig.header("os_lidar"), **kwargs))
    points = msg_to_sample("lidar", out)
    assert points.shape == (512, 3)
    assert np.isfinite(points).all()
    # Every output point is a person point (no zeros, NaNs or invented points).
    assert np.abs(points.mean(axis=0) - person.mean(axis=0)).max() < 0.15
    assert points[:, 0].min() > 2.4


def test_lidar_rejections_and_node_survives(rig):
    rig.expect_rejection(
        "lidar", make_cloud(person_points(5), "velodyne", header=rig.header("l")), "too_few_points"
    )
    nan_only = np.full((100, 3), np.nan, np.float32)
    rig.expect_rejection("lidar", make_cloud(nan_only, "livox", header=rig.header("l")), "non_finite")
    no_z = make_cloud(person_points(), "velodyne", header=rig.header("l"))
    no_z.fields = [f for f in no_z.fields if f.name != "z"]
    rig.expect_rejection("lidar", no_z, "missing_fields")
    rig.expect_rejection("lidar", PointCloud2(header=rig.header("l")), "empty")
    rig.expect_sample("lidar", make_cloud(person_points(), "velodyne", header=rig.header("l")))


# -- CSI -------------------------------------------------------------------------------------------------


def test_csi_good_frame(rig):
    amplitude, phase = csi_frame()
    amplitude[1, 5, 3] = np.nan  # filled by the preprocessing, not a rejection
    out = rig.expect_sample("csi", csi_to_pointcloud2(amplitude, phase, rig.header("wifi_csi")))
    sample = msg_to_sample("csi", out)
    assert sample.shape == (6, 114, 10)
    assert np.isfinite(sample).all()


def test_csi_rejections_and_node_survives(rig):
    rig.expect_rejection(
        "csi", csi_to_pointcloud2(*csi_frame(shape=(3, 56, 10)), rig.header("w")), "bad_shape"
    )
    rig.expect_rejection(
        "csi", csi_to_pointcloud2(*csi_frame(shape=(1, 114, 10)), rig.header("w")), "bad_shape"
    )
    rig.expect_rejection(
        "csi", make_cloud(person_points(), "velodyne", header=rig.header("w")), "missing_fields"
    )
    rig.expect_sample("csi", csi_to_pointcloud2(*csi_frame(1), rig.header("w")))


def test_diagnostics_report_counts_by_reason(rig):
    rgb = Image(header=rig.header("cam"), height=2, width=2, encoding="bgr8", step=6, data=bytes(12))
    rig.expect_rejection("depth", rgb, "bad_encoding")
    expected = rig.adapters["depth"].accounting.snapshot().rejected["bad_encoding"]

    def depth_status():
        for array in reversed(rig.diagnostics.messages):
            for status in array.status:
                if status.name == "midas_ros/depth_adapter":
                    return {kv.key: kv.value for kv in status.values}
        return None

    assert spin_until(
        rig.executor,
        lambda: (depth_status() or {}).get("rejected/bad_encoding") == str(expected),
        timeout_s=3,
    )
    values = depth_status()
    counts = rig.adapters["depth"].accounting.snapshot()
    assert int(values["processed"]) == counts.processed > 0
    assert int(values["received"]) == counts.received == counts.processed + counts.rejected_total
    assert values["input_topic"] == "/test/raw/depth"
    # Each adapter publishes on its own timer: wait (bounded) until all three have reported.
    expected_names = {"midas_ros/depth_adapter", "midas_ros/lidar_adapter", "midas_ros/csi_adapter"}
    assert spin_until(
        rig.executor,
        lambda: expected_names <= {s.name for a in rig.diagnostics.messages for s in a.status},
        timeout_s=3,
    )


# -- across processes ------------------------------------------------------------------------------------

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, rclpy
    from rclpy.node import Node
    from midas_ros.ros.conversions import array_to_image
    from std_msgs.msg import Header
    from sensor_msgs.msg import Image
    rclpy.init()
    node = Node("xproc_depth_publisher")
    pub = node.create_publisher(Image, sys.argv[1], 5)
    depth = np.full((120, 160), 2500, np.uint16)
    k = 0
    while rclpy.ok() and k < 300:
        k += 1
        h = Header(frame_id="xproc")
        h.stamp.sec = 5000 + k
        pub.publish(array_to_image(depth, h))
        time.sleep(0.05)
    """
)


def test_adapter_receives_from_another_process(context):
    executor = SingleThreadedExecutor(context=context)
    adapter = DepthAdapter(context=context, cli_args=remap("depth", "/xproc/depth", "/xproc/out"))
    probe = Node("xproc_probe", context=context)
    got = Collector(probe, Image, "/xproc/out", RELIABLE)
    for node in (adapter, probe):
        executor.add_node(node)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, "/xproc/depth"], env=env, cwd=REPO_ROOT)
    try:
        assert wait_for_match(executor, adapter._sub, timeout_s=20), "the publisher process never appeared"
        assert spin_until(executor, lambda: len(got.messages) >= 3, timeout_s=10), "nothing across processes"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = got.messages[-1]
    assert out.header.frame_id == "xproc" and out.header.stamp.sec > 5000
    assert np.allclose(msg_to_sample("depth", out), 2.5, atol=1e-3)
    for node in (adapter, probe):
        node.destroy_node()
    executor.shutdown()


def test_main_shuts_down_cleanly_on_sigint():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "midas_ros.ros.csi_adapter", "--ros-args", "-r", "wifi/csi:=/sigint/csi"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with ros_context() as context:
            probe = Node("sigint_probe", context=context)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(probe)
            pub = probe.create_publisher(PointCloud2, "/sigint/csi", RELIABLE)
            assert wait_for_match(executor, pub, timeout_s=20), "the adapter process never subscribed"
            probe.destroy_node()
            executor.shutdown()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output


# -- CSI capture node ------------------------------------------------------------------------------------

needs_csi = pytest.mark.skipif(not CSI_DIR.is_dir(), reason=f"shared CSI captures not found in {CSI_DIR}")


@needs_csi
def test_capture_file_to_csi_topic_and_adapter(rig):
    overrides = [
        Parameter("capture_path", value=str(INTEL)),
        Parameter("rate_hz", value=50.0),
    ]
    node = CsiCaptureNode(
        context=rig.context,
        parameter_overrides=overrides,
        cli_args=["--ros-args", "-r", "wifi/csi:=/test/capture"],
    )
    got = Collector(rig.probe, PointCloud2, "/test/capture", RELIABLE)
    rig.executor.add_node(node)
    try:
        assert wait_for_match(rig.executor, got.subscription)
        assert spin_until(rig.executor, lambda: len(got.messages) >= 5)
    finally:
        rig.executor.remove_node(node)
        node.destroy_node()
    msg = got.messages[0]
    assert (msg.height, msg.width, msg.point_step) == (3, 114, 80)
    assert msg.header.frame_id == "wifi_csi"
    amplitude, _ = pointcloud2_to_csi(msg)
    np.testing.assert_array_equal(amplitude, node.frames[int(node.published - len(got.messages))].amplitude)
    # A captured frame is an ordinary CSI message for the adapter.
    msg.header = rig.header("wifi_csi")
    assert msg_to_sample("csi", rig.expect_sample("csi", msg)).shape == (6, 114, 10)


@needs_csi
def test_capture_live_udp(rig):
    overrides = [
        Parameter("source", value="udp"),
        Parameter("device", value="intel5300"),
        Parameter("udp_port", value=0),
    ]
    node = CsiCaptureNode(
        context=rig.context,
        parameter_overrides=overrides,
        cli_args=["--ros-args", "-r", "wifi/csi:=/test/capture_udp"],
    )
    got = Collector(rig.probe, PointCloud2, "/test/capture_udp", RELIABLE)
    rig.executor.add_node(node)
    # The Intel tool's log: records of a 2-byte big-endian length then the record; send 30 records.
    data, pos, records = INTEL.read_bytes(), 0, []
    while len(records) < 30:
        (n,) = struct.unpack(">H", data[pos : pos + 2])
        records.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    try:
        assert wait_for_match(rig.executor, got.subscription)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"\x00garbage", ("127.0.0.1", node.udp_port))  # ignored, not fatal
            for record in records:
                sock.sendto(record, ("127.0.0.1", node.udp_port))
                time.sleep(0.001)
        assert spin_until(rig.executor, lambda: len(got.messages) >= 3)
    finally:
        rig.executor.remove_node(node)
        node.destroy_node()
    assert len(got.messages) == 3
    amplitude, _ = pointcloud2_to_csi(got.messages[0])
    assert amplitude.shape == (3, 114, 10) and amplitude.max() > 0


@needs_csi
def test_capture_refuses_single_antenna_devices(rig):
    overrides = [Parameter("capture_path", value=str(CSI_DIR / "esp32_example_csi.csv"))]
    with pytest.raises(CsiDeviceError, match=r"esp32 capture has 1 rx antenna\(s\)"):
        CsiCaptureNode(node_name="csi_capture_esp32", context=rig.context, parameter_overrides=overrides)


def test_config_yaml_matches_declared_defaults(rig):
    """config/adapters.yaml holds exactly the declared parameters, with the code's defaults."""
    config = yaml.safe_load((REPO_ROOT / "config" / "adapters.yaml").read_text())
    nodes = [
        DepthAdapter(node_name="depth_defaults", context=rig.context),
        LidarAdapter(node_name="lidar_defaults", context=rig.context),
        CsiAdapter(node_name="csi_defaults", context=rig.context),
    ]
    if INTEL.is_file():  # the capture node needs a capture to start
        override = [Parameter("capture_path", value=str(INTEL))]
        nodes.append(CsiCaptureNode("capture_defaults", context=rig.context, parameter_overrides=override))
    for node, section in zip(
        nodes, ("depth_adapter", "lidar_adapter", "csi_adapter", "csi_capture"), strict=False
    ):
        declared = {p: node.get_parameter(p).value for p in node.declared_parameters}
        if section == "csi_capture":
            declared["capture_path"] = ""
        for p in declared:
            assert node.describe_parameter(p).description, f"{section}.{p} has no description"
        node.destroy_node()
        assert config[section]["ros__parameters"] == declared, section
