"""Time to simulate one full MM-Fi-sized sequence (297 frames, all modalities) on this CPU, and to write it.

Writes docs/bench_generate.md with the machine, the load at the time, and the per-part split
(target: 10 s or less for the simulation of one sequence).

    python benchmarks/bench_generate.py [--frames 297] [--repeats 1] [--out docs/bench_generate.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)
from tqdm import tqdm

from midas_ros.sim.generate import simulate_sequence, write_sequence

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=297)
    parser.add_argument("--repeats", type=int, default=1, help="sequences to time (different subjects)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "bench_generate.md")
    args = parser.parse_args()

    load_before = os.getloadavg()
    runs = []
    simulate_sequence(1, 1, 2, seed=0)  # warm-up: imports, open3d initialisation
    for i in tqdm(range(args.repeats), desc="sequences"):
        subject, action = 1 + 10 * (i % 4), 12
        start, cpu_start = time.perf_counter(), time.process_time()
        seq = simulate_sequence(subject, action, args.frames, seed=0)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_sequence(tmp, seq)
            write = time.perf_counter() - start
        runs.append({"total": total, "cpu": cpu, "write": write, **seq.timings_s})
    load_after = os.getloadavg()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    lines = [
        "# Simulator benchmark: one sequence, all modalities",
        "",
        f"Generated {datetime.datetime.now().isoformat(timespec='minutes')} by `benchmarks/bench_generate.py"
        f" --frames {args.frames} --repeats {args.repeats}`.",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores visible; Python {platform.python_version()}",
        f"- Load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f}. The machine is "
        "shared with other engineers' jobs while this runs, so figures are noisy and pessimistic.",
        f"- Sequence S{seq.subject:02d} A{seq.action:02d} through its pool rig {seq.rig.name}: "
        f"{seq.rig.camera_model} ({seq.rig.depth_intrinsics.width} x {seq.rig.depth_intrinsics.height}), "
        f"{seq.rig.lidar.name} LiDAR. Depth time grows with the camera's pixel count (the noise model and "
        "the IR shadow work on every pixel); the writer's time is mostly the 16-bit PNGs.",
        "",
        f"| part | seconds for {args.frames} frames (median of {len(runs)}) | ms per frame |",
        "|---|---|---|",
    ]
    for key, label in (
        ("motion", "skeleton + body meshes"),
        ("depth", "depth (ray cast + noise)"),
        ("lidar", "LiDAR (ray cast of the forward sector)"),
        ("csi", "WiFi CSI (multipath + receiver)"),
        ("total", "**simulate_sequence total** (wall)"),
        ("cpu", "simulate_sequence CPU time of this process (all threads)"),
        ("write", "writing MM-Fi files (PNG, person-centred .bin, .mat, .npy, rig.json)"),
    ):
        lines.append(f"| {label} | {med(key):.2f} | {1e3 * med(key) / args.frames:.1f} |")
    target = "met" if med("total") <= 10.0 else "missed"
    lines += ["", f"Target (simulation of one 297-frame sequence in 10 s or less): **{target}**."]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
