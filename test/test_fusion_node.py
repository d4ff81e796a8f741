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

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_utils import wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from midas_ros import MODALITIES  # noqa: E402
from midas_ros.interfaces import DEPTH_NUM_POINTS, FUSION_TOPIC, INPUT_SHAPES, SAMPLE_TOPICS  # noqa: E402
from midas_ros.model import MIDAS, save_checkpoint, tiny_config  # noqa: E402
from midas_ros.ros.conversions import csi_to_pointcloud2, msg_to_sample, sample_to_msg, stamp_to_ns  # noqa: E402
from midas_ros.ros.fusion_node import SAMPLE_TYPES, FusionNode  # noqa: E402
from midas_ros.ros.fusion_record import parse_fusion_record  # noqa: E402
from midas_ros.ros.markers import subset_color, subset_label  # noqa: E402

pytestmark = pytest.mark.ros
NS = 1_000_000_000
PERIOD_NS = NS // 10
TIMEOUT_S = 0.5
RNG = np.random.default_rng(0)
SAMPLES = {
    "depth": RNG.normal([3.0, 0.0, 0.9], [0.1, 0.2, 0.45], (DEPTH_NUM_POINTS, 3)).astype(np.float32),
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
        self.fusion: FusionNode | None = None  # the node under test, once both run
        self.lock = threading.Lock()
        self.markers: list[MarkerArray] = []
        self.poses: list[PoseArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.records: list[DiagnosticArray] = []
        self.create_subscription(DiagnosticArray, FUSION_TOPIC, self._keep(self.records), 50)
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

    def frames(
        self,
        start_ns: int,
        count: int,
        alive: tuple[str, ...],
        stamp_offsets_ns: dict[str, int] | None = None,
    ) -> int:
        """`count` frames at 10 Hz from `start_ns` with the `alive` sensors; returns the next frame time.

        The clock ticks four times a frame (as a player's /clock would), so the poll timer gets its turns;
        frames go out in real time (0.1 s each), so inference keeps up on a loaded machine. A sensor in
        `stamp_offsets_ns` stamps its samples that far from the clock (negative: it lags or jumped back).
        """
        t = start_ns
        for _ in range(count):
            self.set_clock(t)
            before = {m: self._processed(m) for m in alive} if self.fusion else {}
            for m in alive:
                self.send(m, t + (stamp_offsets_ns or {}).get(m, 0))
            # The clock moves on only once the node holds this frame's samples: a delivery slower than a
            # clock tick on a busy machine would otherwise look like a late sensor.
            wait_until(lambda b=before: all(self._processed(m) > b[m] for m in b), 5)
            for k in range(1, 4):
                time.sleep(0.025)
                self.set_clock(t + k * PERIOD_NS // 4)
            time.sleep(0.025)
            t += PERIOD_NS
        return t

    def _processed(self, modality: str) -> int:
        return self.fusion.accounting[modality].snapshot().processed

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

    def labels_between(self, a_ns: int, b_ns: int) -> list[str]:
        return [m.markers[2].text for m in self.skeletons_between(a_ns, b_ns)]

    def all_statuses(self, name: str) -> list[DiagnosticStatus]:
        with self.lock:
            return [s for a in self.diagnostics for s in a.status if s.name == f"fusion_node: {name}"]

    def fusion_status(self, name: str) -> DiagnosticStatus | None:
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == f"fusion_node: {name}":
                        return status
        return None


def test_every_sample_topic_carries_a_pointcloud2_of_the_models_input() -> None:
    """The node subscribes to PointCloud2 on every sample topic (depth: the person's points, as LiDAR),
    and the samples this test publishes have the model's input shapes and survive the round trip."""
    assert {m: PointCloud2 for m in MODALITIES} == SAMPLE_TYPES
    for modality, sample in SAMPLES.items():
        assert sample.shape == INPUT_SHAPES[modality]
        np.testing.assert_array_equal(msg_to_sample(modality, sample_to_msg(modality, sample)), sample)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny")
    return str(path)


@pytest.fixture
def fusion_params() -> list[Parameter]:
    """Extra parameters for the fusion node (tests override this fixture with parametrize)."""
    return []


@pytest.fixture
def running(checkpoint: str, fusion_params: list[Parameter]) -> Iterator[tuple[FusionNode, Harness]]:
    rclpy.init()
    fusion = FusionNode(
        parameter_overrides=[
            Parameter("use_sim_time", value=True),
            Parameter("checkpoint", value=checkpoint),
            Parameter("device", value="cpu"),
            Parameter("diagnostics_period_s", value=0.2),
            *[Parameter(f"{m}.timeout_s", value=TIMEOUT_S) for m in MODALITIES],
            *fusion_params,
        ]
    )
    harness = Harness()
    harness.fusion = fusion
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
        assert joints.color == subset_color(subset) and joints.header.frame_id == "midas_base"
        assert joints.lifetime.nanosec / 1e9 + joints.lifetime.sec == pytest.approx(0.25)
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
    assert csi is not None and csi.level == DiagnosticStatus.WARN and csi.message == "dead"
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
    assert fusion.sync.resets == 0
    t_back = harness.frames(50 * NS, 6, MODALITIES)  # a bag loops: time goes 450 s back
    assert wait_until(lambda: len(harness.poses_between(50 * NS, t_back)) >= 3)
    assert fusion.sync.resets >= 1
    assert any(m.markers[0].action == Marker.DELETEALL for m in harness.markers)


def test_bad_samples_are_counted_by_reason(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    bad = csi_to_pointcloud2(np.ones((3, 4, 2)), np.ones((3, 4, 2)))  # no x, y, z: not a depth sample
    bad.header.stamp.sec = 600

    def counted() -> bool:
        harness.sample_pubs["depth"].publish(bad)
        harness.frames(600 * NS, 1, ("lidar",))
        status = harness.fusion_status("depth")
        values = {kv.key: kv.value for kv in status.values} if status else {}
        return int(values.get("rejected/missing_fields", 0)) >= 1

    assert wait_until(counted)


def test_fusion_record_says_what_each_skeleton_was_made_from(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    t0 = 700 * NS
    t = harness.frames(t0, 5, ("depth", "csi"), stamp_offsets_ns={"csi": -20_000_000})
    assert wait_until(lambda: len(harness.poses_between(t0, t)) >= 4)
    with harness.lock:
        records = [parse_fusion_record(r) for r in harness.records]
        poses = {stamp_to_ns(p.header.stamp) for p in harness.poses}
    records = [r for r in records if t0 - NS // 10 <= r.stamp_ns < t]
    assert len(records) >= 4 and {r.stamp_ns for r in records} <= poses
    for record in records:
        assert record.subset == ("depth", "csi") and record.weights["lidar"] == 0.0
        assert sum(record.weights.values()) == pytest.approx(1.0, abs=1e-5)
        assert record.sample_stamps_ns["csi"] == record.sample_stamps_ns["depth"] - 20_000_000
        assert record.missing == {"lidar": "never_received"} or record.missing == {"lidar": "dead"}
        assert record.inference_ms > 0 and record.stamp_to_publish_ms >= 0


def test_lasting_stamp_jump_while_the_clock_goes_on_resumes(running: tuple[FusionNode, Harness]) -> None:
    """The sensors' stamps jump 20 s back and stay there (driver restart); the clock does not jump."""
    fusion, harness = running
    t0 = 800 * NS
    t = harness.frames(t0, 5, MODALITIES)
    assert wait_until(lambda: len(harness.poses_between(t0, t)) >= 4)
    back = dict.fromkeys(MODALITIES, -20 * NS)
    end = harness.frames(t, 10, MODALITIES, stamp_offsets_ns=back)
    # Output resumed within timeout + one period (6 frames), and every later frame got its skeleton.
    resumed = harness.labels_between(t - 20 * NS, end - 20 * NS)
    assert len(resumed) >= 10 - 6 and set(resumed) == {"depth+lidar+csi"}
    assert fusion.sync.resets >= 1
    assert wait_until(lambda: {s.state for s in fusion.sync.stats().values()} == {"ok"})


@pytest.mark.parametrize(
    ("fusion_params", "fused"),
    [([], False), ([Parameter("max_latency_s", value=0.6)], True)],
    ids=["default", "max-latency-0.6"],
)
def test_lagging_sensor_late_not_dead_and_fused_with_enough_max_latency(
    running: tuple[FusionNode, Harness], fused: bool
) -> None:
    """The LiDAR's samples arrive 0.5 s after their stamps (as they did with an Ouster on a busy host)."""
    fusion, harness = running
    t0 = 900 * NS
    end = harness.frames(t0, 25, MODALITIES, stamp_offsets_ns={"lidar": -NS // 2})
    # After the first lagged scans arrived, and before the sets that may still wait for the last ones.
    window = (t0 + NS, end - 6 * PERIOD_NS)
    assert wait_until(lambda: len(harness.labels_between(*window)) >= 8)
    steady = harness.labels_between(*window)
    states = [kv.value for st in harness.all_statuses("lidar") for kv in st.values if kv.key == "state"]
    assert "dead" not in states
    if fused:
        assert steady.count("depth+lidar+csi") >= 0.9 * len(steady)
        assert fusion.sync.stats()["lidar"].state == "ok"
    else:
        assert set(steady) == {"depth+csi"}
        assert wait_until(lambda: harness.fusion_status("lidar").message.startswith("late"))
        assert harness.fusion_status("lidar").level == DiagnosticStatus.WARN


def test_diagnostics_go_on_and_say_stale_without_clock(running: tuple[FusionNode, Harness]) -> None:
    _, harness = running
    harness.frames(950 * NS, 3, MODALITIES)
    with harness.lock:
        before = len(harness.diagnostics)
    # No /clock and no samples from now on: the steady-clock diagnostics keep coming, marked stale.
    assert wait_until(
        lambda: (
            harness.fusion_status("fusion").level == DiagnosticStatus.STALE
            and "clock has not moved" in harness.fusion_status("fusion").message
        )
    )
    with harness.lock:
        assert len(harness.diagnostics) > before
    assert harness.fusion_status("depth").level == DiagnosticStatus.STALE
