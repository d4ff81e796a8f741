"""Latency of the live pipeline: raw sensor header stamp -> skeleton markers received, and sensor death.

Everything runs in one process as `bringup` does (depth/LiDAR/CSI adapters + fusion node on one
MultiThreadedExecutor), fed by a publisher thread sending simulated raw sensor messages (RealSense-like
16UC1 depth 640 x 480, Ouster-layout cloud, CSI) at 10 Hz, all three stamped at the frame tick, on wall
time. A probe subscriber timestamps each MarkerArray on arrival.

Phases: `--steady-s` seconds with all sensors (latency p50/p99, output rate, backlog), then each sensor
in turn is silenced for `--dead-s` seconds and brought back. For each death it reports when the first
skeleton without that sensor arrived, the longest gap between skeletons, and when the fusion node's
diagnostics flagged the sensor missing (its staleness timeout).

    PYTHONPATH=. python benchmarks/bench_latency.py [--checkpoint models/midas.safetensors] [--steady-s 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The project's Fast DDS profile and a domain of our own, before rclpy is imported.
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", "77")

import rclpy  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from midas_ros import MODALITIES  # noqa: E402
from midas_ros.ros import bag  # noqa: E402
from midas_ros.ros.bringup import build_nodes, spin  # noqa: E402
from midas_ros.ros.conversions import stamp_to_ns  # noqa: E402
from midas_ros.ros.fusion_node import MARKERS_TOPIC, FusionNode  # noqa: E402
from midas_ros.ros.markers import LABEL_ID  # noqa: E402

PERIOD_S = 0.1


def sensor_messages(num_frames: int) -> list[dict[str, Image | PointCloud2]]:
    """Simulated raw messages (rclpy) per frame, built with the demo bag's writers."""
    from midas_ros.sim.generate import simulate_sequence

    seq = simulate_sequence(40, 14, num_frames, 0)
    frames = []
    for f in range(num_frames):
        built = {
            "depth": (bag.depth_image_msg(seq.depth_mm[f], 0), Image),
            "lidar": (bag.ouster_cloud_msg(seq.lidar[f], 0), PointCloud2),
            "csi": (bag.csi_cloud_msg(seq.csi_amplitude[f], seq.csi_phase[f], 0), PointCloud2),
        }
        frames.append(
            {
                m: deserialize_message(bytes(bag.TYPESTORE.serialize_cdr(msg, msg.__msgtype__)), cls)
                for m, (msg, cls) in built.items()
            }
        )
    return frames


class Probe(Node):
    """Publishes the raw sensors at 10 Hz and records when each skeleton arrives."""

    def __init__(self, frames: list[dict[str, Image | PointCloud2]]) -> None:
        super().__init__("latency_probe")
        self.frames = frames
        self.pubs = {m: self.create_publisher(type(frames[0][m]), bag.DEMO_TOPICS[m], 5) for m in MODALITIES}
        self.dead: set[str] = set()
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, float, str]] = []  # (wall receive s, latency s, subset)
        self.create_subscription(MarkerArray, MARKERS_TOPIC, self._on_markers, 20)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, daemon=True)

    def _on_markers(self, msg: MarkerArray) -> None:
        now = self.get_clock().now().nanoseconds
        label = next((m.text for m in msg.markers if m.id == LABEL_ID and m.action == Marker.ADD), None)
        if label is None:
            return
        stamp = stamp_to_ns(msg.markers[0].header.stamp)
        with self.lock:
            self.arrivals.append((time.monotonic(), (now - stamp) / 1e9, label))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _publish_loop(self) -> None:
        k = 0
        next_tick = time.monotonic()
        while not self._stop.is_set():
            stamp = self.get_clock().now().to_msg()
            for m in MODALITIES:
                if m in self.dead:
                    continue
                msg = self.frames[k % len(self.frames)][m]
                msg.header.stamp = stamp
                self.pubs[m].publish(msg)
            k += 1
            next_tick += PERIOD_S
            self._stop.wait(max(0.0, next_tick - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="", help="default: models/midas.safetensors")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--dead-s", type=float, default=3.0)
    parser.add_argument("--frames", type=int, default=30, help="distinct simulated frames (looped)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    frames = sensor_messages(args.frames)
    rclpy.init()
    nodes = build_nodes(use_sim_time=False, device=args.device, checkpoint=args.checkpoint)
    fusion = next(n for n in nodes if isinstance(n, FusionNode))
    timeout_s = {m: fusion.configs[m].timeout_s for m in MODALITIES}
    probe = Probe(frames)
    stop = threading.Event()
    spinner = threading.Thread(target=spin, args=([*nodes, probe],), kwargs={"until": stop}, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
        all(p.get_subscription_count() for p in probe.pubs.values())
        and fusion.markers_pub.get_subscription_count()
    ):
        time.sleep(0.05)

    results: dict[str, object] = {}
    try:
        probe.start()
        time.sleep(2.0)  # warm-up (first inference, allocations): not measured
        with probe.lock:
            probe.arrivals.clear()
        dropped0 = fusion._slot.dropped
        t_start = time.monotonic()
        time.sleep(args.steady_s)
        with probe.lock:
            steady = list(probe.arrivals)
        steady_s = time.monotonic() - t_start
        lat = np.array([a[1] for a in steady]) * 1e3
        thirds = np.array_split(lat, 3)
        results["steady"] = {
            "skeletons": len(steady),
            "output_hz": len(steady) / steady_s,
            "latency_ms_p50": float(np.percentile(lat, 50)),
            "latency_ms_p99": float(np.percentile(lat, 99)),
            "latency_ms_max": float(lat.max()),
            "latency_ms_p50_first_third": float(np.median(thirds[0])),
            "latency_ms_p50_last_third": float(np.median(thirds[-1])),
            "full_subset_fraction": float(np.mean([a[2] == "depth+lidar+csi" for a in steady])),
            "dropped_sets": fusion._slot.dropped - dropped0,
            "inference_ms_p50": float(np.percentile(list(fusion.inference_ms), 50)),
            "inference_ms_p99": float(np.percentile(list(fusion.inference_ms), 99)),
        }
        deaths = {}
        for m in MODALITIES:
            t_kill = time.monotonic()
            probe.dead.add(m)
            flagged = None
            while time.monotonic() - t_kill < args.dead_s:
                if flagged is None and not fusion.sync.stats()[m].alive:
                    flagged = time.monotonic() - t_kill
                time.sleep(0.005)
            probe.dead.discard(m)
            time.sleep(args.dead_s)  # back to steady
            with probe.lock:
                window = [a for a in probe.arrivals if t_kill - 1.0 <= a[0] <= t_kill + args.dead_s]
            after = [a for a in window if a[0] > t_kill]
            without = next((a[0] - t_kill for a in after if m not in a[2].split("+")), None)
            times = [a[0] for a in window]
            deaths[m] = {
                "first_skeleton_without_s": without,
                "largest_gap_s": float(np.max(np.diff(times))) if len(times) > 1 else None,
                "flagged_missing_after_s": flagged,
                "timeout_s": timeout_s[m],
                "latency_ms_p50_while_dead": float(np.median([a[1] for a in after]) * 1e3) if after else None,
            }
        results["deaths"] = deaths
    finally:
        probe.stop()
        stop.set()
        spinner.join(timeout=5)
        for node in [probe, *reversed(nodes)]:
            node.destroy_node()
        rclpy.try_shutdown()

    results["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0],
        "device": args.device,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
