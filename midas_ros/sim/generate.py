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
from midas_ros.preprocess import PreprocessError, crop_person
from midas_ros.rig import MMFI_RIG, Pose, Rig, read_rig, write_rig
from midas_ros.sim.body import Body, body_mesh, forward_kinematics, make_body
from midas_ros.sim.csi import simulate_csi
from midas_ros.sim.depth import DepthRenderer, add_depth_noise
from midas_ros.sim.lidar import LidarScanner
from midas_ros.sim.motions import sequence_motion
from midas_ros.sim.presets import PRESETS
from midas_ros.sim.rigs import rig_by_name, rig_placement, sequence_rig
from midas_ros.sim.room import room_mesh, room_of
from midas_ros.sim.sensors import FRAME_RATE_HZ


@dataclass
class SimSequence:
    """One simulated sequence: F frames at 10 Hz seen through one rig (docs/design.md frames)."""

    subject: int
    action: int
    rig: Rig
    placement: Pose  # the rig's base frame in the room frame
    joints: np.ndarray  # (F, 17, 3) float64, base frame midas_base, metres (ground truth)
    depth_mm: np.ndarray  # (F, H, W) uint16 of the rig's camera, 0 = no return
    lidar: list[np.ndarray]  # F arrays (N, 3) float64: the forward sector of each scan, LiDAR frame
    csi_amplitude: np.ndarray  # (F, 3, 114, 10) float64 (rarely Inf)
    csi_phase: np.ndarray  # (F, 3, 114, 10) float64, radians in (-pi, pi]
    timestamps: np.ndarray  # (F,) seconds from the sequence start
    timings_s: dict[str, float] = field(default_factory=dict)  # wall time spent per part


def _streams(seed: int, subject: int, action: int) -> list[np.random.Generator]:
    """Independent random streams (placement+motion, depth, lidar, csi) of one sequence."""
    children = np.random.SeedSequence([seed, subject, action, 0x51A]).spawn(4)
    return [np.random.default_rng(c) for c in children]


