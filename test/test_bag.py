"""Bags: rosbags bytes read back with rclpy, the demo bag's content and dropouts, the bag player."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from ros_utils import wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from midas_ros.ros import bag  # noqa: E402
from midas_ros.ros.bag_player import BagPlayer  # noqa: E402
from midas_ros.ros.conversions import image_to_array, pointcloud2_to_csi, pointcloud2_to_xyz, stamp_to_ns  # noqa: E402
from midas_ros.sim.sensors import LIDAR_RINGS  # noqa: E402

NS = 1_000_000_000
RNG = np.random.default_rng(1)


def test_rosbags_bytes_deserialize_with_rclpy(tmp_path: Path) -> None:
    depth = RNG.integers(0, 5000, (48, 64), dtype=np.uint16)
    points = RNG.normal([3.0, 0.0, -0.3], 0.3, (200, 3))
    amplitude = RNG.random((3, 114, 10)).astype(np.float32)
    phase = RNG.uniform(-np.pi, np.pi, (3, 114, 10)).astype(np.float32)
    joints = RNG.normal(0.0, 1.0, (17, 3))
    stamp = 1_700_000_000 * NS + 123_456_789
    messages = {
        "/depth": bag.depth_image_msg(depth, stamp),
        "/lidar": bag.ouster_cloud_msg(points, stamp),
        "/csi": bag.csi_cloud_msg(amplitude, phase, stamp),
        "/gt": bag.pose_array_msg(joints, stamp),
    }
    path = tmp_path / "roundtrip"
    with bag.open_writer(path) as writer:
        for topic, msg in messages.items():
            conn = writer.add_connection(topic, msg.__msgtype__, typestore=bag.TYPESTORE)
            writer.write(conn, stamp, bag.TYPESTORE.serialize_cdr(msg, msg.__msgtype__))

    read = {m.topic: m for m in bag.read_messages(path)}
    assert set(read) == set(messages)
    image = deserialize_message(read["/depth"].rawdata, Image)
    assert (image.encoding, image.height, image.width, image.step) == ("16UC1", 48, 64, 128)
    assert image.header.frame_id == "camera_depth_optical_frame"
    assert stamp_to_ns(image.header.stamp) == stamp
    np.testing.assert_array_equal(image_to_array(image), depth)

    cloud = deserialize_message(read["/lidar"].rawdata, PointCloud2)
    assert cloud.point_step == 48 and [f.name for f in cloud.fields][:3] == ["x", "y", "z"]
    np.testing.assert_allclose(pointcloud2_to_xyz(cloud), points, atol=1e-6)
    rings = np.frombuffer(bytes(cloud.data), dtype=bag.OUSTER_DTYPE)["ring"]
    assert rings.min() >= 0 and rings.max() < LIDAR_RINGS

    csi = deserialize_message(read["/csi"].rawdata, PointCloud2)
    got_amplitude, got_phase = pointcloud2_to_csi(csi)
    np.testing.assert_array_equal(got_amplitude, amplitude)
    np.testing.assert_array_equal(got_phase, phase)

    poses = deserialize_message(read["/gt"].rawdata, PoseArray)
    got = np.array([[p.position.x, p.position.y, p.position.z] for p in poses.poses])
    np.testing.assert_allclose(got, joints)
    stamps, gt = bag.read_pose_arrays(path, "/gt")
    assert stamps.tolist() == [stamp] and np.allclose(gt[0], joints)


def test_writer_refuses_existing_path(tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        bag.open_writer(tmp_path)


def test_dropout_schedule_covers_every_sensor() -> None:
    schedule = bag.default_dropout_schedule(40.0)
    for modality in ("depth", "lidar", "csi"):
        outages = [o for o in schedule if o.modality == modality]
        assert outages and all(0 < o.start_s < o.end_s < 40.0 for o in outages)  # goes and comes back
    two_down = [
        t
        for t in np.arange(0, 40, 0.1)
        if sum(not bag.is_alive(schedule, m, t) for m in ["depth", "lidar", "csi"]) == 2
    ]
    assert len(two_down) >= 20


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory: pytest.TempPathFactory) -> bag.DemoBagInfo:
    return bag.write_demo_bag(tmp_path_factory.mktemp("demo") / "bag", actions=(14, 26), frames_per_action=15)


def test_demo_bag_holds_sensors_ground_truth_and_dropouts(demo_bag: bag.DemoBagInfo) -> None:
    topics = bag.bag_topics(demo_bag.path)
    assert topics[bag.DEMO_TOPICS["depth"]] == "sensor_msgs/msg/Image"
    assert topics[bag.GROUND_TRUTH_TOPIC] == "geometry_msgs/msg/PoseArray"
    assert topics[bag.TF_STATIC_TOPIC] == "tf2_msgs/msg/TFMessage"
    stamps, joints = bag.read_pose_arrays(demo_bag.path)
    assert joints.shape == (30, 17, 3) and np.all(np.diff(stamps) == NS // 10)
    counts = demo_bag.message_counts
    for modality, topic in bag.DEMO_TOPICS.items():
        alive = sum(bag.is_alive(demo_bag.schedule, modality, k / 10) for k in range(30))
        assert counts[topic] == alive < 30  # silent exactly during its outages
    log_times = [m.timestamp_ns for m in bag.read_messages(demo_bag.path)]
    assert log_times == sorted(log_times)
    first_depth = next(bag.read_messages(demo_bag.path, [bag.DEMO_TOPICS["depth"]]))
    image = deserialize_message(first_depth.rawdata, Image)
    assert (image.encoding, image.width, image.height) == ("16UC1", 640, 480)
    assert image_to_array(image).max() > 0


def test_player_replays_with_timing_and_clock(demo_bag: bag.DemoBagInfo) -> None:
    rclpy.init()
    try:
        rate = 3.0
        player = BagPlayer(
            parameter_overrides=[
                Parameter("bag", value=str(demo_bag.path)),
                Parameter("rate", value=rate),
                Parameter("autostart", value=False),
                Parameter("loop", value=True),
            ]
        )
        listener = Node("player_listener")
        got: list[tuple[float, int]] = []
        clocks: list[int] = []
        listener.create_subscription(
            PoseArray,
            bag.GROUND_TRUTH_TOPIC,
            lambda m: got.append((time.monotonic(), stamp_to_ns(m.header.stamp))),
            50,
        )
        listener.create_subscription(Clock, "/clock", lambda m: clocks.append(stamp_to_ns(m.clock)), 50)
        executor = SingleThreadedExecutor()
        executor.add_node(player)
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        wait_until(lambda: player.subscriber_counts()[bag.GROUND_TRUTH_TOPIC] >= 1, timeout_s=10)
        player.start()
        wait_until(lambda: player.loops >= 2, timeout_s=20)
        player.stop()
        executor.shutdown(timeout_sec=2.0)
        player.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.try_shutdown()

    assert player.loops >= 2
    stamps = [s for _, s in got]
    first_pass = stamps[: stamps.index(stamps[0], 1)] if stamps.count(stamps[0]) > 1 else stamps
    assert len(first_pass) >= 28  # (almost) every ground-truth message of the first pass
    # Timing: 30 frames of 0.1 s played 3x faster take about 1 s of wall time.
    walls = [w for w, _ in got[: len(first_pass)]]
    assert (walls[-1] - walls[0]) == pytest.approx(
        (stamps[len(first_pass) - 1] - stamps[0]) / NS / rate, abs=0.25
    )
    # /clock follows the bag time and jumps back when the bag loops.
    assert min(clocks) >= demo_bag.start_ns - NS and max(clocks) <= demo_bag.start_ns + 4 * NS
    assert any(b < a for a, b in itertools.pairwise(clocks))
