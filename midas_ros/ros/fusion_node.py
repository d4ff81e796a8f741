"""The fusion node: sample sets (midas_ros/sync.py) -> MIDAS on the live subset -> skeleton outputs.

Subscribes (best effort) to midas/sample/{depth,lidar,csi}, the adapters' model-ready samples. Publishes
(topic names in midas_ros/interfaces.py, relative to the node's namespace):

- midas/skeleton/markers  visualization_msgs/MarkerArray: joints (SPHERE_LIST), bones (LINE_LIST) and a
  text label, coloured by the live subset (legend in midas_ros/ros/markers.py); they expire after
  ``marker_lifetime_s``, and are deleted when no sensor is alive or time jumps back.
- midas/skeleton/poses    geometry_msgs/PoseArray: the 17 joints (MM-Fi order), stamped with the set's stamp.
- midas/skeleton/fusion   diagnostic_msgs/DiagnosticArray per skeleton, same stamp: the live subset, the
  weights used, each sample's stamp, why the others are missing, the latencies (ros/fusion_record.py).
- /diagnostics            on a steady timer: per sensor its state (ok, late, dead, never received), age,
                          delay, rate and counters; the fusion's subset, sets, drops and latencies.

The node only wires topics around plain code (midas_ros/ros/fusion.py, which the replay's fast mode
runs too): its parameters are `FUSION_PARAMETERS`; each sample goes to the `FusionPolicy` (the
synchroniser, time jumps, withdrawals) with its arrival time on the node's clock (which follows /clock
under use_sim_time), a timer on that clock polls it so open sets' waits run out, and formed sets go to a
worker thread through a drop-oldest queue of one, so /clock and the samples keep flowing while the model
runs. There `fuse` makes one forward pass per set (the pose and the weights used) and the outputs.

The worker releases the GIL inside each torch op but must win it back hundreds of times per inference;
with Python's default 5 ms switch interval, busy callback threads made that cost up to a second per
frame (measured: 3.7 Hz output, p99 1.7 s). `gil_switch_interval_s` (0.5 ms) brought it to 10 Hz.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from midas_ros import MODALITIES
from midas_ros.interfaces import (
    DIAGNOSTICS_TOPIC,
    FUSION_TOPIC,
    MARKERS_TOPIC,
    POSES_TOPIC,
    SAMPLE_TOPICS,
)
from midas_ros.ros.accounting import InputAccounting
from midas_ros.ros.conversions import ConversionError, msg_to_sample, stamp_to_ns
from midas_ros.ros.fusion import (
    DEVICES,
    FUSION_PARAMETERS,
    FusionPolicy,
    FusionSettings,
    fuse,
    load_predictor,
)
from midas_ros.ros.fusion_record import FusionRecord, fusion_record_msg
from midas_ros.ros.markers import delete_all_markers, subset_label
from midas_ros.ros.nodes import declare_specs, run_node
from midas_ros.ros.worker import Worker
from midas_ros.sync import SampleSet

# Every sample topic carries a PointCloud2: depth and LiDAR x, y, z points, CSI in the CSI layout.
SAMPLE_TYPES: dict[str, type] = {m: PointCloud2 for m in MODALITIES}
CHECKPOINT_NAME = "midas.safetensors"
# Sensor state -> diagnostics level: a late sensor still delivers (WARN), a dead one does not.
STATE_LEVELS = {
    "ok": DiagnosticStatus.OK,
    "late": DiagnosticStatus.WARN,
    "dead": DiagnosticStatus.WARN,
    "never_received": DiagnosticStatus.WARN,
}


def package_file(relative: str) -> Path:
    """A file of share/midas_ros when the package is installed (ament index), else of this source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        return Path(get_package_share_directory("midas_ros")) / relative
    except (ImportError, PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        return Path(__file__).resolve().parents[2] / relative


def default_checkpoint() -> Path:
    """models/midas.safetensors of the installed package, else of this source tree."""
    return package_file(f"models/{CHECKPOINT_NAME}")


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, float):
        value = f"{value:.4g}"
    return KeyValue(key=key, value="n/a" if value is None else str(value))