def sequence_setup(
    subject: int,
    action: int,
    num_frames: int,
    seed: int,
    rig: Rig | None = None,
    placement: Pose | None = None,
) -> tuple[Rig, Pose, Body, np.ndarray]:
    """The rig, its placement in the room, the subject's body and the joints (F, 17, 3) in the base
    frame of one sequence: the part of simulate_sequence that sensors do not change (sim.drivers reuses
    it).

    placement: the base frame's pose in the room; None = the room's origin for MM-Fi's rig, else the
    sequence's own draw (sim.rigs.rig_placement). The person's motion is the same in the base frame
    whatever the rig and placement."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    layout.environment_of(subject)  # validates the subject
    if action not in layout.ACTION_NAMES:
        raise ValueError(f"action must be 1..{layout.NUM_ACTIONS}, got {action}")
    if rig is None:
        rig = sequence_rig(subject, action, seed)
    if placement is None:
        placement = Pose() if rig.name == MMFI_RIG.name else rig_placement(subject, action, seed)
    rng_motion = _streams(seed, subject, action)[0]
    body = make_body(subject, seed)
    times = np.arange(num_frames) / FRAME_RATE_HZ
    motion = sequence_motion(action, times, rng_motion)
    joints = forward_kinematics(body, motion.params, motion.positions, motion.headings)
    return rig, placement, body, joints


def simulate_sequence(
    subject: int,
    action: int,
    num_frames: int = layout.FRAMES_PER_SEQUENCE,
    seed: int = 0,
    rig: Rig | None = None,
    placement: Pose | None = None,
) -> SimSequence:
    """Simulate one subject performing one action, num_frames frames at 10 Hz, all modalities, seen
    through `rig` (None: the sequence's rig from the pool, midas_ros.sim.rigs) placed in the room at
    `placement` (see sequence_setup)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rig, placement, body, joints = sequence_setup(subject, action, num_frames, seed, rig, placement)
    _, rng_depth, rng_lidar, rng_csi = _streams(seed, subject, action)
    room = room_of(layout.environment_of(subject))
    joints_room = placement.to_base(joints)
    meshes = [body_mesh(j, body) for j in joints_room]
    room_vertices, room_triangles = room_mesh(room)
    timings["motion"] = time.perf_counter() - start

    start = time.perf_counter()
    k = rig.depth_intrinsics
    renderer = DepthRenderer(room_vertices, room_triangles, k, placement.compose(rig.depth_pose))
    depth = np.empty((num_frames, k.height, k.width), dtype=np.uint16)
    for f, (verts, tris) in enumerate(meshes):
        depth[f] = add_depth_noise(renderer.render(verts, tris), rng_depth, fx=k.fx)
    timings["depth"] = time.perf_counter() - start

    start = time.perf_counter()
    scanner = LidarScanner(room_vertices, room_triangles, rig.lidar, placement.compose(rig.lidar_pose))
    lidar = [scanner.scan(verts, tris, rng_lidar) for verts, tris in meshes]
    timings["lidar"] = time.perf_counter() - start

    start = time.perf_counter()
    amplitude, phase = simulate_csi(joints_room, body, room, rng_csi)
    timings["csi"] = time.perf_counter() - start

    times = np.arange(num_frames) / FRAME_RATE_HZ
    return SimSequence(
        subject, action, rig, placement, joints, depth, lidar, amplitude, phase, times, timings
    )


def sequence_csi(
    subject: int, action: int, num_frames: int, seed: int = 0, rig: Rig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The CSI amplitude and phase of simulate_sequence(...) alone, without rendering the rest (each
    modality draws from its own stream, so the result is the same)."""
    _, placement, body, joints = sequence_setup(subject, action, num_frames, seed, rig)
    rng_csi = _streams(seed, subject, action)[3]
    room = room_of(layout.environment_of(subject))
    return simulate_csi(placement.to_base(joints), body, room, rng_csi)


def rewrite_csi(root: Path | str, subject: int, action: int, num_frames: int, seed: int = 0) -> Path:
    """Rewrite the CSI files of a sequence written by write_sequence (after a change of the CSI model;
    depth and LiDAR stay as they are)."""
    seq_dir = layout.sequence_dir(root, subject, action)
    amplitude, phase = sequence_csi(subject, action, num_frames, seed, read_rig(seq_dir))
    for f in range(num_frames):
        layout.write_csi_mat(layout.frame_path(seq_dir, "csi", f + 1), amplitude[f], phase[f])
    return seq_dir


def write_sequence(root: Path | str, seq: SimSequence) -> Path:
    """Write a sequence in MM-Fi's layout under root, its rig in the sidecar file; returns its folder.

    LiDAR frames are stored person-centred, as MM-Fi's are, cut by the same person search the
    preprocessing and the nodes use (from the points alone); a frame where no person is found is
    stored empty (read back as missing).
    """
    seq_dir = layout.sequence_dir(root, seq.subject, seq.action)
    for modality in ("depth", "lidar", "csi"):
        (seq_dir / layout.MODALITY_FOLDERS[modality]).mkdir(parents=True, exist_ok=True)
    write_rig(seq_dir, seq.rig)
    for f in range(seq.joints.shape[0]):
        n = f + 1
        layout.write_depth_png(layout.frame_path(seq_dir, "depth", n), seq.depth_mm[f])
        try:
            person = crop_person(seq.lidar[f], seq.rig.lidar_pose)
        except PreprocessError:
            person = np.zeros((0, 3))
        layout.write_lidar_bin(layout.frame_path(seq_dir, "lidar", n), person)
        layout.write_csi_mat(layout.frame_path(seq_dir, "csi", n), seq.csi_amplitude[f], seq.csi_phase[f])
    layout.write_ground_truth(seq_dir, seq.joints)
    return seq_dir


def _generate_one(
    root: str, subject: int, action: int, frames: int, seed: int, rig: Rig | None, csi_only: bool = False
) -> tuple[int, int]:
    if csi_only:
        rewrite_csi(root, subject, action, frames, seed)
    else:
        write_sequence(root, simulate_sequence(subject, action, frames, seed, rig))
    return subject, action


def generate(
    root: Path | str,
    subjects: Sequence[int],
    actions: Sequence[int],
    frames: int,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    rig: Rig | None = None,
    csi_only: bool = False,
) -> list[Path]:
    """Simulate and write every (subject, action) sequence; returns the sequence folders.

    rig: one rig for every sequence (e.g. MMFI_RIG), or None for each sequence's rig from the pool.
    csi_only: rewrite only the CSI files of sequences already written (rewrite_csi)."""
    jobs = [(s, a) for s in subjects for a in actions]
    for s, a in jobs:
        layout.sequence_dir(root, s, a)  # validates ids before any work starts
    bar = tqdm(total=len(jobs), unit="seq", desc="simulating", disable=not progress)
    if workers <= 1:
        for s, a in jobs:
            _generate_one(str(root), s, a, frames, seed, rig, csi_only)
            bar.update()
    else:
        # spawn: open3d and forked threads do not mix well
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_generate_one, str(root), s, a, frames, seed, rig, csi_only) for s, a in jobs
            ]
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
    parser.add_argument(
        "--rig",
        default="pool",
        help="pool (each sequence its rig from the pool of 32), mmfi (MM-Fi's fixed rig), or a pool "
        "rig's name (pool07)",
    )
    parser.add_argument(
        "--csi-only",
        action="store_true",
        help="rewrite only the CSI files of sequences already in --out (after a change of the CSI model)",
    )
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
    try:
        rig = None if args.rig == "pool" else rig_by_name(args.rig)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    dirs = generate(
        args.out, subjects, actions, frames, args.seed, args.workers, rig=rig, csi_only=args.csi_only
    )
    print(
        f"wrote {len(dirs)} sequences x {frames} frames to {args.out} in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
