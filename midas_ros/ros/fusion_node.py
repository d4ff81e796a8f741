"""The fusion node: staleness-aware sample sets -> MIDAS on the live subset -> skeleton + diagnostics.

Subscribes (best effort) to /midas/sample/{depth,lidar,csi} (the adapters' model-ready samples) and
/diagnostics (to fold in the adapters' rejection counters). Publishes:

- /midas/skeleton/markers  visualization_msgs/MarkerArray: joints (SPHERE_LIST), bones (LINE_LIST) and a
  text label, coloured by the live subset (legend in midas_ros/ros/markers.py: depth red, lidar green,
  csi blue, mixed additively, all three white); they expire after `marker_lifetime_periods` periods.
- /midas/skeleton/poses    geometry_msgs/PoseArray: the 17 joints (MM-Fi order), stamped with the set's stamp.
- /diagnostics             per modality: alive, rate, age, sets used/missing, rejected/<reason>;
                           fusion: subset, modality weights, inference and stamp-to-publish latency.

When is a set formed? As soon as every live sensor has delivered a sample newer than the last set (low
latency), or, when some live sensor is late, once the oldest waiting sample is `max_wait_s` old (a
watchdog timer on the node's clock, so it follows /clock under use_sim_time). A sensor silent for its
`timeout_s` is dropped from the sets (sync.py) and MIDAS runs on the others. With no sensor alive no
skeleton is published (markers are deleted) and the diagnostics say so. A backward time jump (a bag
looping) resets synchronisation.

Inference never runs in a subscription or timer callback: sets go to a worker thread through a
drop-oldest queue of one, so /clock, the samples and the watchdog keep flowing while the model runs.
The worker releases the GIL inside each torch op but must win it back hundreds of times per inference;
with Python's default 5 ms switch interval, busy callback threads made that cost up to a second per
frame (measured: 3.7 Hz output, p99 1.7 s). `gil_switch_interval_s` (0.5 ms) brought it to 10 Hz.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from midas_ros import MODALITIES
from midas_ros.ros.conversions import ConversionError, msg_to_sample, stamp_to_ns
from midas_ros.ros.markers import delete_all_markers, pose_array, skeleton_markers, subset_label
from midas_ros.ros.nodes import declare_param, run_node
from midas_ros.sync import NS_PER_S, ModalityConfig, SampleSet, StalenessSynchronizer

SAMPLE_TYPES: dict[str, type] = {"depth": Image, "lidar": PointCloud2, "csi": PointCloud2}
SAMPLE_TOPICS: dict[str, str] = {m: f"/midas/sample/{m}" for m in MODALITIES}
MARKERS_TOPIC = "/midas/skeleton/markers"
POSES_TOPIC = "/midas/skeleton/poses"
DIAGNOSTICS_TOPIC = "/diagnostics"
CHECKPOINT_NAME = "midas.safetensors"
DEVICES = ("auto", "cuda", "cpu")

T = TypeVar("T")


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


class LatestSlot(Generic[T]):
    """A drop-oldest queue of one: `put` replaces an item nobody took yet (counted in `dropped`)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to `timeout` s; None on timeout or after `close`."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, float):
        value = f"{value:.4g}"
    return KeyValue(key=key, value=str(value))


