"""Shared base of the sensor adapter nodes: QoS, a worker, accounting, logging and diagnostics.

An adapter subscribes to one raw sensor topic, turns each message into the model-ready sample with its
modality's sampler (midas_ros/ros/samples.py: the conversions and the same preprocess function as
training, no node inside; the replay calls the same classes), and publishes it on its sample topic with
the input's header stamp and frame_id (depth and LiDAR samples: the base frame's, where their points
are). Topic names are relative (midas_ros.interfaces): remap them to your driver's topic (``--ros-args
-r ouster/points:=/os1/points``) or use the launch file's arguments.

The subscription callback only counts the message and hands it to the adapter's worker thread, which
preprocesses and publishes; while the worker is busy a newer message replaces a waiting one (counted as
dropped because busy), so latency stays bounded and the process's executor threads stay free. Every
message is accounted for in /diagnostics: received, processed, rejected by reason, dropped because busy,
and lost before the callback (gaps in the publisher's sequence numbers). A message the adapter cannot use
is rejected with a short reason ("bad_encoding", "too_many_points", ...); the first of each reason is
logged at once, later ones at most once per ``log_throttle_s`` with a count; the node never dies on bad
input. Diagnostics run on a steady clock, so they keep coming when /clock (use_sim_time) stops, and say
"stale" when no message came for two periods.

QoS: best effort, keep last ``qos_depth`` (default 1: under overload a stale frame is dropped rather than
queued), which connects to best-effort drivers and reliable publishers (bag players) alike. Samples are
published reliable (keep last 5), which reliable and best-effort subscribers both accept.

The depth and LiDAR adapters bring their sensor's data into the base frame (midas_ros.rig, ``midas_base``)
and keep only the person: each declares its sensor's pose (a parameter, or TF with ``use_tf``:
`SensorPose`) and its sampler's parameters (samples.py: the person search region and the rest), and the
sampler keeps a `PersonTrack`, so the person is followed from frame to frame by the messages' stamps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from std_msgs.msg import Header

from midas_ros.interfaces import DIAGNOSTICS_TOPIC, SAMPLE_TOPICS, SENSOR_TOPICS
from midas_ros.preprocess import PersonSearch, PreprocessError
from midas_ros.rig import BASE_FRAME, Pose
from midas_ros.ros.accounting import InputAccounting
from midas_ros.ros.conversions import ConversionError, sample_to_msg
from midas_ros.ros.nodes import declare_specs
from midas_ros.ros.parameters import ParameterSpec
from midas_ros.ros.samples import Sampler
from midas_ros.ros.worker import Worker

SAMPLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Every adapter's own parameters (the samplers' are in samples.py).
ADAPTER_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("qos_depth", 1, "queue depth of the best-effort sensor subscription"),
    ParameterSpec("diagnostics_period_s", 1.0, "seconds between DiagnosticStatus messages on /diagnostics"),
    ParameterSpec(
        "log_throttle_s", 5.0, "after its first report, a rejection reason is logged at most this often"
    ),
)


class AdapterNode(Node):
    """Base class: subclasses set the class attributes and, in :meth:`declare_modality_parameters`,
    their `sampler` (samples.py), which :meth:`to_sample` calls."""

    modality: ClassVar[str]
    input_type: ClassVar[type]
    output_type: ClassVar[type]
    # Set (declare_sensor_pose) by the adapters whose samples are base-frame points: depth and LiDAR.
    sensor_pose: SensorPose | None = None
    sampler: Sampler

    def __init__(self, node_name: str | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name or f"{self.modality}_adapter", **node_kwargs)
        self.declared_parameters: list[str] = []  # this node's own parameters (config/adapters.yaml)
        p = self.declare(ADAPTER_PARAMETERS)
        qos_depth: int = p["qos_depth"]
        self.diagnostics_period_s: float = p["diagnostics_period_s"]
        self.log_throttle_s: float = p["log_throttle_s"]
        self.declare_modality_parameters()
        self.warm_up()

        self.accounting = InputAccounting()
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._process_ms: deque[float] = deque(maxlen=100)
        self._last_receive: float | None = None  # steady clock
        self._window = {"processed": 0, "rejected": 0}

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos_depth,
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._worker: Worker[Any] = Worker(f"{self.get_name()}_worker", self.process, self._on_worker_error)
        self._sub = self.create_subscription(
            self.input_type, SENSOR_TOPICS[self.modality], self._on_message, qos
        )
        self._pub = self.create_publisher(self.output_type, SAMPLE_TOPICS[self.modality], SAMPLE_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = self.create_timer(
            self.diagnostics_period_s,
            self.publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.get_logger().info(f"{self._sub.topic_name} -> {self._pub.topic_name}")

    # -- for subclasses ---------------------------------------------------------------------------------

    def declare_modality_parameters(self) -> None:
        """Declare the modality's own parameters and make `sampler` (called before the subscription)."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Pay one-off costs (imports, first calls) at start-up rather than on the first message."""

    def to_sample(self, msg: Any) -> np.ndarray:
        """Validate and preprocess one message (the sampler); ConversionError / PreprocessError reject it."""
        return self.sampler.sample(msg)

    def sample_header(self, msg: Any) -> Header:
        """The sample's header: the input's stamp; the frame_id is the base frame's for adapters with a
        sensor pose (depth, LiDAR: their samples are points in the base frame), else the input's (CSI)."""
        if self.sensor_pose is None:
            return msg.header
        return Header(stamp=msg.header.stamp, frame_id=self.sensor_pose.base_frame)

    def declare(self, specs: Iterable[ParameterSpec]) -> dict[str, Any]:
        """Declare parameters (their values: override, YAML, or default) as this node's own."""
        specs = list(specs)
        self.declared_parameters += [spec.name for spec in specs]
        return declare_specs(self, specs)

    def declare_sensor_pose(
        self, spec: ParameterSpec, from_transform: Callable[[Any, Any], Pose] = Pose.from_transform
    ) -> SensorPose:
        """The sensor pose parameter `spec` ([x, y, z, roll, pitch, yaw] in the base frame, samples.py's
        POSE_PARAMETERS), and use_tf / base_frame (see SensorPose). from_transform turns TF's
        base_frame -> frame_id transform (translation, quaternion x, y, z, w) into the sensor's Pose."""
        use_tf = ParameterSpec(
            "use_tf",
            False,
            f"true: the sensor's pose is TF's base_frame -> <message frame_id> (needs tf2_ros; without it "
            f"a warning and the {spec.name} parameter)",
        )
        base_frame = ParameterSpec(
            "base_frame", BASE_FRAME, "the base frame (its name in TF with use_tf; the samples' frame_id)"
        )
        p = self.declare([spec, use_tf, base_frame])
        pose = Pose.from_list(p[spec.name])
        return SensorPose(self, spec.name, pose, p["use_tf"], p["base_frame"], from_transform)

    # -- message path -----------------------------------------------------------------------------------

    @property
    def input_topic(self) -> str:
        return self._sub.topic_name

    @property
    def output_topic(self) -> str:
        return self._pub.topic_name

    def _on_message(self, msg: Any, info: dict[str, Any]) -> None:
        self.accounting.received(info)
        with self._lock:
            self._last_receive = time.monotonic()
        if self._worker.put(msg):
            self.accounting.dropped_busy()

    def process(self, msg: Any) -> None:
        """Preprocess one message and publish its sample, or reject it (the worker calls this)."""
        start = time.perf_counter()
        try:
            out = sample_to_msg(self.modality, self.to_sample(msg), self.sample_header(msg))
        except (ConversionError, PreprocessError) as err:
            self._reject(err.reason, str(err))
            return
        self._pub.publish(out)
        self.accounting.processed()
        with self._lock:
            self._window["processed"] += 1
            self._process_ms.append((time.perf_counter() - start) * 1e3)

    def _on_worker_error(self, err: BaseException) -> None:
        # A bug or an input nobody foresaw must not kill the node: count it, log it.
        if self.context.ok():
            self._reject("internal_error", f"{type(err).__name__}: {err}")

    def _reject(self, reason: str, detail: str) -> None:
        self.accounting.rejected(reason)
        now = time.monotonic()
        with self._lock:
            self._window["rejected"] += 1
            last = self._last_log.get(reason)
            if last is not None and now - last < self.log_throttle_s:
                self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
                return
            self._last_log[reason] = now
            suppressed = self._unlogged.pop(reason, 0)
        more = f" (and {suppressed} more since the last report)" if suppressed else ""
        self.get_logger().warning(f"rejected a message on {self.input_topic} ({reason}): {detail}{more}")

    # -- diagnostics ------------------------------------------------------------------------------------

    def diagnostic_status(self) -> DiagnosticStatus:
        """This adapter's status now (and restarts the per-period counters)."""
        counts = self.accounting.snapshot()
        with self._lock:
            window = dict(self._window)
            self._window = dict.fromkeys(window, 0)
            last_receive = self._last_receive
            process_ms = np.asarray(self._process_ms) if self._process_ms else None
        silent = last_receive is None or time.monotonic() - last_receive > 2 * self.diagnostics_period_s
        if silent:
            level, message = DiagnosticStatus.STALE, f"no messages on {self.input_topic}"
        elif window["rejected"]:
            level = DiagnosticStatus.WARN
            message = f"{window['rejected']} rejected, {window['processed']} processed in the last period"
        else:
            level, message = DiagnosticStatus.OK, f"{window['processed']} processed in the last period"
        values: dict[str, Any] = {
            **counts.as_values(),
            "rate_hz": f"{window['processed'] / self.diagnostics_period_s:.2f}",
            "process_ms_p50": "n/a" if process_ms is None else f"{np.percentile(process_ms, 50):.2f}",
            "process_ms_max": "n/a" if process_ms is None else f"{process_ms.max():.2f}",
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
        }
        return DiagnosticStatus(
            level=level,
            name=f"midas_ros/{self.get_name()}",
            message=message,
            hardware_id=self.input_topic,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )

    def publish_diagnostics(self) -> None:
        array = DiagnosticArray(status=[self.diagnostic_status()])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        worker = getattr(self, "_worker", None)  # absent when __init__ was interrupted
        if worker is not None:
            worker.stop()
        super().destroy_node()


