"""Replay evaluation (midas_replay) on the demo's simulated bag: fast mode's speed against real time,
and live against fast mode on the same frames.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_replay.py [--bag out/demo/demo_bag] [--out DIR]

Runs `midas_replay BAG --mode fast` and `--mode live --rate 1` (the real node graph, composed, with
/clock), then compares the two on the ground-truth frames both scored with the same live subset.
Prints a Markdown report (the machine, the real-time factor, MPJPE of each mode on the common frames).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py


def replay(bag: Path, out: Path, mode: str) -> tuple[dict, dict[int, tuple[str, float, float]]]:
    """Run midas_replay; (summary.json, {gt stamp: (subset, MPJPE mm, PA-MPJPE mm)})."""
    subprocess.run(
        [sys.executable, "-m", "midas_ros.replay", str(bag), "--out", str(out), "--mode", mode], check=True
    )
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
    return json.loads((folder / "summary.json").read_text()), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bag", type=Path, default=Path("out/demo/demo_bag"))
    parser.add_argument("--out", type=Path, default=Path("out/bench_replay"))
    args = parser.parse_args()
    fast, fast_frames = replay(args.bag, args.out / "fast", "fast")
    live, live_frames = replay(args.bag, args.out / "live", "live")
    common = [s for s in fast_frames if s in live_frames and fast_frames[s][0] == live_frames[s][0]]
    fast_mpjpe = float(np.mean([fast_frames[s][1] for s in common]))
    live_mpjpe = float(np.mean([live_frames[s][1] for s in common]))
    fast_pa = float(np.mean([fast_frames[s][2] for s in common]))
    live_pa = float(np.mean([live_frames[s][2] for s in common]))
    print("# Replay evaluation benchmark\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.2f}")
    print(f"- bag: `{args.bag}`, {fast['bag_duration_s']:.1f} s, {fast['messages']} sensor messages")
    print(
        f"- fast mode: {fast['skeletons']} skeletons in {fast['wall_s']:.1f} s "
        f"(+{fast['start_s']:.1f} s start-up): {fast['realtime_factor']:.1f}x real time, "
        f"{fast['skeletons_per_s']:.1f} skeletons/s"
    )
    print(f"- live mode (rate 1): {live['skeletons']} skeletons in {live['wall_s']:.1f} s")
    print(
        f"- frames scored by both with the same live subset: {len(common)} (fast scored {len(fast_frames)}, "
        f"live {len(live_frames)})"
    )
    print(
        f"- MPJPE on those frames: fast {fast_mpjpe:.1f} mm, live {live_mpjpe:.1f} mm "
        f"({100 * (live_mpjpe - fast_mpjpe) / fast_mpjpe:+.2f}%); "
        f"PA-MPJPE fast {fast_pa:.1f}, live {live_pa:.1f}"
    )


if __name__ == "__main__":
    main()
