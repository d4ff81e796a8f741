"""Replay evaluation (midas_replay): fast mode's speed against real time, on the demo's simulated bag and
on a bag of full-size driver streams, and live against fast mode on the same frames.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_replay.py [--bag out/demo/demo_bag] [--out DIR]

- The demo's bag (written by `midas_demo` or here when missing): 40 s of a held-out subject through the
  held-out rig pool31 with dropouts; depth 848 x 480 16UC1, the OS1-64's forward sector (~27k points,
  unorganised), CSI.
- A full-size bag written here: the same subject and rig as the drivers publish them
  (sim/drivers.py): depth 848 x 480, the OS1-64's whole organised scan (64 x 1024 = 65,536 points in
  the Ouster driver's 48-byte point layout), CSI, all at 10 Hz, no dropouts.

Each bag is replayed with `midas_replay --mode fast` (as a user runs it), the demo's bag also with
`--mode live --rate 1` (the real node graph, composed, with /clock); the two are compared on the
ground-truth frames both scored with the same live subset. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.demo.cloud_layouts import driver_cloud
from midas_ros.demo.scenario import (
    BAG_TOPICS,
    DEFAULT_RIG,
    DEFAULT_START_S,
    FRAME_PERIOD_NS,
    SENSOR_OFFSETS_S,
    static_tf_cdr,
    write_frame,
)
from midas_ros.interfaces import TF_STATIC_TOPIC
from midas_ros.ros.bag_io import BagRecorder
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2
from midas_ros.sim.drivers import DriverSimulator
from midas_ros.sim.generate import simulate_sequence
from midas_ros.sim.rigs import rig_by_name
from midas_ros.sync import NS_PER_S

SUBJECT, ACTION = 40, 14  # held out of training, as in the demo


def write_full_size_bag(path: Path, frames: int) -> None:
    """`frames` 10 Hz frames of full-size driver messages (module docstring), with ground truth."""
    rig = rig_by_name(DEFAULT_RIG)
    sim = DriverSimulator(SUBJECT, ACTION, frames, seed=0, rig=rig)
    csi = simulate_sequence(SUBJECT, ACTION, frames, 0)  # CSI does not depend on the rig
    start_ns = DEFAULT_START_S * NS_PER_S

    def driver_message(frame: int, modality: str, header: Header) -> Image | PointCloud2:
        if modality == "depth":
            return array_to_image(sim.depth_frame(frame), header)
        if modality == "lidar":
            return driver_cloud(sim.ouster_scan(frame), "ouster", header=header)
        return csi_to_pointcloud2(csi.csi_amplitude[frame], csi.csi_phase[frame], header)

    with BagRecorder(path, BAG_TOPICS) as recorder:
        recorder.write(TF_STATIC_TOPIC, start_ns, static_tf_cdr(rig, start_ns))
        for f in tqdm(range(frames), desc="full-size bag", unit="frame"):
            frame_ns = start_ns + f * FRAME_PERIOD_NS
            stamps_ns = {m: frame_ns + round(SENSOR_OFFSETS_S[m] * NS_PER_S) for m in MODALITIES}
            write_frame(
                recorder, rig, frame_ns, sim.joints[f], stamps_ns, partial(driver_message, f), start_ns
            )


def replay(bag: Path, out: Path, mode: str) -> tuple[dict, dict[int, tuple[str, float, float]], float]:
    """Run midas_replay; (summary.json, {gt stamp: (subset, MPJPE mm, PA-MPJPE mm)}, command wall s)."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "midas_ros.replay",
            str(bag),
            "--out",
            str(out),
            "--mode",
            mode,
            "--no-progress",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall_s = time.perf_counter() - started
    folder = out / bag.name
    frames = {}
    with (folder / "frames.csv").open() as f:
        for row in csv.DictReader(f):
            if row["gt_stamp_ns"] and row["mpjpe_mm"]:
                frames[int(row["gt_stamp_ns"])] = (
                    row["subset"],
                    float(row["mpjpe_mm"]),
                    float(row["pa_mpjpe_mm"]),
                )
    return json.loads((folder / "summary.json").read_text()), frames, wall_s


def speed_line(name: str, summary: dict, command_s: float) -> str:
    return (
        f"| {name} | {summary['bag_duration_s']:.1f} | {summary['messages']} | {summary['skeletons']} | "
        f"{summary['wall_s']:.2f} | {summary['realtime_factor']:.1f}x | {summary['start_s']:.1f} | "
        f"{command_s:.1f} | {summary['bag_duration_s'] / command_s:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bag", type=Path, default=Path("out/demo/demo_bag"))
    parser.add_argument("--out", type=Path, default=Path("out/bench_replay"))
    parser.add_argument("--full-size-frames", type=int, default=300, help="10 Hz frames of the full-size bag")
    parser.add_argument("--no-live", action="store_true", help="skip the live run (40 s on the demo bag)")
    args = parser.parse_args()
    if not args.bag.exists():
        from midas_ros.demo.scenario import write_demo_bag

        write_demo_bag(args.bag)
    full_bag = args.out / f"full_size_{args.full_size_frames}"
    if not full_bag.exists():
        write_full_size_bag(full_bag, args.full_size_frames)
    load = os.getloadavg()[0]
    fast, fast_frames, fast_s = replay(args.bag, args.out / "fast", "fast")
    full, _, full_s = replay(full_bag, args.out / "fast_full_size", "fast")
    print("# Replay evaluation benchmark\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average before the runs {load:.2f}")
    print(
        "- replay: the loop over the bag's messages (preprocessing, synchronisation, model, skeleton "
        "bag); start-up: model loading and the preprocessing processes; command: `midas_replay` as a user "
        "runs it (Python start-up, scoring, table and timeline included)\n"
    )
    print(
        "| bag | bag s | sensor messages | skeletons | replay s | replay real-time factor | start-up s | "
        "command s | command real-time factor |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(speed_line(f"demo (`{args.bag}`)", fast, fast_s))
    print(speed_line(f"full size ({args.full_size_frames} frames)", full, full_s))
    if args.no_live:
        return
    live, live_frames, _ = replay(args.bag, args.out / "live", "live")
    common = [s for s in fast_frames if s in live_frames and fast_frames[s][0] == live_frames[s][0]]
    fast_mpjpe = float(np.mean([fast_frames[s][1] for s in common]))
    live_mpjpe = float(np.mean([live_frames[s][1] for s in common]))
    fast_pa = float(np.mean([fast_frames[s][2] for s in common]))
    live_pa = float(np.mean([live_frames[s][2] for s in common]))
    print(f"\n- live mode (rate 1) on the demo bag: {live['skeletons']} skeletons in {live['wall_s']:.1f} s")
    print(
        f"- ground-truth frames scored by both modes with the same live subset: {len(common)} "
        f"(fast scored {len(fast_frames)}, live {len(live_frames)})"
    )
    print(
        f"- MPJPE on those frames: fast {fast_mpjpe:.1f} mm, live {live_mpjpe:.1f} mm "
        f"({100 * (live_mpjpe - fast_mpjpe) / fast_mpjpe:+.2f}%); "
        f"PA-MPJPE fast {fast_pa:.1f} mm, live {live_pa:.1f} mm"
    )


if __name__ == "__main__":
    main()
