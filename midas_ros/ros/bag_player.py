"""Plays an MCAP bag with its original timing and publishes /clock, like `ros2 bag play --clock`.

Messages go out as the stored CDR bytes (no deserialisation), from a playback thread that sleeps until
each message is due (log time / rate). /clock carries the playback time at `clock_frequency`, so nodes
with use_sim_time follow the bag. With `loop`, playback restarts at the end: time jumps back, as with
`ros2 bag play --loop`. Topics whose message type is not importable here (e.g. tf2_msgs without tf2)
are skipped with a warning.

Run: ``bag_player --ros-args -p bag:=out/demo/demo_bag -p rate:=1.0 -p loop:=false``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from midas_ros.interfaces import TF_STATIC_TOPIC
from midas_ros.ros.bag_io import BagMessage, bag_topics, read_messages
from midas_ros.ros.nodes import declare_param, run_node
from midas_ros.sync import NS_PER_S

LATCHED_TOPICS = (TF_STATIC_TOPIC, "/robot_description")


def message_class(msgtype: str) -> type:
    """The rclpy message class of a 'pkg/msg/Name' type name (ImportError when not installed)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagPlayer(Node):
    """A node that replays one bag; `start()` begins playback, `done` is set when it ends."""

    def __init__(self, node_name: str = "bag_player", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.done = threading.Event()
        self.published = 0
        self.loops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)

        def declare(name: str, default: Any, description: str) -> Any:
            return declare_param(self, name, default, description)

        self.bag_path = Path(declare("bag", "", "bag directory (rosbag2 MCAP) to play"))
        self.rate = float(declare("rate", 1.0, "playback speed factor (2.0 = twice as fast)"))
        self.loop = bool(declare("loop", False, "restart at the end of the bag (time jumps back)"))
        self.clock_frequency = float(declare("clock_frequency", 40.0, "/clock publish rate in Hz; 0 = none"))
        topics = list(declare("topics", [""], "topics to play; empty = all"))
        reliability = str(
            declare("reliability", "reliable", "QoS of the played topics: reliable|best_effort")
        )
        autostart = bool(declare("autostart", True, "start playing as soon as the node is up"))

        if not str(self.bag_path) or str(self.bag_path) == ".":
            raise ValueError("parameter 'bag' is required")
        if not self.bag_path.exists():
            raise FileNotFoundError(f"bag {self.bag_path} does not exist")
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if reliability not in ("reliable", "best_effort"):
            raise ValueError(f"reliability must be reliable or best_effort, got {reliability!r}")

        wanted = {t for t in topics if t}
        qos = QoSProfile(
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE
            if reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._topic_pubs: dict[str, Any] = {}
        for topic, msgtype in bag_topics(self.bag_path).items():
            if wanted and topic not in wanted:
                continue
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f"skipping {topic}: message type {msgtype} is not installed")
                continue
            self._topic_pubs[topic] = self.create_publisher(
                cls, topic, latched if topic in LATCHED_TOPICS else qos
            )
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if self.clock_frequency > 0 else None

        if autostart:
            self.start()

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics this player publishes (besides /clock)."""
        return tuple(self._topic_pubs)

    def subscriber_counts(self) -> dict[str, int]:
        """{topic: matched subscriptions} for the played topics."""
        return {t: p.get_subscription_count() for t, p in self._topic_pubs.items()}

    def start(self) -> None:
        """Begin playback (once)."""
        if not self._thread.is_alive() and not self.done.is_set():
            self._thread.start()

    def stop(self) -> None:
        """Stop playback and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    # -- playback thread ------------------------------------------------------------------------------

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, NS_PER_S)
            self._clock_pub.publish(msg)

    def _wait_until(self, due_ns: int, bag_t0: int, wall_t0: int) -> None:
        """Sleep until the bag time `due_ns`, ticking /clock on the way."""
        clock_period_ns = int(NS_PER_S / self.clock_frequency) if self._clock_pub is not None else None
        while not self._stop.is_set():
            bag_now = bag_t0 + int((time.monotonic_ns() - wall_t0) * self.rate)
            if bag_now >= due_ns:
                return
            sleep_ns = (due_ns - bag_now) / self.rate
            if clock_period_ns is not None:
                self._publish_clock(bag_now)
                sleep_ns = min(sleep_ns, clock_period_ns)
            self._stop.wait(sleep_ns / NS_PER_S)

    def _play_once(self) -> None:
        bag_t0 = wall_t0 = None
        message: BagMessage
        for message in read_messages(self.bag_path, self._topic_pubs):
            if self._stop.is_set():
                return
            if bag_t0 is None:
                bag_t0, wall_t0 = message.timestamp_ns, time.monotonic_ns()
            self._wait_until(message.timestamp_ns, bag_t0, wall_t0)
            if self._stop.is_set():
                return
            self._publish_clock(message.timestamp_ns)
            self._topic_pubs[message.topic].publish(message.rawdata)
            self.published += 1

    def _play(self) -> None:
        try:
            while not self._stop.is_set():
                self._play_once()
                self.loops += 1
                if not self.loop:
                    break
            if not self._stop.is_set():
                self.get_logger().info(f"playback finished: {self.published} messages, {self.loops} pass(es)")
        except Exception as exc:  # a broken bag must not die silently in a thread
            self.get_logger().error(f"playback failed: {exc!r}")
            raise
        finally:
            self.done.set()


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: play the bag named by the 'bag' parameter, exit when done (or on Ctrl-C)."""

    def spin_until_done(node: BagPlayer) -> None:
        with SingleThreadedExecutor(context=node.context) as executor:
            executor.add_node(node)
            while node.context.ok() and not node.done.is_set():
                executor.spin_once(timeout_sec=0.1)

    run_node(BagPlayer, args, spin=spin_until_done)


if __name__ == "__main__":
    main()
