"""The adapter nodes and the CSI capture node with real rclpy nodes (one process, and across processes).

Depth and LiDAR inputs are the driver simulator's full-size frames (848 x 480 D435 depth, 64 x 1024
Ouster scans of the MM-Fi rig, midas_ros.sim.drivers); the adapters must give exactly what the
preprocess functions give for the same camera intrinsics and sensor poses.
"""

from __future__ import annotations

import dataclasses
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
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from midas_ros.csi_devices import CsiDeviceError
from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC, DEPTH_NUM_POINTS, SAMPLE_TOPICS, SENSOR_TOPICS
from midas_ros.preprocess import PersonSearch, find_person, preprocess_depth, preprocess_lidar
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose
from midas_ros.ros.adapter import synthetic_person
from midas_ros.ros.conversions import (
    array_to_image,
    csi_to_pointcloud2,
    intrinsics_to_camera_info,
    msg_to_sample,
    pointcloud2_to_csi,
)
from midas_ros.ros.csi_adapter import CsiAdapter
from midas_ros.ros.csi_capture_node import CsiCaptureNode
from midas_ros.ros.depth_adapter import DepthAdapter
from midas_ros.ros.lidar_adapter import LidarAdapter
from midas_ros.ros.samples import OPTICAL_TO_BODY, body_pose_from_optical
from midas_ros.sim.drivers import D435, DriverSimulator

pytestmark = pytest.mark.ros
CSI_DIR = SHARED_DATA / "csi"
INTEL = CSI_DIR / "5300_sample_0x1_ap.dat"
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
context = pytest.fixture(ros_context_fixture)  # a private rclpy context per test


# The simulator's D435 (848 x 480, fx 421) and the MM-Fi rig's poses: camera 1.0 m up, LiDAR 1.3 m up.
D435_K = CameraIntrinsics(*(getattr(D435.intrinsics, f) for f in ("width", "height", "fx", "fy", "cx", "cy")))
CAMERA_POSE, LIDAR_POSE = MMFI_RIG.depth_pose, MMFI_RIG.lidar_pose
BASE_FRAME = "midas_base"


def remap(modality: str, raw: str, sample: str | None = None, camera_info: str | None = None) -> list[str]:
    """Node arguments that remap an adapter's relative input (and output) topic, as a launch file does."""
    rules = ["-r", f"{SENSOR_TOPICS[modality]}:={raw}"]
    if sample is not None:
        rules += ["-r", f"{SAMPLE_TOPICS[modality]}:={sample}"]
    if camera_info is not None:
        rules += ["-r", f"{DEPTH_CAMERA_INFO_TOPIC}:={camera_info}"]
    return ["--ros-args", *rules]


@pytest.fixture(scope="module")
def driver():
    """Frames 0..2 of one subject alone in the hall (E04) as the D435 and a 64 x 1024 Ouster see it."""
    sim = DriverSimulator(subject=40, action=1, num_frames=3)
    return {
        "depth": [sim.depth_frame(f) for f in range(3)],
        "depth_m": [sim.depth_frame_m(f) for f in range(3)],
        "pelvis": sim.joints_in("base")[:, 0],
        "scan": [sim.ouster_scan(f) for f in range(3)],
    }


# modality: (adapter, raw input type, sample type); every sample is a PointCloud2 (depth: the person's points)
ADAPTERS = {
    "depth": (DepthAdapter, Image, PointCloud2),
    "lidar": (LidarAdapter, PointCloud2, PointCloud2),
    "csi": (CsiAdapter, PointCloud2, PointCloud2),
}


