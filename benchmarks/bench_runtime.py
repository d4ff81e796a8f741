"""The runtime on real-size sensor streams, through the real `bringup` process.

A "drivers" process (this script) publishes what real drivers publish, at 10 Hz on wall time: RealSense
848 x 480 16UC1 depth (holes and the invalid left band), an Ouster 64 x 1024 organised cloud
(point_step 48, zeros for no return) and CSI, rendered by the simulator (midas_ros/sim/drivers.py). It
runs `python -m midas_ros.ros.bringup` (adapters + fusion in one process) and listens to its skeleton
markers, fusion records and /diagnostics. Phases, on one bringup:

1. steady: all three sensors; skeletons a second, stamp-to-markers latency, sets dropped, and every
   input frame accounted for (sent = lost before the callback + received; received = processed +
   rejected + dropped because busy) from the adapters' own diagnostics;
2. lag: the LiDAR's scans arrive 0.5 s after their stamps (default max_latency_s): the other sensors'
   latency, the LiDAR's state (late, never dead);
3. jump: every sensor's stamps jump 20 s back and stay there while the clock goes on: time to the first
   skeleton on the new time line;
4. sensor death: each sensor in turn stops for `--dead-s` and comes back: the first skeleton without it,
   the longest gap in the stream, when /diagnostics (1 s period) says it is dead;
5. huge cloud: one 2M-point cloud on the LiDAR topic between the frames: what the adapter did with it,
   the longest gap in the skeleton stream around it;
then a second bringup with max_latency_s 0.6 repeats the lag phase (the LiDAR should be fused).
It also times the LiDAR adapter's handling of the 2M-point cloud in this process (no DDS).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_runtime.py [--steady-s 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The project's Fast DDS profile and a domain of our own, before rclpy is imported.
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", "77")

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from midas_ros import MODALITIES  # noqa: E402
from midas_ros.demo.cloud_layouts import driver_cloud  # noqa: E402
from midas_ros.demo.scenario import DEFAULT_RIG, camera_info_message, rig_parameters  # noqa: E402
from midas_ros.interfaces import (  # noqa: E402
    DEPTH_CAMERA_INFO_TOPIC,
    DIAGNOSTICS_TOPIC,
    FUSION_TOPIC,
    MARKERS_TOPIC,
    SENSOR_TOPICS,
)
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2, stamp_to_ns  # noqa: E402
from midas_ros.ros.fusion_record import parse_fusion_record  # noqa: E402
from midas_ros.sim.drivers import D435, DriverSimulator  # noqa: E402
from midas_ros.sim.generate import simulate_sequence  # noqa: E402
from midas_ros.sim.rigs import rig_by_name  # noqa: E402

PERIOD_S = 0.1
NS = 1_000_000_000
SUBJECT, ACTION = 40, 14  # a held-out subject
RIG = rig_by_name(DEFAULT_RIG)


def sensor_messages(frames: int) -> list[dict[str, Image | PointCloud2]]:
    """Real-size driver messages of `frames` simulated frames (stamps are set when published), from
    sensors at the poses of the demo's rig (held out of training; its camera is the D435 at 848 x 480)."""
    sim = DriverSimulator(SUBJECT, ACTION, frames, seed=0, rig=RIG)
    csi = simulate_sequence(SUBJECT, ACTION, frames, 0)
    out = []
    for f in range(frames):
        depth = array_to_image(sim.depth_frame(f))
        depth.header.frame_id = "camera_depth_optical_frame"
        cloud = driver_cloud(sim.ouster_scan(f), "ouster")
        cloud.header.frame_id = "os_lidar"
        wifi = csi_to_pointcloud2(csi.csi_amplitude[f], csi.csi_phase[f])
        wifi.header.frame_id = "wifi_csi"
        out.append({"depth": depth, "lidar": cloud, "csi": wifi})
    return out


