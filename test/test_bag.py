"""Bags: the runtime's rclpy messages through bag_io and back via rosbags, the demo bag, the bag player."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_utils import wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from midas_ros.demo import scenario  # noqa: E402
from midas_ros.demo.cloud_layouts import OUSTER_DTYPE, driver_cloud, driver_points  # noqa: E402
from midas_ros.interfaces import DIAGNOSTICS_TOPIC, GROUND_TRUTH_TOPIC, SENSOR_TOPICS  # noqa: E402
from midas_ros.rig import BASE_FRAME  # noqa: E402
from midas_ros.ros import bag_io  # noqa: E402
from midas_ros.ros.bag_player import BagPlayer  # noqa: E402
from midas_ros.ros.conversions import (  # noqa: E402
    array_to_image,
    csi_to_pointcloud2,
    image_to_array,
    pointcloud2_to_csi,
    pointcloud2_to_xyz,
    stamp_to_ns,
)
from midas_ros.ros.markers import pose_array  # noqa: E402
from midas_ros.sim.rigs import rig_by_name  # noqa: E402
from midas_ros.train.recipe import PRESETS  # noqa: E402

NS = 1_000_000_000
RNG = np.random.default_rng(1)
STAMP_NS = 1_700_000_000 * NS + 123_456_789


def _header(frame_id: str) -> Header:
    return Header(stamp=Time(sec=STAMP_NS // NS, nanosec=STAMP_NS % NS), frame_id=frame_id)


def test_resolved_topic_and_msgtype_name() -> None:
    assert bag_io.resolved_topic(SENSOR_TOPICS["depth"]) == "/" + SENSOR_TOPICS["depth"]
    assert bag_io.resolved_topic(DIAGNOSTICS_TOPIC) == DIAGNOSTICS_TOPIC  # already absolute
    assert bag_io.msgtype_name(PointCloud2) == "sensor_msgs/msg/PointCloud2"


def test_runtime_messages_roundtrip_through_bag_io_and_rosbags(tmp_path: Path) -> None:
    """rclpy builders -> serialize_message -> bag_io -> rosbags -> the same duck-typed parsers."""
    depth = RNG.integers(0, 5000, (48, 64), dtype=np.uint16)
    scan = RNG.normal([3.0, 0.0, -0.3], 0.3, (8, 32, 3)).astype(np.float32)
    scan[::3, ::4] = 0.0  # no return
    amplitude = RNG.random((3, 114, 10)).astype(np.float32)
    phase = RNG.uniform(-np.pi, np.pi, (3, 114, 10)).astype(np.float32)
    joints = RNG.normal(0.0, 1.0, (17, 3))
    depth_topic, lidar_topic, csi_topic = (scenario.BAG_SENSOR_TOPICS[m] for m in ("depth", "lidar", "csi"))
    gt_topic = scenario.BAG_GROUND_TRUTH_TOPIC
    messages = {
        depth_topic: array_to_image(depth, _header("camera_depth_optical_frame")),
        lidar_topic: driver_cloud(scan, "ouster", header=_header("os_lidar")),
        csi_topic: csi_to_pointcloud2(amplitude, phase, _header("wifi_csi")),
        gt_topic: pose_array(joints, frame_id="midas_room", stamp=_header("").stamp),
    }
    path = tmp_path / "roundtrip"
    topics = {topic: bag_io.msgtype_name(type(msg)) for topic, msg in messages.items()}
    with bag_io.BagRecorder(path, topics) as recorder:
        for topic, msg in messages.items():
            recorder.write(topic, STAMP_NS, serialize_message(msg))
    assert recorder.counts == dict.fromkeys(messages, 1)

    read = {m.topic: m for m in bag_io.read_messages(path)}
    assert bag_io.bag_topics(path) == topics and set(read) == set(messages)
    for topic, message in read.items():
        assert message.timestamp_ns == STAMP_NS
        # Both message systems read and write the same CDR (padding bytes aside, which rclpy leaves as
        # they were in its buffer): rclpy reads back the original, and rosbags' re-serialisation too.
        original = messages[topic]
        assert deserialize_message(message.rawdata, type(original)) == original
        again = bag_io.TYPESTORE.serialize_cdr(message.deserialize(), message.msgtype)
        assert deserialize_message(bytes(again), type(original)) == original

    image = read[depth_topic].deserialize()
    assert (image.encoding, image.height, image.width, image.step) == ("16UC1", 48, 64, 128)
    assert image.header.frame_id == "camera_depth_optical_frame"
    assert stamp_to_ns(image.header.stamp) == STAMP_NS
    np.testing.assert_array_equal(image_to_array(image), depth)

    cloud = read[lidar_topic].deserialize()
    assert (cloud.height, cloud.width, cloud.point_step) == (8, 32, 48)
    expected = scan.reshape(-1, 3)
    np.testing.assert_array_equal(pointcloud2_to_xyz(cloud), expected[(expected != 0).any(axis=1)])
    stored = np.frombuffer(bytes(cloud.data), dtype=OUSTER_DTYPE).reshape(8, 32)
    np.testing.assert_array_equal(stored, driver_points(scan, "ouster", stamp_ns=STAMP_NS))

    got_amplitude, got_phase = pointcloud2_to_csi(read[csi_topic].deserialize())
    np.testing.assert_array_equal(got_amplitude, amplitude)
    np.testing.assert_array_equal(got_phase, phase)

    stamps, gt = bag_io.read_pose_arrays(path, gt_topic)
    assert stamps.tolist() == [STAMP_NS]
    np.testing.assert_allclose(gt[0], joints)
    # The bag player publishes the stored bytes: rclpy reads them back as they were.
    back = deserialize_message(read[csi_topic].rawdata, PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_csi(back)[0], amplitude)


def test_writer_refuses_existing_path_and_keeps_custom_data(tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        bag_io.open_writer(tmp_path)
    path = tmp_path / "custom"
    topic = scenario.BAG_GROUND_TRUTH_TOPIC
    with bag_io.BagRecorder(path, {topic: "geometry_msgs/msg/PoseArray"}, custom_data={"k": "v"}) as recorder:
        recorder.set_custom_data("late", "1")
    assert bag_io.bag_custom_data(path) == {"k": "v", "late": "1"}
    recorder.write(topic, 0, b"")  # ignored once closed
    with pytest.raises(RuntimeError):
        recorder.set_custom_data("k", "w")


def test_dropout_schedule_covers_every_sensor() -> None:
    schedule = scenario.default_dropout_schedule(40.0)
    for modality in ("depth", "lidar", "csi"):
        outages = [o for o in schedule if o.modality == modality]
        assert outages and all(0 < o.start_s < o.end_s < 40.0 for o in outages)  # goes and comes back
    two_down = [
        t
        for t in np.arange(0, 40, 0.1)
        if sum(not scenario.is_alive(schedule, m, t) for m in ["depth", "lidar", "csi"]) == 2
    ]
    assert len(two_down) >= 20


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory: pytest.TempPathFactory) -> scenario.DemoBagInfo:
    path = tmp_path_factory.mktemp("demo") / "bag"
    return scenario.write_demo_bag(path, actions=(14, 26), frames_per_action=15)


def test_demo_bag_holds_sensors_ground_truth_and_dropouts(demo_bag: scenario.DemoBagInfo) -> None:
    topics = bag_io.bag_topics(demo_bag.path)
    assert topics == scenario.BAG_TOPICS
    assert topics["/" + SENSOR_TOPICS["depth"]] == "sensor_msgs/msg/Image"
    assert topics["/" + GROUND_TRUTH_TOPIC] == "geometry_msgs/msg/PoseArray"
    assert not demo_bag.path.with_name("bag.partial").exists()
    assert scenario.read_demo_bag_info(demo_bag.path) == demo_bag
    stamps, joints = bag_io.read_pose_arrays(demo_bag.path, scenario.BAG_GROUND_TRUTH_TOPIC)
    assert joints.shape == (30, 17, 3) and np.all(np.diff(stamps) == NS // 10)
    counts = demo_bag.message_counts
    assert counts[scenario.BAG_GROUND_TRUTH_TOPIC] == 30 and counts[scenario.TF_STATIC_TOPIC] == 1
    for modality, topic in scenario.BAG_SENSOR_TOPICS.items():
        alive = sum(scenario.is_alive(demo_bag.schedule, modality, k / 10) for k in range(30))
        assert counts[topic] == alive < 30  # silent exactly during its outages
    log_times = [m.timestamp_ns for m in bag_io.read_messages(demo_bag.path)]
    assert log_times == sorted(log_times)

    first = {
        m: next(bag_io.read_messages(demo_bag.path, [t])).deserialize()
        for m, t in scenario.BAG_SENSOR_TOPICS.items()
    }
    rig = rig_by_name(demo_bag.rig)
    assert rig.id in PRESETS["wide"].held_out_rigs  # the demo's sensors were never trained on
    k = rig.depth_intrinsics
    assert (first["depth"].encoding, first["depth"].width, first["depth"].height) == (
        "16UC1",
        k.width,
        k.height,
    )
    assert image_to_array(first["depth"]).max() > 0
    info = next(bag_io.read_messages(demo_bag.path, [scenario.BAG_CAMERA_INFO_TOPIC])).deserialize()
    assert (info.width, info.height, tuple(info.k)) == (
        k.width,
        k.height,
        (k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1),
    )
    assert counts[scenario.BAG_CAMERA_INFO_TOPIC] == counts[scenario.BAG_SENSOR_TOPICS["depth"]]
    assert first["lidar"].point_step == OUSTER_DTYPE.itemsize and len(pointcloud2_to_xyz(first["lidar"])) > 50
    assert pointcloud2_to_csi(first["csi"])[0].shape == (3, 114, 10)
    for modality, msg in first.items():
        assert msg.header.frame_id == scenario.FRAME_IDS[modality]
    tf = next(bag_io.read_messages(demo_bag.path, [scenario.TF_STATIC_TOPIC])).deserialize()
    assert {t.child_frame_id for t in tf.transforms} == set(scenario.FRAME_IDS.values())
    assert {t.header.frame_id for t in tf.transforms} == {BASE_FRAME}
    lidar = next(t for t in tf.transforms if t.child_frame_id == scenario.FRAME_IDS["lidar"])
    assert lidar.transform.translation.z == pytest.approx(rig.lidar_pose.z)


def test_interrupted_demo_bag_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = itertools.count()
    real = scenario.sensor_message

    def interrupted(*args: object) -> object:
        if next(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(scenario, "sensor_message", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scenario.write_demo_bag(tmp_path / "bag", actions=(14,), frames_per_action=5)
    assert list(tmp_path.iterdir()) == []


def test_player_replays_with_timing_and_clock(demo_bag: scenario.DemoBagInfo) -> None:
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
            scenario.BAG_GROUND_TRUTH_TOPIC,
            lambda m: got.append((time.monotonic(), stamp_to_ns(m.header.stamp))),
            50,
        )
        listener.create_subscription(Clock, "/clock", lambda m: clocks.append(stamp_to_ns(m.clock)), 50)
        depth_frames: list[Image] = []
        listener.create_subscription(Image, scenario.BAG_SENSOR_TOPICS["depth"], depth_frames.append, 50)
        executor = SingleThreadedExecutor()
        executor.add_node(player)
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        wait_until(lambda: player.subscriber_counts()[scenario.BAG_GROUND_TRUTH_TOPIC] >= 1, timeout_s=10)
        wait_until(lambda: player.subscriber_counts()[scenario.BAG_SENSOR_TOPICS["depth"]] >= 1, timeout_s=10)
        player.start()
        wait_until(lambda: player.loops >= 2, timeout_s=20)
        player.stop()
        executor.shutdown(timeout_sec=2.0)
        player.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.try_shutdown()

    assert player.loops >= 2
    assert scenario.TF_STATIC_TOPIC not in player.topics  # tf2_msgs is not installed next to rclpy here
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
    # The played sensor messages are the rclpy messages the scenario built.
    k = rig_by_name(demo_bag.rig).depth_intrinsics
    assert depth_frames and image_to_array(depth_frames[0]).shape == (k.height, k.width)