class FusionNode(Node):
    """Sync + MIDAS + skeleton outputs; see the module docstring. `predictor` may be injected (tests)."""

    def __init__(self, node_name: str = "fusion_node", *, predictor: Any = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self._declare_parameters()
        if p["device"] not in DEVICES:
            raise ValueError(f"parameter device must be one of {DEVICES}, got {p['device']!r}")
        if p["output_rate_hz"] <= 0 or p["max_wait_s"] < 0 or p["diagnostics_period_s"] <= 0:
            raise ValueError("output_rate_hz and diagnostics_period_s must be > 0, max_wait_s >= 0")
        self.frame_id: str = p["frame_id"]
        self.period_s = 1.0 / p["output_rate_hz"]
        self.lifetime_s = p["marker_lifetime_periods"] * self.period_s
        self.max_wait_ns = int(p["max_wait_s"] * NS_PER_S)
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
        self.sync = StalenessSynchronizer(self.configs, jump_back_s=p["jump_back_s"])

        # State shared by callbacks (any executor thread) and the worker, under one lock.
        self._lock = threading.Lock()
        self._newest_ns: dict[str, int] = {}
        self._last_set_ns: int | None = None
        self._pending_since_ns: int | None = None
        self._seen_resets = 0
        self._showing = False
        self.rejected: dict[str, dict[str, int]] = {m: {} for m in MODALITIES}  # this node's own
        self.upstream_rejected: dict[str, dict[str, int]] = {m: {} for m in MODALITIES}  # adapters'
        self.sets_formed = 0
        self.published = 0
        self.time_jumps = 0
        self.last_subset: tuple[str, ...] = ()
        self.last_weights: dict[str, float] = {}
        self.inference_ms: deque[float] = deque(maxlen=200)
        self.stamp_latency_ms: deque[float] = deque(maxlen=200)

        # Samples in a reentrant group (conversion only, any thread); the watchdog and diagnostics in their
        # own groups so they always get a thread.
        samples_group = ReentrantCallbackGroup()
        for m in MODALITIES:
            self.create_subscription(
                SAMPLE_TYPES[m],
                SAMPLE_TOPICS[m],
                partial(self._on_sample, m),
                qos_profile_sensor_data,
                callback_group=samples_group,
            )
        self.create_subscription(
            DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 20, callback_group=samples_group
        )
        self.markers_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, 10)
        self.poses_pub = self.create_publisher(PoseArray, POSES_TOPIC, 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        # Timers use the node's clock: under use_sim_time they follow /clock.
        watchdog_s = max(min(p["max_wait_s"], self.period_s) / 2, 0.005)
        self.create_timer(watchdog_s, self._on_watchdog, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(
            p["diagnostics_period_s"],
            self.publish_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )

        self._slot: LatestSlot[SampleSet] = LatestSlot()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="midas_inference", daemon=True)
        self._worker.start()

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
            ("frame_id", "midas_room", "frame of the skeleton markers and poses"),
            (
                "gil_switch_interval_s",
                0.0005,
                "Python's thread switch interval for this process (0 = leave it): short so the inference "
                "thread is not starved by the callback threads",
            ),
            ("output_rate_hz", 10.0, "expected output rate; sets the watchdog and the marker lifetime"),
            ("max_wait_s", 0.05, "how long a started set waits for the other live sensors"),
            ("jump_back_s", 1.0, "a stamp or clock this far behind the newest resets synchronisation"),
            ("marker_lifetime_periods", 2.5, "markers expire after this many output periods"),
            ("diagnostics_period_s", 1.0, "period of the /diagnostics status"),
        ]
        for m in MODALITIES:
            specs.append((f"{m}.timeout_s", 0.5, f"{m}: silent this long (s) -> missing"))
            specs.append((f"{m}.tolerance_s", 0.05, f"{m}: largest stamp offset (s) from the set's stamp"))
        return {name: declare_param(self, name, default, text) for name, default, text in specs}

    # -- callbacks ------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_sample(self, modality: str, msg: Image | PointCloud2) -> None:
        try:
            sample = msg_to_sample(modality, msg)
        except ConversionError as exc:
            with self._lock:
                counts = self.rejected[modality]
                counts[exc.reason] = counts.get(exc.reason, 0) + 1
            self.get_logger().warning(
                f"rejected a {modality} sample ({exc.reason}): {exc}", throttle_duration_sec=5.0
            )
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        now_ns = self._now_ns()
        self.sync.add(modality, stamp_ns, sample)
        with self._lock:
            self._check_resets()
            self._newest_ns[modality] = max(stamp_ns, self._newest_ns.get(modality, stamp_ns))
            if self._last_set_ns is None or stamp_ns > self._last_set_ns:
                if self._pending_since_ns is None:
                    self._pending_since_ns = now_ns
                if self._complete(now_ns):
                    self._form_set(now_ns)

    def _on_watchdog(self) -> None:
        now_ns = self._now_ns()
        with self._lock:
            pending = self._pending_since_ns
            # Nothing pending: a poll only refreshes ages and catches clock jumps. Something pending: form
            # the set once it has waited max_wait_s for the late sensors.
            if pending is None or now_ns - pending >= self.max_wait_ns:
                self._form_set(now_ns)
            alive = any(s.alive for s in self.sync.stats().values())
            if not alive and self._showing:
                # Nothing alive: take the skeleton down instead of leaving the last one standing.
                self._showing = False
                self.markers_pub.publish(delete_all_markers(self.frame_id, Time(nanoseconds=now_ns).to_msg()))
                self.get_logger().warning("no sensor alive: skeleton withdrawn")

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = f"{self.get_name()}:"
        for status in msg.status:
            if status.name.startswith(prefix):
                continue
            # The adapters name their status "midas_ros/<modality>_adapter"; the hardware_id is a fallback.
            modality = next((m for m in MODALITIES if m in status.name.lower()), None) or next(
                (m for m in MODALITIES if m in status.hardware_id.lower()), None
            )
            if modality is None:
                continue
            for kv in status.values:
                if kv.key.startswith("rejected/"):
                    try:
                        count = int(float(kv.value))
                    except ValueError:
                        continue
                    with self._lock:
                        self.upstream_rejected[modality][kv.key.removeprefix("rejected/")] = count

    # -- set formation (lock held) --------------------------------------------------------------------

    def _complete(self, now_ns: int) -> bool:
        """Every live sensor has a sample newer than the last set."""
        for m, newest in self._newest_ns.items():
            alive = now_ns - newest <= self.configs[m].timeout_s * NS_PER_S
            if alive and self._last_set_ns is not None and newest <= self._last_set_ns:
                return False
        return True

    def _check_resets(self) -> None:
        if self.sync.resets != self._seen_resets:
            self._seen_resets = self.sync.resets
            self.time_jumps += 1
            self._newest_ns.clear()
            self._last_set_ns = None
            self._pending_since_ns = None
            self.get_logger().info("time jumped back: synchronisation reset")
            if self._showing:
                self._showing = False
                self.markers_pub.publish(delete_all_markers(self.frame_id, Time(nanoseconds=0).to_msg()))

    def _form_set(self, now_ns: int) -> None:
        sample_set = self.sync.poll(now_ns)
        self._check_resets()
        self._pending_since_ns = None
        if sample_set is None:
            return
        self._last_set_ns = sample_set.stamp_ns
        self.sets_formed += 1
        self._slot.put(sample_set)

    # -- worker ---------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            sample_set = self._slot.get(timeout=0.2)
            if sample_set is None:
                continue
            try:
                self._infer_and_publish(sample_set)
            except Exception as exc:  # keep the node alive; the error is visible in the log
                if self._stop.is_set() or not self.context.ok():
                    return  # shutting down (Ctrl-C): publishers are gone, nothing to report
                self.get_logger().error(f"inference failed: {exc!r}", throttle_duration_sec=5.0)

    def _infer_and_publish(self, sample_set: SampleSet) -> None:
        present = tuple(m for m in MODALITIES if m in sample_set.samples)
        t0 = time.perf_counter()
        joints = np.asarray(self.predictor.predict(dict(sample_set.samples)), dtype=np.float64)
        inference_ms = (time.perf_counter() - t0) * 1e3
        weights = self.predictor.modality_weights(sample_set.present(MODALITIES))
        if not isinstance(weights, Mapping):
            weights = dict(zip(MODALITIES, np.asarray(weights, dtype=float).reshape(-1), strict=True))
        stamp = Time(nanoseconds=sample_set.stamp_ns).to_msg()
        with self._lock:
            if self._last_set_ns is None:  # a reset happened while we were computing: drop the stale result
                return
            self._showing = True
        self.markers_pub.publish(
            skeleton_markers(joints, present, frame_id=self.frame_id, stamp=stamp, lifetime_s=self.lifetime_s)
        )
        self.poses_pub.publish(pose_array(joints, frame_id=self.frame_id, stamp=stamp))
        with self._lock:
            self.published += 1
            self.last_subset = present
            self.last_weights = {m: float(w) for m, w in weights.items()}
            self.inference_ms.append(inference_ms)
            self.stamp_latency_ms.append((self._now_ns() - sample_set.stamp_ns) / 1e6)

    # -- diagnostics ----------------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """One DiagnosticArray: a status per modality and one for the fusion itself."""
        stats = self.sync.stats()
        name = self.get_name()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            for m in MODALITIES:
                st = stats[m]
                status = DiagnosticStatus(name=f"{name}: {m}", hardware_id="midas_ros")
                status.level = DiagnosticStatus.OK if st.alive else DiagnosticStatus.WARN
                status.message = (
                    "alive" if st.alive else ("never received" if st.received == 0 else "missing")
                )
                status.values = [
                    _kv("alive", st.alive),
                    _kv("rate_hz", st.rate_hz if st.rate_hz is not None else "n/a"),
                    _kv("age_s", st.last_age_s if st.last_age_s is not None else "n/a"),
                    _kv("received", st.received),
                    _kv("used_sets", st.used_sets),
                    _kv("missing_sets", st.missing_sets),
                    _kv("duplicates", st.duplicates),
                ]
                rejected = dict(self.upstream_rejected[m])
                for reason, count in self.rejected[m].items():
                    rejected[reason] = rejected.get(reason, 0) + count
                status.values += [_kv(f"rejected/{r}", c) for r, c in sorted(rejected.items())]
                array.status.append(status)

            alive = [m for m in MODALITIES if stats[m].alive]
            fusion = DiagnosticStatus(name=f"{name}: fusion", hardware_id="midas_ros")
            if alive:
                fusion.level, fusion.message = DiagnosticStatus.OK, f"fusing {subset_label(alive)}"
            else:
                fusion.level, fusion.message = (
                    DiagnosticStatus.ERROR,
                    "no sensor alive: no skeleton published",
                )
            inference = np.asarray(self.inference_ms) if self.inference_ms else np.zeros(1)
            latency = np.asarray(self.stamp_latency_ms) if self.stamp_latency_ms else np.zeros(1)
            fusion.values = [
                _kv("subset", subset_label(self.last_subset)),
                _kv("sets_formed", self.sets_formed),
                _kv("published", self.published),
                _kv("dropped_sets", self._slot.dropped),
                _kv("time_jumps", self.time_jumps),
                _kv("inference_ms_p50", float(np.percentile(inference, 50))),
                _kv("inference_ms_max", float(inference.max())),
                _kv("stamp_to_publish_ms_p50", float(np.percentile(latency, 50))),
                *[_kv(f"weight/{m}", self.last_weights.get(m, 0.0)) for m in MODALITIES],
            ]
            array.status.append(fusion)
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: `fusion_node --ros-args --params-file config/midas.yaml`."""

    def spin_threaded(node: Node) -> None:
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()

    run_node(FusionNode, args, spin=spin_threaded)


if __name__ == "__main__":
    main()
