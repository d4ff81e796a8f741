"""The fusion node with real rclpy in one process, on simulated time driven by the test.

A harness node publishes /clock, model-ready samples and adapter diagnostics, and records the fusion
node's outputs. Every wait polls for the expected message, after waiting for the topic to match.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_utils import wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from midas_ros import MODALITIES  # noqa: E402
from midas_ros.model import MIDAS, save_checkpoint, tiny_config  # noqa: E402
from midas_ros.ros.conversions import sample_to_msg, stamp_to_ns  # noqa: E402
from midas_ros.ros.fusion_node import SAMPLE_TOPICS, SAMPLE_TYPES, FusionNode  # noqa: E402
from midas_ros.ros.markers import subset_color, subset_label  # noqa: E402

pytestmark = pytest.mark.ros
NS = 1_000_000_000
PERIOD_NS = NS // 10
TIMEOUT_S = 0.5
RNG = np.random.default_rng(0)
SAMPLES = {
    "depth": RNG.uniform(2.0, 4.0, (1, 96, 128)).astype(np.float32),
    "lidar": RNG.normal([3.0, 0.0, -0.5], 0.3, (512, 3)).astype(np.float32),
    "csi": RNG.normal(0.0, 1.0, (6, 114, 10)).astype(np.float32),
}


class Harness(Node):
    """Drives the clock and the sample topics; records markers, poses and the fusion's diagnostics."""

    def __init__(self) -> None:
        super().__init__("fusion_test_harness")
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.sample_pubs = {
            m: self.create_publisher(SAMPLE_TYPES[m], SAMPLE_TOPICS[m], qos_profile_sensor_data)
            for m in MODALITIES
        }
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.lock = threading.Lock()
        self.markers: list[MarkerArray] = []
        self.poses: list[PoseArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(MarkerArray, "/midas/skeleton/markers", self._keep(self.markers), 50)
        self.create_subscription(PoseArray, "/midas/skeleton/poses", self._keep(self.poses), 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), 50)

    def _keep(self, store: list) -> Callable:
        def callback(msg: object) -> None:
            with self.lock:
                store.append(msg)

        return callback

    def set_clock(self, t_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(t_ns, NS)
        self.clock_pub.publish(msg)

    def send(self, modality: str, t_ns: int) -> None:
        header = Header(frame_id="test")
        header.stamp.sec, header.stamp.nanosec = divmod(t_ns, NS)
        self.sample_pubs[modality].publish(sample_to_msg(modality, SAMPLES[modality], header))

    def frames(self, start_ns: int, count: int, alive: tuple[str, ...]) -> int:
        """`count` frames at 10 Hz from `start_ns` with the `alive` sensors; returns the next frame time.

        The clock ticks four times a frame (as a player's /clock would), so the watchdog gets its turns;
        frames go out in real time (0.1 s each), so inference keeps up on a loaded machine.
        """
        t = start_ns
        for _ in range(count):
            self.set_clock(t)
            for m in alive:
                self.send(m, t)
            for k in range(1, 4):
                time.sleep(0.025)
                self.set_clock(t + k * PERIOD_NS // 4)
            time.sleep(0.025)
            t += PERIOD_NS
        return t

    def poses_between(self, a_ns: int, b_ns: int) -> list[PoseArray]:
        with self.lock:
            return [p for p in self.poses if a_ns <= stamp_to_ns(p.header.stamp) < b_ns]

    def skeletons_between(self, a_ns: int, b_ns: int) -> list[MarkerArray]:
        with self.lock:
            return [
                m
                for m in self.markers
                if m.markers[0].action == Marker.ADD and a_ns <= stamp_to_ns(m.markers[0].header.stamp) < b_ns
            ]

    def fusion_status(self, name: str) -> DiagnosticStatus | None:
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == f"fusion_node: {name}":
                        return status
        return None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny")
    return str(path)


@pytest.fixture
def running(checkpoint: str) -> Iterator[tuple[FusionNode, Harness]]:
    rclpy.init()
    fusion = FusionNode(
        parameter_overrides=[
            Parameter("use_sim_time", value=True),
            Parameter("checkpoint", value=checkpoint),
            Parameter("device", value="cpu"),
            Parameter("diagnostics_period_s", value=0.2),
            *[Parameter(f"{m}.timeout_s", value=TIMEOUT_S) for m in MODALITIES],
        ]
    )
    harness = Harness()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(fusion)
    executor.add_node(harness)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        matched = wait_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in harness.sample_pubs.values())
                and harness.clock_pub.get_subscription_count() >= 1
                and fusion.markers_pub.get_subscription_count() >= 1
                and fusion.poses_pub.get_subscription_count() >= 1
                and fusion.diagnostics_pub.get_subscription_count() >= 1
            )
        )
        assert matched, "the harness and the fusion node did not discover each other"
        yield fusion, harness
    finally:
        executor.shutdown(timeout_sec=2.0)
        fusion.destroy_node()
        harness.destroy_node()
        rclpy.try_shutdown()
        thread.join(timeout=2.0)


SUBSETS = [c for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)]


