"""A bag played with /clock through the real node graph in this process, the skeleton stream recorded.

`record_live_run` builds the composed graph of `bringup.build_nodes` (depth, LiDAR and CSI adapters,
fusion node, bag player; every node on sim time, an executor thread each, parameters from
config/*.yaml, then `overrides`; `ros_args` such as remaps from the nodes' default input topics to the
bag's), plays the bag's `topics` (default: all) at `rate` once the sensor topics and the recorder are
matched, and `SkeletonRecorder` stores what the fusion node publishes, as received, in an MCAP bag
(skeleton_bag.py). `on_start` and `on_progress` report playback. The demo (midas_ros/demo/run.py) and
`run_live`, the replay's live mode (a ReplayPlan: its topics, remaps and parameters; a progress bar),
both run a bag this way.

Ctrl-C stops the run cleanly (nodes destroyed, bag closed) and raises KeyboardInterrupt afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC, POSES_TOPIC, SENSOR_TOPICS
from midas_ros.replay.bag import BagInputs
from midas_ros.replay.fast import RunStats, accounting_dict
from midas_ros.replay.plan import ReplayPlan
from midas_ros.replay.skeleton_bag import RECORDED, SKELETON_BAG_TOPICS
from midas_ros.ros.bag_io import BagRecorder, resolved_topic
from midas_ros.ros.parameters import ADAPTER_NODES

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


@dataclass
class LiveRun:
    """What a live run did."""

    received: dict[str, int]  # skeleton messages recorded per fusion node topic (RECORDED)
    played: int = 0  # messages the player published
    accounting: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> adapter counters
    start_s: float = 0.0  # node start-up (model loading included) until playback started
    wall_s: float = 0.0  # playback, until the bag ended or timeout_s


def record_live_run(
    bag_path: Path,
    skeleton_bag: Path,
    *,
    checkpoint: str | Path,
    device: str = "auto",
    rate: float = 1.0,
    timeout_s: float | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_dir: Path | None = None,
    ros_args: Sequence[str] = (),
    topics: Sequence[str] | None = None,
    on_start: Callable[[], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LiveRun:
    """Play `bag_path` through the node graph in this process and record the skeleton streams in
    `skeleton_bag` (MCAP; an earlier one there is replaced).

    overrides: {node name: {parameter: value}} over config_dir's YAML (default: the package's config/),
    e.g. the rig's sensor poses; ros_args: e.g. ``["-r", "ouster/points:=/os1/points"]``; topics: the
    bag topics to play (default: all); timeout_s: stop playback after this long (wall). on_start() once
    playback started; on_progress(messages played) about ten times a second and at the end.
    Raises KeyboardInterrupt after a clean stop on Ctrl-C.
    """
    from midas_ros.ros.bag_player import BagPlayer
    from midas_ros.ros.bringup import build_nodes, sensors_matched, spin

    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if skeleton_bag.exists():
        shutil.rmtree(skeleton_bag)  # our own output of an earlier run
    node_overrides = {node: dict(values) for node, values in (overrides or {}).items()}
    if topics is not None:
        node_overrides.setdefault("bag_player", {})["topics"] = list(topics)
    stop = threading.Event()
    nodes: list[Node] = []
    recorder: BagRecorder | None = None
    control: threading.Thread | None = None
    times: dict[str, float] = {"begin": time.perf_counter()}
    run = LiveRun(received={})
    with sigint_sets(stop) as interrupted:
        # rclpy's own handlers would shut the context down under the nodes; ours stops the spin instead.
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        try:
            recorder = BagRecorder(skeleton_bag, SKELETON_BAG_TOPICS)
            nodes = build_nodes(
                config=config_dir,
                bag=str(bag_path),
                use_sim_time=True,
                device=device,
                checkpoint=str(checkpoint),
                rate=rate,
                overrides=node_overrides,
                ros_args=ros_args,
            )
            player = next(n for n in nodes if isinstance(n, BagPlayer))
            by_name = {n.get_name(): n for n in nodes}
            skeletons = SkeletonRecorder(
                recorder, parameter_overrides=[Parameter("use_sim_time", value=True)]
            )
            nodes.append(skeletons)

            def all_matched() -> bool:
                return skeletons.matched() and sensors_matched(player)

            def play() -> None:
                matched = _wait(all_matched, stop, MATCH_TIMEOUT_S)
                if stop.is_set():
                    return
                if not matched:
                    player.get_logger().warning("not every topic matched in time; playing anyway")
                times["play"] = time.perf_counter()
                player.start()
                if on_start is not None:
                    on_start()
                while not stop.is_set() and not player.done.wait(0.1):
                    if on_progress is not None:
                        on_progress(player.published)
                    if timeout_s is not None and time.perf_counter() - times["play"] > timeout_s:
                        break
                if on_progress is not None:
                    on_progress(player.published)
                run.played = player.published
                times["end"] = time.perf_counter()
                stop.wait(DRAIN_S)  # the last sets through inference and into the recorder
                stop.set()

            control = threading.Thread(target=play, name="live_run_control", daemon=True)
            control.start()
            spin(nodes, until=stop)
            run.received = dict(skeletons.received)
            run.accounting = {
                m: accounting_dict(by_name[name].accounting)
                for m, name in ADAPTER_NODES.items()
                if name in by_name
            }
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
    play_s = times.get("play", times["begin"])
    run.start_s = play_s - times["begin"]
    run.wall_s = times.get("end", time.perf_counter()) - play_s
    return run


def remap_args(inputs: BagInputs) -> list[str]:
    """ROS arguments remapping the adapters' default input topics to the bag's topics (where they differ)."""
    pairs = [(SENSOR_TOPICS[m], topic) for m, topic in inputs.sensor_topics.items()]
    if inputs.camera_info_topic:
        pairs.append((DEPTH_CAMERA_INFO_TOPIC, inputs.camera_info_topic))
    args: list[str] = []
    for default, topic in pairs:
        if resolved_topic(default) != topic:
            args += ["-r", f"{default}:={topic}"]
    return args


def run_live(
    plan: ReplayPlan,
    skeleton_bag: Path,
    *,
    rate: float = 1.0,
    progress: bool = True,
    timeout_s: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> RunStats:
    """Play `plan`'s sensor and camera info topics through the node graph with the plan's parameters
    and remaps (record_live_run) and record the skeleton stream in `skeleton_bag`."""
    from tqdm import tqdm

    inputs = plan.inputs
    total = sum(inputs.counts.get(t, 0) for t in inputs.replayed_topics)
    desc = f"{plan.name} (live x{rate:g})"
    with tqdm(total=total, desc=desc, unit="msg", disable=not progress, leave=False) as bar:
        run = record_live_run(
            inputs.path,
            skeleton_bag,
            checkpoint=plan.checkpoint,
            device=plan.device,
            rate=rate,
            timeout_s=timeout_s,
            overrides=plan.overrides,
            config_dir=plan.config_dir,
            ros_args=remap_args(inputs),
            topics=inputs.replayed_topics,
            on_start=on_start,
            on_progress=lambda played: bar.update(played - bar.n),
        )
    return RunStats(
        mode="live",
        wall_s=run.wall_s,
        messages=run.played,
        skeletons=run.received.get(POSES_TOPIC, 0),
        bag_duration_s=inputs.duration_s,
        accounting={m: run.accounting[m] for m in inputs.sensor_topics if m in run.accounting},
        start_s=run.start_s,
    )
