"""The live part of the demo: a bag through the whole node graph in one process, skeletons recorded.

Bag player (/clock) + depth/LiDAR/CSI adapters + fusion node, built by ``bringup.build_nodes`` with
use_sim_time, spun (an executor thread per node) next to a recorder node that stores what the fusion node
publishes (PoseArray, MarkerArray and the per-skeleton fusion record) as received, CDR bytes, in an MCAP
bag. Ctrl-C stops the run cleanly (nodes destroyed, bag closed) and raises KeyboardInterrupt afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from visualization_msgs.msg import MarkerArray

from midas_ros.demo.scenario import BAG_SENSOR_TOPICS
from midas_ros.interfaces import FUSION_TOPIC, MARKERS_TOPIC, POSES_TOPIC
from midas_ros.ros.bag_io import BagRecorder, msgtype_name, resolved_topic
from midas_ros.ros.bag_player import BagPlayer
from midas_ros.ros.bringup import build_nodes, spin

# What the recorder subscribes to (relative names, root namespace) and their message classes.
RECORDED: dict[str, type] = {
    POSES_TOPIC: PoseArray,
    MARKERS_TOPIC: MarkerArray,
    FUSION_TOPIC: DiagnosticArray,
}
# The same topics as the skeleton bag names them.
SKELETON_BAG_TOPICS: dict[str, str] = {resolved_topic(t): msgtype_name(cls) for t, cls in RECORDED.items()}
MATCH_TIMEOUT_S = 15.0  # for the recorder and the adapters to connect before playback starts
DRAIN_S = 1.0  # after the bag ends: the last sets through inference and into the recorder


class SkeletonRecorder(Node):
    """Writes the fusion node's output streams, as received (CDR bytes), to a BagRecorder."""

    def __init__(self, recorder: BagRecorder, **kwargs: object) -> None:
        super().__init__("skeleton_recorder", **kwargs)
        self.recorder = recorder
        self.received = dict.fromkeys(RECORDED, 0)
        self.subscriptions_by_topic = {
            topic: self.create_subscription(msg_class, topic, self._writer(topic), 50, raw=True)
            for topic, msg_class in RECORDED.items()
        }

    def _writer(self, topic: str) -> Callable[[bytes], None]:
        bag_topic = resolved_topic(topic)

        def write(rawdata: bytes) -> None:
            self.recorder.write(bag_topic, self.get_clock().now().nanoseconds, rawdata)
            self.received[topic] += 1

        return write

    def matched(self) -> bool:
        """Whether every recorded topic has a publisher."""
        return all(s.get_publisher_count() > 0 for s in self.subscriptions_by_topic.values())


@contextlib.contextmanager
def sigint_sets(event: threading.Event) -> Iterator[list[bool]]:
    """While inside, Ctrl-C sets `event` (a clean stop) instead of raising; yields [True] once it did."""
    interrupted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, frame: object) -> None:
        interrupted[:] = [True]
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(condition: Callable[[], bool], stop: threading.Event, timeout_s: float | None) -> bool:
    """Poll `condition` until it holds, `stop` is set or `timeout_s` (None: no limit) passes."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not condition():
        if stop.wait(0.05) or (deadline is not None and time.monotonic() > deadline):
            return condition()
    return True


def record_live_run(
    bag_path: Path,
    skeleton_bag: Path,
    *,
    checkpoint: str,
    device: str = "auto",
    rate: float = 1.0,
    timeout_s: float | None = None,
    overrides: dict[str, dict[str, object]] | None = None,
) -> dict[str, int]:
    """Play `bag_path` through the node graph in this process and record the skeleton streams.

    overrides: {node name: {parameter: value}}, e.g. the rig's sensor poses (scenario.rig_parameters).

    Returns the messages recorded per topic. Raises KeyboardInterrupt after a clean stop on Ctrl-C.
    """
    if skeleton_bag.exists():
        shutil.rmtree(skeleton_bag)  # our own output of an earlier run
    stop = threading.Event()
    nodes: list[Node] = []
    recorder: BagRecorder | None = None
    control: threading.Thread | None = None
    received: dict[str, int] = {}
    with sigint_sets(stop) as interrupted:
        # rclpy's own handlers would shut the context down under the nodes; ours stops the spin instead.
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        try:
            recorder = BagRecorder(skeleton_bag, SKELETON_BAG_TOPICS)
            nodes = build_nodes(
                bag=str(bag_path),
                use_sim_time=True,
                device=device,
                checkpoint=checkpoint,
                rate=rate,
                overrides=overrides,
            )
            player = next(n for n in nodes if isinstance(n, BagPlayer))
            skeletons = SkeletonRecorder(
                recorder, parameter_overrides=[Parameter("use_sim_time", value=True)]
            )
            nodes.append(skeletons)

            def sensors_matched() -> bool:
                counts = player.subscriber_counts()
                return all(counts[t] > 0 for t in BAG_SENSOR_TOPICS.values() if t in counts)

            def run() -> None:
                matched = _wait(lambda: skeletons.matched() and sensors_matched(), stop, MATCH_TIMEOUT_S)
                if stop.is_set():
                    return
                if not matched:
                    player.get_logger().warning("not every topic matched in time; playing anyway")
                player.start()
                print("playback started", flush=True)
                _wait(player.done.is_set, stop, timeout_s)
                stop.wait(DRAIN_S)
                stop.set()

            control = threading.Thread(target=run, name="demo_control", daemon=True)
            control.start()
            spin(nodes, until=stop)
            received = dict(skeletons.received)
        finally:
            stop.set()
            if control is not None:
                control.join(timeout=2.0)
            for node in reversed(nodes):
                node.destroy_node()
            rclpy.try_shutdown()
            if recorder is not None:
                recorder.close()
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # no second interrupt on the way out
        raise KeyboardInterrupt
    return received