def huge_cloud(points: int = 2_000_000) -> PointCloud2:
    """A 2M-point unorganised cloud (an accumulated map, a misconfigured driver), x, y, z float32."""
    rng = np.random.default_rng(0)
    xyz = rng.uniform([0.5, -3, -1.2], [6, 3, 1], (points, 3)).astype(np.float32)
    return driver_cloud(xyz, "velodyne")


@dataclass
class Skeleton:
    received_s: float  # wall time (s) when the markers arrived
    stamp_ns: int
    latency_ms: float  # wall clock at arrival minus the set's stamp


@dataclass
class Probe:
    """Publishes the sensor streams and records what comes back."""

    node: Node
    frames: list[dict[str, Image | PointCloud2]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    skeletons: list[Skeleton] = field(default_factory=list)
    records: list = field(default_factory=list)
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # status name -> values
    states: list[tuple[float, str, str]] = field(default_factory=list)  # (time, modality, state)
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0))
    stamp_shift_ns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0))
    paused: threading.Event = field(default_factory=threading.Event)
    silent: set[str] = field(default_factory=set)  # sensors that stopped publishing

    def __post_init__(self) -> None:
        # Drivers publish best effort, keep last 5 (SensorDataQoS), as realsense2_camera and ouster-ros do.
        self.pubs = {
            m: self.node.create_publisher(type(self.frames[0][m]), SENSOR_TOPICS[m], qos_profile_sensor_data)
            for m in MODALITIES
        }
        # camera_info with every depth frame, as realsense2_camera publishes it
        self.info_pub = self.node.create_publisher(
            CameraInfo, DEPTH_CAMERA_INFO_TOPIC, qos_profile_sensor_data
        )
        self.camera_info = camera_info_message(RIG, 0)
        assert RIG.depth_intrinsics == D435.intrinsics
        self.node.create_subscription(MarkerArray, MARKERS_TOPIC, self._on_markers, 50)
        self.node.create_subscription(DiagnosticArray, FUSION_TOPIC, self._on_record, 50)
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 50)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, daemon=True)

    def _on_markers(self, msg: MarkerArray) -> None:
        now_ns = time.time_ns()
        if msg.markers and msg.markers[0].action == Marker.ADD:
            stamp = stamp_to_ns(msg.markers[0].header.stamp)
            with self.lock:
                self.skeletons.append(Skeleton(time.monotonic(), stamp, (now_ns - stamp) / 1e6))

    def _on_record(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.records.append((time.monotonic(), parse_fusion_record(msg)))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                self.diagnostics[status.name] = values
                if status.name.startswith("fusion_node: ") and "state" in values:
                    self.states.append((time.monotonic(), status.name.split(": ")[1], values["state"]))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def publish_once(self, modality: str, msg: PointCloud2 | Image) -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), NS)
        self.pubs[modality].publish(msg)

    def _publish_loop(self) -> None:
        k = 0
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if not self.paused.is_set():
                now = time.time_ns()
                for m in MODALITIES:
                    if m in self.silent:
                        continue
                    msg = self.frames[k % len(self.frames)][m]
                    stamp = now + self.stamp_shift_ns[m]
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
                    if m == "depth":
                        self.camera_info.header.stamp = msg.header.stamp
                        self.info_pub.publish(self.camera_info)
                    self.pubs[m].publish(msg)
                    self.sent[m] += 1
                k += 1
            next_tick += PERIOD_S
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def since(self, t0: float) -> list[Skeleton]:
        with self.lock:
            return [s for s in self.skeletons if s.received_s >= t0]

    def records_since(self, t0: float) -> list:
        with self.lock:
            return [r for t, r in self.records if t >= t0]


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def latency_summary(skeletons: list[Skeleton], duration_s: float) -> dict[str, float]:
    lat = np.array([s.latency_ms for s in skeletons]) if skeletons else np.zeros(1)
    times = np.array([s.received_s for s in skeletons])
    return {
        "skeletons": len(skeletons),
        "skeletons_per_s": len(skeletons) / duration_s,
        "stamp_to_markers_ms_p50": float(np.percentile(lat, 50)),
        "stamp_to_markers_ms_p99": float(np.percentile(lat, 99)),
        "stamp_to_markers_ms_max": float(lat.max()),
        "largest_gap_s": float(np.diff(times).max()) if len(times) > 1 else None,
    }