def _percentile(values: deque[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


class FusionNode(Node):
    """Sync + MIDAS + skeleton outputs; see the module docstring. `predictor` may be injected (tests)."""

    def __init__(self, node_name: str = "fusion_node", *, predictor: Any = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = declare_specs(self, FUSION_PARAMETERS)
        if p["device"] not in DEVICES:
            raise ValueError(f"parameter device must be one of {DEVICES}, got {p['device']!r}")
        if p["diagnostics_period_s"] <= 0:
            raise ValueError("fusion_node: diagnostics_period_s must be > 0")
        self.settings = FusionSettings.from_parameters(p)
        self.frame_id = self.settings.frame_id
        self.diagnostics_period_s: float = p["diagnostics_period_s"]
        if predictor is None:
            checkpoint = Path(p["checkpoint"]) if p["checkpoint"] else default_checkpoint()
            predictor = load_predictor(checkpoint, p["device"], p["torch_threads"])
            self.get_logger().info(f"loaded {checkpoint} on device={p['device']}")
        self.predictor = predictor
        if p["gil_switch_interval_s"] > 0:
            sys.setswitchinterval(p["gil_switch_interval_s"])
        self.accounting = {m: InputAccounting() for m in MODALITIES}

        # Shared by callbacks (any executor thread) and the worker.
        self._lock = threading.Lock()
        self._last_logged: set[str] = set()
        self.published = 0
        self.last_record: FusionRecord | None = None
        self.inference_ms: deque[float] = deque(maxlen=500)
        self.stamp_latency_ms: deque[float] = deque(maxlen=500)
        self.wait_ms: deque[float] = deque(maxlen=500)
        self._clock_seen: tuple[int, float] | None = None  # (node clock, steady time) at the last change

        self._worker: Worker[SampleSet] = Worker("midas_inference", self._infer_and_publish, self._on_error)
        # Sets, time jumps and withdrawals: the plain policy (fusion.py) the replay's fast mode runs too.
        self.policy = FusionPolicy(
            self.settings,
            on_set=self._worker.put,
            on_withdraw=self._withdraw,
            on_time_jump=lambda: self.get_logger().info("time jumped back: synchronisation restarted"),
        )
        self.sync = self.policy.sync
        # Callbacks only convert, place and enqueue: one executor thread serves them all.
        for m in MODALITIES:
            self.create_subscription(
                SAMPLE_TYPES[m], SAMPLE_TOPICS[m], partial(self._on_sample, m), qos_profile_sensor_data
            )
        self.markers_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, 10)
        self.poses_pub = self.create_publisher(PoseArray, POSES_TOPIC, 10)
        self.fusion_pub = self.create_publisher(DiagnosticArray, FUSION_TOPIC, 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        # The poll runs on the node's clock (open sets wait in that time); diagnostics on a steady clock,
        # so they keep coming, marked stale, when /clock stops.
        self.create_timer(self.settings.poll_period_s, self._on_poll)
        self.create_timer(
            self.diagnostics_period_s, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )

    @property
    def sets_formed(self) -> int:
        return self.policy.sets_formed

    # -- callbacks ------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_sample(self, modality: str, msg: PointCloud2, info: dict[str, Any]) -> None:
        arrival_ns = self._now_ns()
        accounting = self.accounting[modality]
        accounting.received(info)
        try:
            sample = msg_to_sample(modality, msg)
        except ConversionError as exc:
            accounting.rejected(exc.reason)
            self._log_once(f"rejected/{modality}/{exc.reason}", f"rejected a {modality} sample: {exc}")
            return
        accounting.processed()
        self.policy.add(modality, stamp_to_ns(msg.header.stamp), sample, arrival_ns)

    def _on_poll(self) -> None:
        self.policy.poll(self._now_ns())

    def _withdraw(self, stamp_ns: int, now_ns: int, reason: str | None) -> None:
        """Delete the skeleton markers instead of leaving the last skeleton standing (the policy's call)."""
        self.markers_pub.publish(delete_all_markers(self.frame_id, Time(nanoseconds=stamp_ns).to_msg()))
        if reason:
            self.get_logger().warning(reason)

    def _log_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._last_logged:
                return
            self._last_logged.add(key)
        self.get_logger().warning(f"{message} (reported once; counted in /diagnostics)")

    def _on_error(self, exc: BaseException) -> None:
        if self.context.ok():  # after shutdown the publishers are gone: nothing to report
            self.get_logger().error(f"inference failed: {exc!r}", throttle_duration_sec=5.0)

    # -- worker ---------------------------------------------------------------------------------------

    def _infer_and_publish(self, sample_set: SampleSet) -> None:
        resets = self.sync.resets
        fused = fuse(sample_set, self.predictor)
        if self.sync.resets != resets:
            return  # time jumped back while the model ran: this result belongs to the old time line
        self.policy.showing()
        lifetime_s = self.settings.marker_lifetime_s
        self.markers_pub.publish(fused.markers(self.frame_id, lifetime_s))
        self.poses_pub.publish(fused.poses(self.frame_id))
        record = fused.record(self._now_ns())
        self.fusion_pub.publish(fusion_record_msg(record, self.frame_id))
        with self._lock:
            self.published += 1
            self.last_record = record
            self.inference_ms.append(record.inference_ms)
            self.stamp_latency_ms.append(record.stamp_to_publish_ms)
            self.wait_ms.append(record.wait_ms)

    # -- diagnostics ----------------------------------------------------------------------------------

    def _clock_stalled_s(self, now_ns: int) -> float:
        """How long (steady seconds) the node's clock has not moved (use_sim_time without /clock)."""
        steady = time.monotonic()
        if self._clock_seen is None or self._clock_seen[0] != now_ns:
            self._clock_seen = (now_ns, steady)
        return steady - self._clock_seen[1]

    def publish_diagnostics(self) -> None:
        """One DiagnosticArray: a status per sensor and one for the fusion itself."""
        now_ns = self._now_ns()
        stalled_s = self._clock_stalled_s(now_ns)
        stale = stalled_s > 2 * self.diagnostics_period_s
        stats = self.sync.stats(now_ns)
        name = self.get_name()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for m in MODALITIES:
            st = stats[m]
            status = DiagnosticStatus(name=f"{name}: {m}", hardware_id="midas_ros")
            status.level = DiagnosticStatus.STALE if stale else STATE_LEVELS[st.state]
            status.message = st.state.replace("_", " ")
            if st.state == "late":
                status.message += (
                    " (samples arrive after their sets were formed: raise max_latency_s to fuse)"
                )
            status.values = [
                _kv("state", st.state),
                _kv("age_s", st.age_s),
                _kv("delay_s", st.delay_s),
                _kv("rate_hz", st.rate_hz),
                _kv("used_sets", st.used_sets),
                _kv("missing_sets", st.missing_sets),
                _kv("late_samples", st.late_samples),
                _kv("duplicates", st.duplicates),
                *[_kv(k, v) for k, v in self.accounting[m].snapshot().as_values().items()],
            ]
            array.status.append(status)

        alive = [m for m in MODALITIES if stats[m].alive]
        fusion = DiagnosticStatus(name=f"{name}: fusion", hardware_id="midas_ros")
        if stale:
            fusion.level = DiagnosticStatus.STALE
            fusion.message = (
                f"the node's clock has not moved for {stalled_s:.1f} s (use_sim_time, no /clock?)"
            )
        elif alive:
            fusion.level, fusion.message = DiagnosticStatus.OK, f"fusing {subset_label(alive)}"
        else:
            fusion.level, fusion.message = DiagnosticStatus.ERROR, "no sensor alive: no skeleton published"
        with self._lock:
            last = self.last_record
            fusion.values = [
                _kv("last_subset", last.label if last else "none"),
                _kv("sets_formed", self.sets_formed),
                _kv("published", self.published),
                _kv("dropped_sets", self._worker.dropped),
                _kv("time_jumps", self.sync.resets),
                _kv("inference_ms_p50", _percentile(self.inference_ms, 50)),
                _kv("inference_ms_max", max(self.inference_ms, default=None)),
                _kv("wait_ms_p50", _percentile(self.wait_ms, 50)),
                _kv("stamp_to_publish_ms_p50", _percentile(self.stamp_latency_ms, 50)),
                _kv("stamp_to_publish_ms_p99", _percentile(self.stamp_latency_ms, 99)),
                *[_kv(f"weight/{m}", last.weights.get(m, 0.0) if last else 0.0) for m in MODALITIES],
            ]
        array.status.append(fusion)
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        worker = getattr(self, "_worker", None)  # absent when __init__ was interrupted
        if worker is not None:
            worker.stop()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: `fusion_node --ros-args --params-file config/midas.yaml`."""
    run_node(FusionNode, args)


if __name__ == "__main__":
    main()