class Rig:
    """Three adapters plus a probe node publishing raw messages and collecting samples, one executor."""

    def __init__(self, context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.probe = Node("probe", context=context)
        self.executor.add_node(self.probe)
        self.adapters, self.pubs, self.samples = {}, {}, {}
        for modality, (cls, raw_type, sample_type) in ADAPTERS.items():
            self.adapters[modality] = cls(
                context=context,
                parameter_overrides=[Parameter("diagnostics_period_s", value=0.25)],
                cli_args=remap(
                    modality, f"/test/raw/{modality}", f"/test/sample/{modality}", "/test/raw/depth_info"
                ),
            )
            self.executor.add_node(self.adapters[modality])
            # Depth like a RealSense driver (best effort), the others like a bag player (reliable).
            qos = BEST_EFFORT if modality == "depth" else RELIABLE
            self.pubs[modality] = self.probe.create_publisher(raw_type, f"/test/raw/{modality}", qos)
            self.samples[modality] = Collector(self.probe, sample_type, f"/test/sample/{modality}", RELIABLE)
        # CameraInfo reliable (realsense2_camera's default): the adapter's best-effort subscription connects.
        self.camera_info = self.probe.create_publisher(CameraInfo, "/test/raw/depth_info", RELIABLE)
        self.diagnostics = Collector(self.probe, DiagnosticArray, "/diagnostics")
        for modality in ADAPTERS:
            assert wait_for_match(self.executor, self.pubs[modality]), f"{modality} adapter never subscribed"
            assert wait_for_match(self.executor, self.samples[modality].subscription)
        assert wait_for_match(self.executor, self.camera_info), "the depth adapter never took camera_info"
        self.stamp = 1000
        self.send_camera_info(D435_K)

    def send_camera_info(self, intrinsics: CameraIntrinsics, adapter=None, publisher=None) -> None:
        """Publish a CameraInfo until the depth adapter holds its intrinsics."""
        adapter = adapter or self.adapters["depth"]
        publisher = publisher or self.camera_info
        msg = intrinsics_to_camera_info(intrinsics, Header(frame_id="camera_depth_optical_frame"))

        def arrived() -> bool:
            if adapter.camera_info != intrinsics:
                publisher.publish(msg)  # best effort: resent until it arrives
                return False
            return True

        assert spin_until(self.executor, arrived), "the depth adapter never got its CameraInfo"

    def header(self, frame_id: str) -> Header:
        self.stamp += 1
        h = Header(frame_id=frame_id)
        h.stamp.sec, h.stamp.nanosec = self.stamp, 123_456_789
        return h

    def expect_sample(self, modality: str, msg) -> object:
        """Publish; the adapter's sample with the same stamp arrives, with the base frame's frame_id
        (depth and LiDAR: their points are in the base frame) or the input's (CSI)."""
        got = self.samples[modality].messages
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.pubs[modality].publish(msg)
        match = lambda: [m for m in got if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp]  # noqa: E731
        assert spin_until(self.executor, lambda: bool(match()), timeout_s=10), f"no {modality} sample {stamp}"
        out = match()[0]
        assert out.header.frame_id == (BASE_FRAME if modality in ("depth", "lidar") else msg.header.frame_id)
        return out

    def expect_rejection(self, modality: str, msg, reason: str) -> None:
        accounting = self.adapters[modality].accounting
        before = accounting.snapshot()
        self.pubs[modality].publish(msg)
        assert spin_until(
            self.executor,
            lambda: accounting.snapshot().rejected.get(reason, 0) > before.rejected.get(reason, 0),
            timeout_s=10,
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


def person_points(n: int = 800, seed: int = 0) -> np.ndarray:
    """A person-sized blob 3 m ahead of the LiDAR, from 0.1 to 1.7 m above the floor (LiDAR frame)."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.normal(3.0, 0.1, n), rng.normal(0.0, 0.2, n), rng.uniform(-1.2, 0.4, n)]
    ).astype(np.float32)


def csi_frame(seed: int = 0, shape=(3, 114, 10)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(1, 20, shape).astype(np.float32), rng.uniform(-np.pi, np.pi, shape).astype(np.float32)


# -- depth -----------------------------------------------------------------------------------------------


def test_depth_d435_frame_is_preprocess_depth_with_its_camera_info(rig, driver):
    """(a) An 848 x 480 D435 frame + its CameraInfo: exactly preprocess_depth with those intrinsics and
    the camera_pose parameter's default pose (the MM-Fi rig: 1.0 m up, level)."""
    assert rig.adapters["depth"].camera_info == D435_K
    for frame in range(2):
        expected = preprocess_depth(driver["depth"][frame], D435_K, CAMERA_POSE)
        assert np.linalg.norm(expected[:, :2].mean(axis=0) - driver["pelvis"][frame, :2]) < 0.3  # the person
        out = rig.expect_sample("depth", array_to_image(driver["depth"][frame], rig.header("cam_optical")))
        assert isinstance(out, PointCloud2) and (out.height, out.width) == (1, DEPTH_NUM_POINTS)
        assert [f.name for f in out.fields] == ["x", "y", "z"]
        np.testing.assert_array_equal(msg_to_sample("depth", out), expected)
        # The same frame as 32FC1 metres (NaN = invalid) gives the same sample.
        out = rig.expect_sample("depth", array_to_image(driver["depth_m"][frame], rig.header("cam_optical")))
        np.testing.assert_allclose(msg_to_sample("depth", out), expected, atol=1e-6)


def test_depth_adapter_on_a_high_camera_gives_the_simulators_input_for_the_same_scene(rig):
    """A D435 at 848 x 480 mounted 1.8 m up, looking 20 deg down, with its CameraInfo and the
    camera_pose parameter: the adapter's sample is preprocess_depth with that pose, and it agrees with
    the input the simulator's training data holds for the same scene (MM-Fi's 640 x 480 camera, 1.0 m
    up, level) within test_rigs.py's tolerance (mean nearest-neighbour distance < 2.5 cm, centroids
    within 3 cm on the floor plane and 6 cm in all; measured 1.5 cm, and 1.9 cm / 3.8 cm)."""
    from midas_ros.sim.generate import simulate_sequence

    high = Pose(z=1.8, pitch=np.deg2rad(20))
    camera = DriverSimulator(40, 1, 2, rig=dataclasses.replace(MMFI_RIG, depth_pose=high), placement=Pose())
    training = simulate_sequence(40, 1, 2, rig=MMFI_RIG)
    adapter = DepthAdapter(
        node_name="depth_high",
        context=rig.context,
        parameter_overrides=[Parameter("camera_pose", value=high.as_list())],
        cli_args=remap("depth", "/hi/raw", "/hi/out", "/hi/info"),
    )
    raw = rig.probe.create_publisher(Image, "/hi/raw", RELIABLE)
    info = rig.probe.create_publisher(CameraInfo, "/hi/info", RELIABLE)
    got = Collector(rig.probe, PointCloud2, "/hi/out", RELIABLE)
    rig.executor.add_node(adapter)
    try:
        assert wait_for_match(rig.executor, raw) and wait_for_match(rig.executor, got.subscription)
        rig.send_camera_info(D435_K, adapter=adapter, publisher=info)
        for frame in range(2):
            image = camera.depth_frame(frame)
            raw.publish(array_to_image(image, rig.header("cam_optical")))
            assert spin_until(rig.executor, lambda n=frame + 1: len(got.messages) == n)
            sample = msg_to_sample("depth", got.messages[frame])
            assert got.messages[frame].header.frame_id == BASE_FRAME
            np.testing.assert_array_equal(sample, preprocess_depth(image, D435_K, high))
            mmfi_k, mmfi_pose = MMFI_RIG.depth_intrinsics, MMFI_RIG.depth_pose
            mmfi = preprocess_depth(training.depth_mm[frame], mmfi_k, mmfi_pose)
            a, b = np.unique(sample, axis=0), np.unique(mmfi, axis=0)
            chamfer = (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2
            shift = a.mean(axis=0) - b.mean(axis=0)
            assert chamfer < 0.025 and np.linalg.norm(shift[:2]) < 0.03 and np.linalg.norm(shift) < 0.06
    finally:
        rig.executor.remove_node(adapter)
        adapter.destroy_node()


def test_depth_camera_info_size_mismatch_is_rejected(rig, driver):
    """(d) An image whose size is not its CameraInfo's is rejected, counted as camera_info_mismatch."""
    wrong = driver["depth"][0][:, :640]  # 640 x 480 against the D435's 848 x 480 CameraInfo
    rig.expect_rejection("depth", array_to_image(wrong, rig.header("cam")), "camera_info_mismatch")
    rig.expect_sample("depth", array_to_image(driver["depth"][0], rig.header("cam")))  # still alive


def test_depth_rejections_and_node_survives(rig, driver):
    h = rig.header("cam")
    rgb = Image(header=h, height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    rig.expect_rejection("depth", rgb, "bad_encoding")
    bad_step = array_to_image(np.zeros((8, 8), np.uint16), rig.header("cam"))
    bad_step.step = 10
    rig.expect_rejection("depth", bad_step, "bad_step")
    rig.expect_rejection("depth", Image(header=rig.header("cam"), encoding="16UC1"), "empty")
    zeros = np.zeros((D435_K.height, D435_K.width), np.uint16)
    rig.expect_rejection("depth", array_to_image(zeros, rig.header("c")), "no_valid_pixels")
    wall = np.full_like(zeros, 4000)  # a wall 4 m ahead: nothing shaped like a person
    rig.expect_rejection("depth", array_to_image(wall, rig.header("c")), "no_person")
    rig.expect_sample("depth", array_to_image(driver["depth"][1], rig.header("cam")))  # still alive


def test_depth_without_camera_info_then_parameter_fallback(rig, driver):
    """(b) Frames before any intrinsics are rejected as no_camera_info; camera_info_k stands in for a
    driver without camera_info; a CameraInfo that comes later takes over."""
    overrides = [
        Parameter(
            "camera_info_k", value=[D435_K.fx, 0.0, D435_K.cx, 0.0, D435_K.fy, D435_K.cy, 0.0, 0.0, 1.0]
        ),
        Parameter("camera_info_width", value=D435_K.width),
        Parameter("camera_info_height", value=D435_K.height),
    ]
    bare = DepthAdapter(
        node_name="depth_bare", context=rig.context, cli_args=remap("depth", "/nk/raw", "/nk/out", "/nk/info")
    )
    fallback = DepthAdapter(
        node_name="depth_fallback",
        context=rig.context,
        parameter_overrides=overrides,
        cli_args=remap("depth", "/fb/raw", "/fb/out", "/fb/info"),
    )
    probe = rig.probe
    raw = {name: probe.create_publisher(Image, f"/{name}/raw", RELIABLE) for name in ("nk", "fb")}
    info = probe.create_publisher(CameraInfo, "/nk/info", RELIABLE)
    got = {name: Collector(probe, PointCloud2, f"/{name}/out", RELIABLE) for name in ("nk", "fb")}
    for node in (bare, fallback):
        rig.executor.add_node(node)
    try:
        for name in ("nk", "fb"):
            assert wait_for_match(rig.executor, raw[name]) and wait_for_match(
                rig.executor, got[name].subscription
            )
        assert bare.intrinsics() is None and fallback.intrinsics() == D435_K
        frame = driver["depth"][0]
        expected = preprocess_depth(frame, D435_K, CAMERA_POSE)

        raw["nk"].publish(array_to_image(frame, rig.header("cam")))
        assert spin_until(
            rig.executor, lambda: bare.accounting.snapshot().rejected.get("no_camera_info") == 1
        )
        assert bare.accounting.snapshot().processed == 0 and got["nk"].messages == []

        raw["fb"].publish(array_to_image(frame, rig.header("cam")))
        assert spin_until(rig.executor, lambda: len(got["fb"].messages) == 1)
        np.testing.assert_array_equal(msg_to_sample("depth", got["fb"].messages[0]), expected)

        # An uncalibrated CameraInfo (K all zero) is ignored; a calibrated one is taken.
        uncalibrated = intrinsics_to_camera_info(D435_K)
        uncalibrated.k = [0.0] * 9
        assert spin_until(
            rig.executor, lambda: info.publish(uncalibrated) or bool(bare.sampler.camera_info_problem)
        ), "the uncalibrated CameraInfo never arrived"
        assert bare.intrinsics() is None
        rig.send_camera_info(D435_K, adapter=bare, publisher=info)
        raw["nk"].publish(array_to_image(frame, rig.header("cam")))
        assert spin_until(rig.executor, lambda: len(got["nk"].messages) == 1)
        np.testing.assert_array_equal(msg_to_sample("depth", got["nk"].messages[0]), expected)
    finally:
        for node in (bare, fallback):
            rig.executor.remove_node(node)
            node.destroy_node()


def test_body_pose_from_optical_frame():
    """TF gives the optical frame's pose (z forward, x right, y down); the camera_pose is camera_link's."""
    level = body_pose_from_optical((0.0, 0.0, 1.0), (-0.5, 0.5, -0.5, 0.5))  # the demo's static transform
    np.testing.assert_allclose(level.as_list(), [0, 0, 1.0, 0, 0, 0], atol=1e-12)
    tilted = Pose(0.1, -0.2, 2.2, 0.05, 0.4, -0.1)
    r_optical = tilted.rotation() @ OPTICAL_TO_BODY  # optical coordinates -> base
    quaternion = Rotation.from_matrix(r_optical).as_quat()
    np.testing.assert_allclose(
        body_pose_from_optical(tilted.translation, quaternion).as_list(), tilted.as_list()
    )
    # A point 3 m along the optical axis, 0.5 m right and 0.2 m down in the image: the same base point.
    optical = np.array([0.5, 0.2, 3.0])
    np.testing.assert_allclose(
        r_optical @ optical + tilted.translation, tilted.to_base(OPTICAL_TO_BODY @ optical)
    )


# -- LiDAR -----------------------------------------------------------------------------------------------


def test_lidar_ouster_scan_is_preprocess_lidar_with_its_pose(rig, driver):
    """(c) A full 64 x 1024 Ouster scan: exactly preprocess_lidar with the lidar_pose parameter's default
    (the MM-Fi rig's LiDAR, 1.3 m up), in the base frame."""
    for frame in range(2):
        scan = driver["scan"][frame]
        expected = preprocess_lidar(scan, LIDAR_POSE)
        out = rig.expect_sample("lidar", make_cloud(scan, "ouster", header=rig.header("os_lidar")))
        np.testing.assert_array_equal(msg_to_sample("lidar", out), expected)
        assert expected[:, 2].min() > 0.0 and expected[:, 2].max() < 2.0  # base frame: above the floor


def test_lidar_pose_parameter(rig, driver):
    """(c) A LiDAR mounted elsewhere (2 m up, pitched down, turned, off to the side): with its lidar_pose
    the adapter gives preprocess_lidar with that pose, the same person as the MM-Fi rig's LiDAR sees."""
    pose = Pose(0.4, -0.3, 2.0, 0.02, 0.25, 0.15)
    scan = driver["scan"][0]
    returns = (scan != 0).any(axis=-1)
    moved = np.zeros_like(scan)  # the same returns, in the moved LiDAR's frame; no-returns stay (0, 0, 0)
    moved[returns] = pose.from_base(LIDAR_POSE.to_base(scan[returns])).astype(np.float32)
    node = LidarAdapter(
        node_name="lidar_moved",
        context=rig.context,
        parameter_overrides=[Parameter("lidar_pose", value=pose.as_list())],
        cli_args=remap("lidar", "/moved/raw", "/moved/out"),
    )
    pub = rig.probe.create_publisher(PointCloud2, "/moved/raw", RELIABLE)
    got = Collector(rig.probe, PointCloud2, "/moved/out", RELIABLE)
    rig.executor.add_node(node)
    try:
        assert node.sensor_pose.pose == pose
        assert wait_for_match(rig.executor, pub) and wait_for_match(rig.executor, got.subscription)
        pub.publish(make_cloud(moved, "ouster", header=rig.header("os_lidar_moved")))
        assert spin_until(rig.executor, lambda: len(got.messages) == 1, timeout_s=10)
    finally:
        rig.executor.remove_node(node)
        node.destroy_node()
    out = msg_to_sample("lidar", got.messages[0])
    assert got.messages[0].header.frame_id == BASE_FRAME
    np.testing.assert_array_equal(out, preprocess_lidar(moved, pose))
    # The same person as from the MM-Fi rig's LiDAR (float32 rounding moves a few grid cells).
    reference = preprocess_lidar(scan, LIDAR_POSE)
    np.testing.assert_allclose(out.mean(axis=0), reference.mean(axis=0), atol=0.02)


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
    # Every output point is a person point (no zeros, NaNs or invented points), in the base frame.
    in_base = LIDAR_POSE.to_base(person)
    assert np.abs(points.mean(axis=0) - in_base.mean(axis=0)).max() < 0.15
    assert points[:, 0].min() > 2.4


def test_lidar_rejections_and_node_survives(rig):
    rig.expect_rejection(
        "lidar", make_cloud(person_points(5), "velodyne", header=rig.header("l")), "no_person"
    )
    nan_only = np.full((100, 3), np.nan, np.float32)
    rig.expect_rejection("lidar", make_cloud(nan_only, "livox", header=rig.header("l")), "non_finite")
    no_z = make_cloud(person_points(), "velodyne", header=rig.header("l"))
    no_z.fields = [f for f in no_z.fields if f.name != "z"]
    rig.expect_rejection("lidar", no_z, "missing_fields")
    rig.expect_rejection("lidar", PointCloud2(header=rig.header("l")), "empty")
    rig.expect_sample("lidar", make_cloud(person_points(), "velodyne", header=rig.header("l")))


def test_warm_up_box_is_a_person():
    """The warm-up's synthetic person passes the person search, wherever the region and the LiDAR are."""
    for search in (PersonSearch(), PersonSearch(x_min=3.0, x_max=4.0, y_min=1.0, y_max=2.5)):
        box = synthetic_person(search)
        person = find_person(box, search)
        assert search.contains(person.centroid[None]).all()
        pose = Pose(0.2, 0.1, 2.4, 0.0, 0.5, -0.3)
        assert preprocess_lidar(pose.from_base(box), pose, search=search).shape == (512, 3)


def test_pose_and_search_parameters_take_integers(rig):
    """`-p lidar_pose:="[0, 0, 2, 0, 0, 0]"` (an integer array) and `search_x_max: 4` work."""
    overrides = [Parameter("lidar_pose", value=[0, 0, 2, 0, 0, 0]), Parameter("search_x_max", value=4)]
    node = LidarAdapter(node_name="lidar_ints", context=rig.context, parameter_overrides=overrides)
    try:
        assert node.sensor_pose.pose == Pose(z=2.0)
        assert node.sampler.search == PersonSearch(x_max=4.0)
    finally:
        node.destroy_node()


def test_use_tf_without_tf2_ros_keeps_the_parameter(rig):
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tf2_ros is installed: use_tf looks up TF")
    overrides = [
        Parameter("use_tf", value=True),
        Parameter("lidar_pose", value=[0.0, 0.0, 1.8, 0.0, 0.1, 0.0]),
    ]
    node = LidarAdapter(node_name="lidar_tf", context=rig.context, parameter_overrides=overrides)
    try:
        assert not node.sensor_pose.uses_tf
        assert node.sensor_pose.pose_of("os_lidar") == Pose(z=1.8, pitch=0.1)
    finally:
        node.destroy_node()


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
    assert values["intrinsics"].startswith("848x480 fx 421.00") and "(camera_info)" in values["intrinsics"]
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
    from midas_ros.ros.conversions import array_to_image, intrinsics_to_camera_info
    from midas_ros.rig import CameraIntrinsics
    from std_msgs.msg import Header
    from sensor_msgs.msg import CameraInfo, Image
    rclpy.init()
    node = Node("xproc_depth_publisher")
    pub = node.create_publisher(Image, sys.argv[1], 5)
    info = node.create_publisher(CameraInfo, sys.argv[2], 5)
    k = 0
    while rclpy.ok() and k < 300:
        k += 1
        h = Header(frame_id="xproc")
        h.stamp.sec = 5000 + k
        info.publish(intrinsics_to_camera_info(CameraIntrinsics(*XPROC_CAMERA), h))
        pub.publish(array_to_image(np.asarray(XPROC_DEPTH, np.uint16), h))
        time.sleep(0.05)
    """
)
# A 160 x 120 camera 1.0 m up; a person-sized board 2.5 m ahead: 0.4 m wide, from the floor to 1.7 m.
XPROC_CAMERA = (160, 120, 100.0, 100.0, 79.5, 59.5)
XPROC_DEPTH = np.zeros((120, 160), np.uint16)
XPROC_DEPTH[32:100, 72:88] = 2500


def test_adapter_receives_from_another_process(context):
    """Image and CameraInfo from another process (reliable, as a driver's default), best-effort here."""
    executor = SingleThreadedExecutor(context=context)
    adapter = DepthAdapter(
        context=context, cli_args=remap("depth", "/xproc/depth", "/xproc/out", "/xproc/camera_info")
    )
    probe = Node("xproc_probe", context=context)
    got = Collector(probe, PointCloud2, "/xproc/out", RELIABLE)
    for node in (adapter, probe):
        executor.add_node(node)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    script = f"XPROC_CAMERA = {XPROC_CAMERA!r}\nXPROC_DEPTH = {XPROC_DEPTH.tolist()!r}\n{PUBLISHER}"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "/xproc/depth", "/xproc/camera_info"], env=env, cwd=REPO_ROOT
    )
    try:
        assert wait_for_match(executor, adapter._sub, timeout_s=20), "the publisher process never appeared"
        assert spin_until(executor, lambda: len(got.messages) >= 3, timeout_s=20), "nothing across processes"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = got.messages[-1]
    assert out.header.frame_id == BASE_FRAME and out.header.stamp.sec > 5000
    camera = CameraIntrinsics(*XPROC_CAMERA)
    assert adapter.camera_info == camera
    expected = preprocess_depth(XPROC_DEPTH, camera, CAMERA_POSE)
    # the board's points: 2.5 m ahead, 0.4 m wide, from the floor cut up to 1.7 m
    np.testing.assert_allclose(expected[:, 0], 2.5, atol=1e-3)
    assert np.abs(expected[:, 1]).max() < 0.2 + 0.02 and expected[:, 2].max() < 1.7 + 0.03
    assert len(np.unique(expected, axis=0)) > 100
    np.testing.assert_array_equal(msg_to_sample("depth", out), expected)
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
