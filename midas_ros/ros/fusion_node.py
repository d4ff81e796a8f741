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

The node only wires topics: each sample goes to the synchronizer with its arrival time on the node's
clock (which follows /clock under use_sim_time), a timer on that clock lets open sets' waits run out,
and formed sets go to a worker thread through a drop-oldest queue of one, so /clock and the samples keep
flowing while the model runs. One forward pass per set gives the pose and the weights used.

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
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from midas_ros import MODALITIES
from midas_ros.interfaces import (
    DIAGNOSTICS_TOPIC,
    FUSION_TOPIC,
    MARKERS_TOPIC,
    POSES_TOPIC,
    SAMPLE_TOPICS,
)
from midas_ros.rig import BASE_FRAME
from midas_ros.ros.accounting import InputAccounting
from midas_ros.ros.conversions import ConversionError, msg_to_sample, stamp_to_ns
from midas_ros.ros.fusion_record import FusionRecord, fusion_record_msg
from midas_ros.ros.markers import delete_all_markers, pose_array, skeleton_markers, subset_label
from midas_ros.ros.nodes import declare_param, run_node
from midas_ros.ros.worker import Worker
from midas_ros.sync import ModalityConfig, SampleSet, StalenessSynchronizer

SAMPLE_TYPES: dict[str, type] = {"depth": Image, "lidar": PointCloud2, "csi": PointCloud2}
CHECKPOINT_NAME = "midas.safetensors"
DEVICES = ("auto", "cuda", "cpu")
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
        p = self._declare_parameters()
        if p["device"] not in DEVICES:
            raise ValueError(f"parameter device must be one of {DEVICES}, got {p['device']!r}")
        if p["poll_period_s"] <= 0 or p["diagnostics_period_s"] <= 0 or p["max_latency_s"] < 0:
            raise ValueError("poll_period_s and diagnostics_period_s must be > 0, max_latency_s >= 0")
        self.frame_id: str = p["frame_id"]
        self.lifetime_s: float = p["marker_lifetime_s"]
        self.diagnostics_period_s: float = p["diagnostics_period_s"]
        self.configs = {
            m: ModalityConfig(timeout_s=p[f"{m}.timeout_s"], tolerance_s=p[f"{m}.tolerance_s"])
            for m in MODALITIES
        }
        if predictor is None:
            from midas_ros.model import PosePredictor  # torch is heavy: only when the node really runs

            checkpoint = Path(p["checkpoint"]) if p["checkpoint"] else default_checkpoint()
            if not checkpoint.exists():
                raise FileNotFoundError(
                    f"checkpoint {checkpoint} not found: run midas_train or set the 'checkpoint' parameter"
                )
            threads = p["torch_threads"] or None
            predictor = PosePredictor.from_checkpoint(checkpoint, device=p["device"], num_threads=threads)
            self.get_logger().info(f"loaded {checkpoint} on device={p['device']}")
        self.predictor = predictor
        if p["gil_switch_interval_s"] > 0:
            sys.setswitchinterval(p["gil_switch_interval_s"])
        self.sync = StalenessSynchronizer(
            self.configs, max_latency_s=p["max_latency_s"], jump_back_s=p["jump_back_s"]
        )
        self.accounting = {m: InputAccounting() for m in MODALITIES}

        # Shared by callbacks (any executor thread) and the worker.
        self._lock = threading.Lock()
        self._seen_resets = 0
        self._showing = False
        self._last_logged: set[str] = set()
        self.sets_formed = 0
        self.published = 0
        self.last_record: FusionRecord | None = None
        self.inference_ms: deque[float] = deque(maxlen=500)
        self.stamp_latency_ms: deque[float] = deque(maxlen=500)
        self.wait_ms: deque[float] = deque(maxlen=500)
        self._clock_seen: tuple[int, float] | None = None  # (node clock, steady time) at the last change

        self._worker: Worker[SampleSet] = Worker("midas_inference", self._infer_and_publish, self._on_error)
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
        self.create_timer(p["poll_period_s"], self._on_poll)
        self.create_timer(
            self.diagnostics_period_s, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )

    def _declare_parameters(self) -> dict[str, Any]:
        specs: list[tuple[str, Any, str]] = [
            (
                "checkpoint",
                "",
                "MIDAS checkpoint (.safetensors); empty = <share>/midas_ros/models/midas.safetensors",
            ),
            ("device", "auto", "inference device: auto, cuda or cpu"),
            (
                "torch_threads",
                1,
                "torch CPU threads for inference (0 = torch's default); 1 leaves cores to the adapters",
            ),
            (
                "frame_id",
                BASE_FRAME,
                "frame of the skeleton markers and poses: the base frame the adapters bring every input to",
            ),
            (
                "gil_switch_interval_s",
                0.0005,
                "Python's thread switch interval for this process (0 = leave it): short so the inference "
                "thread is not starved by the callback threads",
            ),
            (
                "max_latency_s",
                0.05,
                "a sample set waits at most this long after its first sample arrived for the other live "
                "sensors; a sensor whose samples arrive later than this after their set opened is 'late' "
                "and not waited for (raise it to the lag of a slow sensor to fuse it)",
            ),
            ("jump_back_s", 1.0, "stamps or the clock this far back restart synchronisation"),
            ("poll_period_s", 0.01, "how often open sets' waits are checked (node clock)"),
            ("marker_lifetime_s", 0.25, "markers expire after this long (about 2.5 frames at 10 Hz)"),
            ("diagnostics_period_s", 1.0, "period of the /diagnostics status (steady clock)"),
        ]
        for m in MODALITIES:
            specs.append((f"{m}.timeout_s", 0.5, f"{m}: no arrival for this long (s) -> dead"))
            specs.append((f"{m}.tolerance_s", 0.05, f"{m}: largest stamp offset (s) from the set's stamp"))
        return {name: declare_param(self, name, default, text) for name, default, text in specs}

    # -- callbacks ------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_sample(self, modality: str, msg: Image | PointCloud2, info: dict[str, Any]) -> None:
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
        self._dispatch(self.sync.add(modality, stamp_to_ns(msg.header.stamp), sample, arrival_ns))

    def _on_poll(self) -> None:
        now_ns = self._now_ns()
        self._dispatch(self.sync.poll(now_ns))
        if not any(s.alive for s in self.sync.stats(now_ns).values()):
            self._withdraw("no sensor alive: skeleton withdrawn", now_ns)

    def _dispatch(self, sets: list[SampleSet]) -> None:
        resets = self.sync.resets
        with self._lock:
            jumped = resets != self._seen_resets
            self._seen_resets = resets
            self.sets_formed += len(sets)
        if jumped:
            self.get_logger().info("time jumped back: synchronisation restarted")
            self._withdraw(None, 0)
        for sample_set in sets:
            self._worker.put(sample_set)

    def _withdraw(self, message: str | None, stamp_ns: int) -> None:
        """Delete the skeleton markers instead of leaving the last skeleton standing."""
        with self._lock:
            showing, self._showing = self._showing, False
        if showing:
            self.markers_pub.publish(delete_all_markers(self.frame_id, Time(nanoseconds=stamp_ns).to_msg()))
            if message:
                self.get_logger().warning(message)

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
        start = time.perf_counter()
        prediction = self.predictor.predict(sample_set.samples)
        inference_ms = (time.perf_counter() - start) * 1e3
        if self.sync.resets != resets:
            return  # time jumped back while the model ran: this result belongs to the old time line
        present = tuple(m for m in MODALITIES if m in sample_set.samples)
        joints = np.asarray(prediction.joints, dtype=np.float64)
        stamp = Time(nanoseconds=sample_set.stamp_ns).to_msg()
        with self._lock:
            self._showing = True
        self.markers_pub.publish(
            skeleton_markers(joints, present, frame_id=self.frame_id, stamp=stamp, lifetime_s=self.lifetime_s)
        )
        self.poses_pub.publish(pose_array(joints, frame_id=self.frame_id, stamp=stamp))
        record = FusionRecord(
            stamp_ns=sample_set.stamp_ns,
            subset=present,
            weights={m: float(w) for m, w in prediction.weights.items()},
            sample_stamps_ns=dict(sample_set.stamps_ns),
            missing=dict(sample_set.missing),
            wait_ms=sample_set.wait_s * 1e3,
            inference_ms=inference_ms,
            stamp_to_publish_ms=(self._now_ns() - sample_set.stamp_ns) / 1e6,
        )
        self.fusion_pub.publish(fusion_record_msg(record, self.frame_id))
        with self._lock:
            self.published += 1
            self.last_record = record
            self.inference_ms.append(inference_ms)
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
