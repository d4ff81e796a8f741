"""Simulate MM-Fi-like sequences (skeleton, depth, LiDAR, WiFi CSI) in memory or onto disk.

    python -m midas_ros.sim.generate --out data/mmfi_wide --preset wide --seed 0 [--workers N]

Everything is deterministic for a seed: each (subject, action) has its own random streams, so the
same seed gives byte-identical files whatever the worker count or the set of sequences generated.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from midas_ros.mmfi import layout
from midas_ros.sim.body import body_mesh, forward_kinematics, make_body
from midas_ros.sim.csi import simulate_csi
from midas_ros.sim.depth import DepthRenderer, add_depth_noise
from midas_ros.sim.lidar import LidarScanner, crop_to_person
from midas_ros.sim.motions import action_params
from midas_ros.sim.presets import PRESETS
from midas_ros.sim.room import room_mesh, room_of
from midas_ros.sim.sensors import FRAME_RATE_HZ, LIDAR_POSITION


@dataclass
class SimSequence:
    """One simulated sequence: F frames at 10 Hz, all in the frames of docs/design.md."""

    subject: int
    action: int
    joints: np.ndarray  # (F, 17, 3) float64, room frame, metres
    depth_mm: np.ndarray  # (F, 480, 640) uint16, 0 = no return
    lidar: list[np.ndarray]  # F arrays (N, 3) float64, LiDAR frame, human-centred crop
    csi_amplitude: np.ndarray  # (F, 3, 114, 10) float64 (rarely Inf)
    csi_phase: np.ndarray  # (F, 3, 114, 10) float64, radians in (-pi, pi]
    timestamps: np.ndarray  # (F,) seconds from the sequence start
    timings_s: dict[str, float] = field(default_factory=dict)  # wall time spent per part


def _streams(seed: int, subject: int, action: int) -> list[np.random.Generator]:
    """Independent random streams (placement+motion, depth, lidar, csi) of one sequence."""
    children = np.random.SeedSequence([seed, subject, action, 0x51A]).spawn(4)
    return [np.random.default_rng(c) for c in children]


def simulate_sequence(
    subject: int, action: int, num_frames: int = layout.FRAMES_PER_SEQUENCE, seed: int = 0
) -> SimSequence:
    """Simulate one subject performing one action, num_frames frames at 10 Hz, all modalities."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    env = layout.environment_of(subject)  # validates the subject
    if action not in layout.ACTION_NAMES:
        raise ValueError(f"action must be 1..{layout.NUM_ACTIONS}, got {action}")
    timings: dict[str, float] = {}
    rng_motion, rng_depth, rng_lidar, rng_csi = _streams(seed, subject, action)

    start = time.perf_counter()
    body = make_body(subject, seed)
    room = room_of(env)
    times = np.arange(num_frames) / FRAME_RATE_HZ
    position = (rng_motion.uniform(2.6, 3.5), rng_motion.uniform(-0.6, 0.6))
    heading = rng_motion.uniform(-np.pi, np.pi)
    joints = forward_kinematics(body, action_params(action, times, rng_motion), position, heading)
    meshes = [body_mesh(j, body) for j in joints]
    room_vertices, room_triangles = room_mesh(room)
    timings["motion"] = time.perf_counter() - start

    start = time.perf_counter()
    renderer = DepthRenderer(room_vertices, room_triangles)
    depth = np.empty((num_frames, 480, 640), dtype=np.uint16)
    for f, (verts, tris) in enumerate(meshes):
        depth[f] = add_depth_noise(renderer.render(verts, tris), rng_depth)
    timings["depth"] = time.perf_counter() - start

    start = time.perf_counter()
    scanner = LidarScanner(room_vertices, room_triangles)
    offset = np.asarray(LIDAR_POSITION)
    lidar = []
    for f, (verts, tris) in enumerate(meshes):
        cloud = scanner.scan(verts, tris, rng_lidar)
        lidar.append(crop_to_person(cloud, joints[f] - offset, rng_lidar))
    timings["lidar"] = time.perf_counter() - start

    start = time.perf_counter()
    amplitude, phase = simulate_csi(joints, body, room, rng_csi)
    timings["csi"] = time.perf_counter() - start

    return SimSequence(subject, action, joints, depth, lidar, amplitude, phase, times, timings)


def write_sequence(root: Path | str, seq: SimSequence) -> Path:
    """Write a sequence in MM-Fi's layout under root; returns its Exx/Sxx/Axx folder."""
    seq_dir = layout.sequence_dir(root, seq.subject, seq.action)
    for modality in ("depth", "lidar", "csi"):
        (seq_dir / layout.MODALITY_FOLDERS[modality]).mkdir(parents=True, exist_ok=True)
    for f in range(seq.joints.shape[0]):
        n = f + 1
        layout.write_depth_png(layout.frame_path(seq_dir, "depth", n), seq.depth_mm[f])
        layout.write_lidar_bin(layout.frame_path(seq_dir, "lidar", n), seq.lidar[f])
        layout.write_csi_mat(layout.frame_path(seq_dir, "csi", n), seq.csi_amplitude[f], seq.csi_phase[f])
    layout.write_ground_truth(seq_dir, seq.joints)
    return seq_dir


def _generate_one(root: str, subject: int, action: int, frames: int, seed: int) -> tuple[int, int]:
    write_sequence(root, simulate_sequence(subject, action, frames, seed))
    return subject, action


def generate(
    root: Path | str,
    subjects: Sequence[int],
    actions: Sequence[int],
    frames: int,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Simulate and write every (subject, action) sequence; returns the sequence folders."""
    jobs = [(s, a) for s in subjects for a in actions]
    for s, a in jobs:
        layout.sequence_dir(root, s, a)  # validates ids before any work starts
    bar = tqdm(total=len(jobs), unit="seq", desc="simulating", disable=not progress)
    if workers <= 1:
        for s, a in jobs:
            _generate_one(str(root), s, a, frames, seed)
            bar.update()
    else:
        # spawn: open3d and forked threads do not mix well
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_generate_one, str(root), s, a, frames, seed) for s, a in jobs]
            for future in as_completed(futures):
                future.result()
                bar.update()
    bar.close()
    return [layout.sequence_dir(root, s, a) for s, a in jobs]


def _id(text: str) -> int:
    """'7', 'S07' or 'A07' -> 7."""
    digits = text.upper().lstrip("SA")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a subject/action id: {text!r}")
    return int(digits)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script midas_generate."""
    parser = argparse.ArgumentParser(description="Simulate an MM-Fi-like dataset (depth, LiDAR, WiFi CSI).")
    parser.add_argument("--out", type=Path, default=Path("data/mmfi_wide"), help="dataset root to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="wide")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument(
        "--subjects", type=_id, nargs="+", help="override the preset's subjects, e.g. 1 2 S11"
    )
    parser.add_argument("--actions", type=_id, nargs="+", help="override the preset's actions, e.g. 1 A12")
    parser.add_argument("--frames", type=int, help="override the preset's frames per sequence")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    subjects = args.subjects or preset["subjects"]
    actions = args.actions or preset["actions"]
    frames = args.frames or preset["frames"]
    if frames < 1:
        parser.error("--frames must be positive")
    if args.workers < 1:
        parser.error("--workers must be positive")
    try:
        for s in subjects:
            layout.environment_of(s)
        for a in actions:
            layout.sequence_dir(args.out, 1, a)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    dirs = generate(args.out, subjects, actions, frames, args.seed, args.workers)
    print(
        f"wrote {len(dirs)} sequences x {frames} frames to {args.out} in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