def test_every_subset_gives_markers_poses_and_diagnostics(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    t = 100 * NS
    for subset in SUBSETS:
        t += 2 * int(TIMEOUT_S * NS)  # a silent gap: every sensor from the previous subset goes stale
        harness.frames(t - int(TIMEOUT_S * NS), 1, ())  # tick the clock through the gap
        start = t
        t = harness.frames(t, 5, subset)
        assert wait_until(lambda s=start, e=t: len(harness.skeletons_between(s, e)) >= 3), subset
        label = subset_label(subset)
        skeletons = harness.skeletons_between(start, t)
        # After the first frame (stale sensors may still be waited for), each skeleton uses just the subset.
        assert {m.markers[2].text for m in skeletons[1:]} == {label}
        joints, bones, _ = skeletons[-1].markers
        assert joints.type == Marker.SPHERE_LIST and len(joints.points) == 17
        assert bones.type == Marker.LINE_LIST and len(bones.points) == 2 * 16
        assert joints.color == subset_color(subset) and joints.header.frame_id == "midas_room"
        assert 0.2 <= joints.lifetime.nanosec / 1e9 + joints.lifetime.sec <= 0.3  # 2.5 periods of 0.1 s
        poses = harness.poses_between(start, t)
        assert len(poses) >= 3 and all(len(p.poses) == 17 for p in poses)
        frame_stamps = {start + k * PERIOD_NS for k in range(5)}
        assert {stamp_to_ns(p.header.stamp) for p in poses} <= frame_stamps

        # The diagnostics name the live subset and the weights of the set fused last: only its sensors'.
        def diagnosed(subset: tuple[str, ...] = subset, label: str = label) -> bool:
            status = harness.fusion_status("fusion")
            if status is None or status.message != f"fusing {label}":
                return False
            weights = {kv.key: float(kv.value) for kv in status.values if kv.key.startswith("weight/")}
            return all((weights[f"weight/{m}"] > 0) == (m in subset) for m in MODALITIES)

        assert wait_until(diagnosed)


def test_dead_sensor_goes_missing_and_comes_back(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    t0 = 200 * NS
    t1 = harness.frames(t0, 8, MODALITIES)
    t2 = harness.frames(t1, 12, ("depth", "lidar"))  # csi silent for 1.2 s > its 0.5 s timeout
    assert wait_until(lambda: len(harness.poses_between(t1, t2)) >= 9)  # output never stopped
    late = harness.skeletons_between(t1 + int(TIMEOUT_S * NS) + PERIOD_NS, t2)
    assert late and {m.markers[2].text for m in late} == {"depth+lidar"}
    csi = harness.fusion_status("csi")
    assert csi is not None and csi.level == DiagnosticStatus.WARN and csi.message == "missing"
    assert int(next(kv.value for kv in csi.values if kv.key == "missing_sets")) >= 10

    t3 = harness.frames(t2, 6, MODALITIES)  # csi is back
    assert wait_until(lambda: len(harness.skeletons_between(t2 + PERIOD_NS, t3)) >= 4)
    assert {m.markers[2].text for m in harness.skeletons_between(t2 + PERIOD_NS, t3)} == {"depth+lidar+csi"}
    assert wait_until(lambda: harness.fusion_status("csi").level == DiagnosticStatus.OK)


def test_all_dead_withdraws_skeleton_and_says_so(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    t = harness.frames(300 * NS, 5, ("lidar",))
    assert wait_until(lambda: len(harness.poses_between(300 * NS, t)) >= 3)
    end = harness.frames(t, 10, ())  # a second of silence
    assert wait_until(lambda: any(m.markers[0].action == Marker.DELETEALL for m in harness.markers))
    assert harness.poses_between(t, end) == []
    assert wait_until(lambda: harness.fusion_status("fusion").level == DiagnosticStatus.ERROR)
    assert "no sensor alive" in harness.fusion_status("fusion").message


def test_backward_time_jump_resets(running: tuple[FusionNode, Harness]) -> None:
    fusion, harness = running
    t = harness.frames(500 * NS, 5, MODALITIES)
    assert wait_until(lambda: len(harness.poses_between(500 * NS, t)) >= 3)
    assert fusion.time_jumps == 0
    t_back = harness.frames(50 * NS, 6, MODALITIES)  # a bag loops: time goes 450 s back
    assert wait_until(lambda: len(harness.poses_between(50 * NS, t_back)) >= 3)
    assert fusion.time_jumps >= 1
    assert any(m.markers[0].action == Marker.DELETEALL for m in harness.markers)


def test_rejections_are_counted_and_folded_in(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    adapter = DiagnosticArray()
    adapter.status.append(
        DiagnosticStatus(
            name="depth_adapter: depth", values=[KeyValue(key="rejected/no_valid_pixels", value="3")]
        )
    )
    bad = Image(encoding="rgb8", height=2, width=2, step=6, data=bytes(12))
    bad.header.stamp.sec = 600
    assert wait_until(lambda: harness.diag_pub.get_subscription_count() >= 1)

    def counted() -> bool:
        harness.diag_pub.publish(adapter)
        harness.sample_pubs["depth"].publish(bad)
        harness.frames(600 * NS, 1, ("lidar",))
        status = harness.fusion_status("depth")
        values = {kv.key: kv.value for kv in status.values} if status else {}
        return (
            values.get("rejected/no_valid_pixels") == "3" and int(values.get("rejected/bad_encoding", 0)) >= 1
        )

    assert wait_until(counted)