def accounting(probe: Probe, sent_before: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per adapter: sent by us vs its own counters (cumulative since bringup started)."""
    out = {}
    with probe.lock:
        for m in MODALITIES:
            values = probe.diagnostics.get(f"midas_ros/{m}_adapter", {})
            counts = {
                key: int(values.get(key, -1))
                for key in ("received", "processed", "rejected", "dropped_busy", "lost_before_callback")
            }
            counts["sent"] = probe.sent[m] - sent_before[m]
            out[m] = counts
    return out


def start_bringup(max_latency_s: float | None, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "midas_ros.ros.bringup", "--device", "cpu"]
    override = Path(tempfile.mkdtemp()) / "rig.yaml"
    # the sensors' poses on the rig, as a user sets them
    sections = {node: dict(values) for node, values in rig_parameters(RIG).items()}
    if max_latency_s is not None:
        sections["fusion_node"] = {"max_latency_s": max_latency_s}
    override.write_text(
        "".join(
            f"{node}:\n  ros__parameters:\n" + "".join(f"    {k}: {v}\n" for k, v in values.items())
            for node, values in sections.items()
        )
    )
    args += ["--ros-args", "--params-file", str(override)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_bringup(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


def connect(probe: Probe) -> None:
    ok = wait_for(
        lambda: (
            all(p.get_subscription_count() > 0 for p in probe.pubs.values())
            and probe.node.count_publishers(MARKERS_TOPIC) > 0
        ),
        60,
    )
    if not ok:
        raise RuntimeError("bringup never subscribed to the sensor topics")


def run_phase(probe: Probe, seconds: float, warmup_s: float = 0.0) -> tuple[float, float]:
    time.sleep(warmup_s)
    t0 = time.monotonic()
    time.sleep(seconds)
    return t0, time.monotonic() - t0


def first_bringup(probe: Probe, args: argparse.Namespace, log: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    proc = start_bringup(None, log)
    try:
        connect(probe)
        probe.start()
        time.sleep(3.0)  # warm-up (first inference, allocations): not measured
        sent0 = dict(probe.sent)
        with probe.lock:
            base = {m: dict(probe.diagnostics.get(f"midas_ros/{m}_adapter", {})) for m in MODALITIES}
            fusion0 = dict(probe.diagnostics.get("fusion_node: fusion", {}))
        t0, duration = run_phase(probe, args.steady_s)
        steady = probe.since(t0)
        records = probe.records_since(t0)
        time.sleep(2.5)  # let the adapters' diagnostics report the end of the phase
        probe.paused.set()
        time.sleep(2.5)
        counts = accounting(probe, {m: 0 for m in MODALITIES})
        with probe.lock:
            fusion = dict(probe.diagnostics.get("fusion_node: fusion", {}))
        with probe.lock:
            fusion_after = dict(probe.diagnostics.get("fusion_node: fusion", {}))
        results["steady"] = {
            **latency_summary(steady, duration),
            "dropped_sets_in_phase": int(fusion_after.get("dropped_sets", -1))
            - int(fusion0.get("dropped_sets", 0)),
            "timeline": [(round(s.received_s - t0, 3), round(s.latency_ms, 1)) for s in steady],
            "records": [
                (round(r.wait_ms, 1), round(r.inference_ms, 1), round(r.stamp_to_publish_ms, 1))
                for r in records
            ],
            "full_subset_fraction": float(np.mean([r.label == "depth+lidar+csi" for r in records])),
            "inference_ms_p50": float(np.median([r.inference_ms for r in records])),
            "inference_ms_p99": float(np.percentile([r.inference_ms for r in records], 99)),
            "dropped_sets_total": int(fusion.get("dropped_sets", -1)),
            "accounting_since_start": counts,
            "accounted": {
                m: c["sent"] == c["lost_before_callback"] + c["received"]
                and c["received"] == c["processed"] + c["rejected"] + c["dropped_busy"]
                for m, c in counts.items()
            },
            "sent_in_phase": {m: probe.sent[m] - sent0[m] for m in MODALITIES},
            "adapter_counts_before_phase": base,
        }
        probe.paused.clear()
        time.sleep(1.0)
        if args.steady_only:
            return results

        # Lag: the LiDAR's scans arrive 0.5 s after their stamps.
        probe.stamp_shift_ns["lidar"] = -NS // 2
        t0, duration = run_phase(probe, args.lag_s, warmup_s=1.0)
        lag = probe.since(t0)
        records = probe.records_since(t0)
        with probe.lock:
            lidar_states = sorted({s for t, m, s in probe.states if m == "lidar" and t >= t0 - 1.0})
        results["lag_default"] = {
            **latency_summary(lag, duration),
            "sets_with_lidar": float(np.mean(["lidar" in r.subset for r in records])),
            "lidar_states_seen": lidar_states,
        }
        probe.stamp_shift_ns["lidar"] = 0
        time.sleep(1.0)

        # Jump: every stamp 20 s back, for good, while the clock goes on.
        t_jump = time.monotonic()
        for m in MODALITIES:
            probe.stamp_shift_ns[m] = -20 * NS
        time.sleep(args.jump_s)
        after = [s for s in probe.since(t_jump) if s.latency_ms > 10_000]
        results["jump"] = {
            "first_skeleton_after_jump_s": (after[0].received_s - t_jump) if after else None,
            "skeletons_per_s_after": len(after) / args.jump_s,
            "stamp_to_markers_ms_p50_after": float(np.median([s.latency_ms - 20_000 for s in after]))
            if after
            else None,
        }
        for m in MODALITIES:
            probe.stamp_shift_ns[m] = 0
        time.sleep(2.0)

        # Each sensor dies for a while and comes back.
        deaths = {}
        for m in MODALITIES:
            t_kill = time.monotonic()
            probe.silent.add(m)
            time.sleep(args.dead_s)
            probe.silent.discard(m)
            time.sleep(1.5)
            with probe.lock:
                records = [(t, r) for t, r in probe.records if t_kill - 1.0 <= t <= t_kill + args.dead_s]
            window = [s for s in probe.since(t_kill - 1.0) if s.received_s <= t_kill + args.dead_s]
            without = next((t - t_kill for t, r in records if t > t_kill and m not in r.subset), None)
            with probe.lock:
                dead_at = next(
                    (t - t_kill for t, mm, st in probe.states if mm == m and st == "dead" and t > t_kill),
                    None,
                )
            deaths[m] = {
                "first_skeleton_without_s": without,
                "largest_gap_s": float(np.diff([s.received_s for s in window]).max()),
                "diagnostics_say_dead_after_s": dead_at,
            }
        results["sensor_death"] = {"dead_s": args.dead_s, **deaths}

        # A 2M-point cloud between two frames; the stream goes on.
        big = huge_cloud()
        with probe.lock:
            lidar_before = dict(probe.diagnostics.get("midas_ros/lidar_adapter", {}))
        t0 = time.monotonic()
        time.sleep(0.05)
        probe.publish_once("lidar", big)
        time.sleep(4.0)
        window = [s for s in probe.since(t0 - 2.0) if s.received_s <= t0 + 4.0]
        with probe.lock:
            lidar_after = dict(probe.diagnostics.get("midas_ros/lidar_adapter", {}))
        results["huge_cloud"] = {
            "bytes": len(big.data),
            "largest_gap_s_around_it": float(np.diff([s.received_s for s in window]).max()),
            "lidar_adapter_delta": {
                k: int(lidar_after.get(k, 0)) - int(lidar_before.get(k, 0))
                for k in ("received", "rejected/too_many_points", "lost_before_callback", "processed")
            },
        }
    finally:
        probe.paused.set()
        results["exit_code"] = stop_bringup(proc)
    return results


def second_bringup(probe: Probe, args: argparse.Namespace, log: Path) -> dict[str, object]:
    proc = start_bringup(0.6, log)
    try:
        connect(probe)
        probe.paused.clear()
        probe.stamp_shift_ns["lidar"] = -NS // 2
        t0, duration = run_phase(probe, args.lag_s, warmup_s=3.0)
        lag = probe.since(t0)
        records = probe.records_since(t0)
        with probe.lock:
            lidar_states = sorted({s for t, m, s in probe.states if m == "lidar" and t >= t0})
        return {
            **latency_summary(lag, duration),
            "sets_with_lidar": float(np.mean(["lidar" in r.subset for r in records])),
            "lidar_states_seen": lidar_states,
            "exit_code": None,
        }
    finally:
        probe.paused.set()
        probe.stamp_shift_ns["lidar"] = 0
        code = stop_bringup(proc)
        print(f"second bringup exited with {code}")


def time_huge_rejection() -> dict[str, float]:
    """The LiDAR adapter's own handling of a 2M-point cloud, without DDS (median of 5)."""
    from midas_ros.ros.lidar_adapter import LidarAdapter

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        adapter = LidarAdapter(node_name="bench_lidar_adapter", context=context)
        big = huge_cloud()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            adapter.process(big)
            times.append((time.perf_counter() - start) * 1e3)
        rejected = adapter.accounting.snapshot().rejected
        adapter.destroy_node()
        return {"handle_ms_median": float(np.median(times)), "rejected": rejected}
    finally:
        rclpy.try_shutdown(context=context)


def plot(results: dict, path: Path) -> None:
    """The steady phase's stamp-to-markers latency over time, and where it goes (wait, inference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steady = results["steady"]
    t, latency = np.array(steady["timeline"]).T
    wait, inference, _ = np.array(steady["records"]).T
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
    left.plot(t, latency, ".", markersize=3)
    left.axhline(100, color="red", linewidth=1, label="target p99 100 ms")
    left.set(xlabel="time in the steady phase (s)", ylabel="stamp -> markers (ms)", ylim=(0, None))
    left.set_title(
        f"{steady['skeletons_per_s']:.2f} skeletons/s, p99 {steady['stamp_to_markers_ms_p99']:.0f} ms"
    )
    left.legend(loc="upper right", fontsize=8)
    right.hist([wait, inference], bins=30, label=["set waits for its sensors", "inference"])
    right.set(xlabel="ms", ylabel="sets")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--lag-s", type=float, default=15.0)
    parser.add_argument("--jump-s", type=float, default=8.0)
    parser.add_argument("--dead-s", type=float, default=2.0, help="how long each sensor is silenced")
    parser.add_argument("--frames", type=int, default=20, help="distinct simulated frames (looped)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the steady phase's latency")
    parser.add_argument("--steady-only", action="store_true", help="skip the lag, jump and huge-cloud phases")
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="bench_runtime_")))
    args = parser.parse_args()

    print("rendering real-size frames ...", flush=True)
    frames = sensor_messages(args.frames)
    results: dict[str, object] = {"huge_cloud_in_process": time_huge_rejection()}
    rclpy.init()
    node = Node("bench_drivers")
    probe = Probe(node, frames)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        results.update(first_bringup(probe, args, args.log_dir / "bringup_default.log"))
        if not args.steady_only:
            results["lag_max_latency_0.6"] = second_bringup(probe, args, args.log_dir / "bringup_lag.log")
    finally:
        probe.stop()
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.try_shutdown()
    results["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0],
        "logs": str(args.log_dir),
    }
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
