"""Shared base of the sensor adapter nodes: QoS, parameters, rejection counting, logging, diagnostics.

An adapter subscribes to one raw sensor topic, turns each message into the model-ready sample with the
same preprocess function as training (midas_ros.preprocess), and publishes it on /midas/sample/<modality>
with the input's header (stamp and frame_id). A message it cannot use is counted by reason ("bad_encoding",
"too_few_points", ...), logged at most once per reason per ``log_throttle_s``, and dropped; the node never
dies on bad input. Once a second each adapter publishes a DiagnosticStatus named "midas_ros/<node name>"
on /diagnostics with its counters.

QoS: the sensor subscription is best effort, keep last ``qos_depth`` (default 1: under overload a stale
frame is dropped rather than queued, which bounds latency), so both best-effort drivers and reliable
publishers (bag players) connect. Samples are published reliable (keep last 5), which both
reliable and best-effort subscribers accept.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, ClassVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from midas_ros.preprocess import PreprocessError
from midas_ros.ros.conversions import ConversionError, sample_to_msg
from midas_ros.ros.nodes import declare_param

SAMPLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
DIAGNOSTICS_TOPIC = "/diagnostics"


class AdapterNode(Node):
    """Base class: subclasses set the class attributes and implement :meth:`to_sample`."""

    modality: ClassVar[str]
    input_type: ClassVar[type]
    output_type: ClassVar[type]
    default_input_topic: ClassVar[str]

    def __init__(self, node_name: str | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name or f"{self.modality}_adapter", **node_kwargs)
        self.declared_parameters: list[str] = []  # this node's own parameters (config/adapters.yaml)
        self.input_topic: str = self.param("input_topic", self.default_input_topic, "raw sensor topic")
        self.output_topic: str = self.param(
            "output_topic", f"/midas/sample/{self.modality}", "model-ready sample topic (fusion node input)"
        )
        qos_depth: int = self.param("qos_depth", 1, "queue depth of the best-effort sensor subscription")
        self.diagnostics_period_s: float = self.param(
            "diagnostics_period_s", 1.0, "seconds between DiagnosticStatus messages on /diagnostics"
        )
        self.log_throttle_s: float = self.param(
            "log_throttle_s", 5.0, "a rejection reason is logged at most once per this many seconds"
        )
        self.declare_modality_parameters()

        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._window_accepted = 0
        self._window_rejected = 0
        self._last_log: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self._last_process_ms = float("nan")
        self._last_input_wall: float | None = None

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos_depth,
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._sub = self.create_subscription(self.input_type, self.input_topic, self._on_message, qos)
        self._pub = self.create_publisher(self.output_type, self.output_topic, SAMPLE_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        # Steady clock: diagnostics keep flowing when /clock (use_sim_time) is paused or absent.
        self._diag_timer = self.create_timer(
            self.diagnostics_period_s,
            self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.get_logger().info(f"{self.input_topic} -> {self.output_topic}")

    # -- for subclasses ---------------------------------------------------------------------------------

    def declare_modality_parameters(self) -> None:
        """Declare the modality's own parameters (called before the subscription is made)."""

    def to_sample(self, msg: Any) -> np.ndarray:
        """Validate and preprocess one message; raise ConversionError / PreprocessError to reject it."""
        raise NotImplementedError

    def param(self, name: str, default: Any, description: str) -> Any:
        """Declare a parameter with a description; returns its value (override, YAML, or default)."""
        self.declared_parameters.append(name)
        return declare_param(self, name, default, description)

    # -- message path -----------------------------------------------------------------------------------

    def _on_message(self, msg: Any) -> None:
        start = time.perf_counter()
        with self._lock:
            self._last_input_wall = time.monotonic()
        try:
            sample = self.to_sample(msg)
            out = sample_to_msg(self.modality, sample, msg.header)
        except (ConversionError, PreprocessError) as err:
            self._reject(err.reason, str(err))
            return
        except Exception as err:  # a bug or an input nobody foresaw must not kill the node
            self._reject("internal_error", f"{type(err).__name__}: {err}")
            return
        self._pub.publish(out)
        with self._lock:
            self.accepted += 1
            self._window_accepted += 1
            self._last_process_ms = (time.perf_counter() - start) * 1e3

    def _reject(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.rejected[reason] += 1
            self._window_rejected += 1
            last = self._last_log.get(reason)
            if last is not None and now - last < self.log_throttle_s:
                self._unlogged[reason] += 1
                return
            self._last_log[reason] = now
            suppressed = self._unlogged.pop(reason, 0)
        more = f" (+{suppressed} more since the last report)" if suppressed else ""
        self.get_logger().warning(f"rejected a message on {self.input_topic} [{reason}]: {detail}{more}")

    # -- diagnostics ------------------------------------------------------------------------------------

    def diagnostic_status(self) -> DiagnosticStatus:
        """This adapter's status now (and restarts the per-period counters)."""
        with self._lock:
            accepted, rejected = self.accepted, dict(self.rejected)
            window_ok, window_bad = self._window_accepted, self._window_rejected
            self._window_accepted = self._window_rejected = 0
            last_input = self._last_input_wall
            process_ms = self._last_process_ms
        silent = last_input is None or time.monotonic() - last_input > 2 * self.diagnostics_period_s
        if silent:
            level, message = DiagnosticStatus.STALE, f"no messages on {self.input_topic}"
        elif window_bad:
            level = DiagnosticStatus.WARN
            message = f"{window_bad} rejected, {window_ok} accepted in the last period"
        else:
            level, message = DiagnosticStatus.OK, f"{window_ok} accepted in the last period"
        values = {
            "accepted": accepted,
            "rejected": sum(rejected.values()),
            **{f"rejected/{reason}": n for reason, n in sorted(rejected.items())},
            "rate_hz": f"{window_ok / self.diagnostics_period_s:.2f}",
            "last_process_ms": f"{process_ms:.2f}",
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

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray(status=[self.diagnostic_status()])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
