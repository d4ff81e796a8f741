"""Shared base of the sensor adapter nodes: QoS, a worker, accounting, logging and diagnostics.

An adapter subscribes to one raw sensor topic, turns each message into the model-ready sample with the
same preprocess function as training (midas_ros.preprocess), and publishes it on its sample topic with
the input's header (stamp and frame_id). Topic names are relative (midas_ros.interfaces): remap them to
your driver's topic (``--ros-args -r ouster/points:=/os1/points``) or use the launch file's arguments.

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
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, ClassVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from midas_ros.interfaces import DIAGNOSTICS_TOPIC, SAMPLE_TOPICS, SENSOR_TOPICS
from midas_ros.preprocess import PreprocessError
from midas_ros.ros.accounting import InputAccounting
from midas_ros.ros.conversions import ConversionError, sample_to_msg
from midas_ros.ros.nodes import declare_param
from midas_ros.ros.worker import Worker

SAMPLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class AdapterNode(Node):
    """Base class: subclasses set the class attributes and implement :meth:`to_sample`."""

    modality: ClassVar[str]
    input_type: ClassVar[type]
    output_type: ClassVar[type]

    def __init__(self, node_name: str | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name or f"{self.modality}_adapter", **node_kwargs)
        self.declared_parameters: list[str] = []  # this node's own parameters (config/adapters.yaml)
        qos_depth: int = self.param("qos_depth", 1, "queue depth of the best-effort sensor subscription")
        self.diagnostics_period_s: float = self.param(
            "diagnostics_period_s", 1.0, "seconds between DiagnosticStatus messages on /diagnostics"
        )
        self.log_throttle_s: float = self.param(
            "log_throttle_s", 5.0, "after its first report, a rejection reason is logged at most this often"
        )
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
        """Declare the modality's own parameters (called before the subscription is made)."""

    def warm_up(self) -> None:
        """Pay one-off costs (imports, first calls) at start-up rather than on the first message."""

    def to_sample(self, msg: Any) -> np.ndarray:
        """Validate and preprocess one message; raise ConversionError / PreprocessError to reject it."""
        raise NotImplementedError

    def param(self, name: str, default: Any, description: str) -> Any:
        """Declare a parameter with a description; returns its value (override, YAML, or default)."""
        self.declared_parameters.append(name)
        return declare_param(self, name, default, description)

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
            out = sample_to_msg(self.modality, self.to_sample(msg), msg.header)
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