class SensorPose:
    """A sensor's pose in the base frame, for each message: its pose parameter, or TF (use_tf).

    With use_tf and tf2_ros importable, every message's frame_id is looked up in TF (the latest
    base_frame -> frame_id transform, for a fixed rig), and a message whose transform is not (yet) known
    is rejected as `no_transform`. Without tf2_ros the node logs one warning and keeps the parameter.
    The TF path is not tested in this project (tf2_ros is not installable without a ROS distro).
    """

    def __init__(
        self, node: Node, parameter: str, pose: Pose, use_tf: bool, base_frame: str, from_transform: Any
    ) -> None:
        self.pose, self.base_frame, self._from_transform = pose, base_frame, from_transform
        self._buffer: Any = None
        if not use_tf:
            return
        try:
            import tf2_ros  # a ROS distro's package; absent from pip-only installs
        except ImportError:
            node.get_logger().warning(
                f"use_tf is true but tf2_ros is not installed: using the {parameter} parameter "
                f"{pose.as_list()} instead"
            )
            return
        self._lookup_error = tf2_ros.TransformException
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)  # spun by the node's executor

    @property
    def uses_tf(self) -> bool:
        return self._buffer is not None

    def pose_of(self, frame_id: str) -> Pose:
        """The pose of a message's sensor frame (raises ConversionError "no_transform" under TF)."""
        if self._buffer is None:
            return self.pose
        if not frame_id:
            raise ConversionError("no_transform", "the message has no frame_id to look up in TF")
        try:
            transform = self._buffer.lookup_transform(self.base_frame, frame_id, Time()).transform
        except self._lookup_error as err:
            raise ConversionError("no_transform", f"no TF {self.base_frame} -> {frame_id}: {err}") from err
        t, q = transform.translation, transform.rotation
        return self._from_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


def synthetic_person(search: PersonSearch, spacing_m: float = 0.04) -> np.ndarray:
    """(N, 3) base-frame points filling a standing person's box (0.4 x 0.3 x 1.7 m, feet on the floor),
    2 m ahead (or the nearest place inside the search region): what warm-ups run through the search."""
    x = float(np.clip(2.0, search.x_min + 0.3, search.x_max - 0.3))
    y = float(np.clip(0.0, search.y_min + 0.3, search.y_max - 0.3))
    axes = [
        np.arange(x - 0.2, x + 0.2 + 1e-9, spacing_m),
        np.arange(y - 0.15, y + 0.15 + 1e-9, spacing_m),
        np.arange(0.0, 1.7 + 1e-9, spacing_m),
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
