"""LiDAR preprocessing benchmark: preprocess_lidar on real-size driver clouds, old pipeline vs new.

Inputs come from midas_ros.sim.drivers (the simulator's rooms and people as an Ouster, Velodyne or
Livox driver publishes them). Reports, as markdown (stdout, and --out FILE):

1. time per call (median / p90 / max wall ms, median CPU ms) and the longest single open3d call, for
   organised 32x1024, 64x1024 and 128x2048 scans, a VLP-16 and a Livox cloud, in the E04 hall (only the
   person inside the default ROI) and in rooms E01-E03 (walls and furniture inside it too);
2. old vs new on the simulator's training clouds (person crops): identical outputs, symmetric Chamfer
   distance, and the shipped model's MPJPE (LiDAR only, and depth + LiDAR + CSI);
3. the shipped model's MPJPE on full 64x1024 / 128x2048 scans, old vs new, with the default ROI and one
   fitted to the simulator's rooms, with and without a stride.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_lidar.py --out docs/bench_lidar.md

"Old" is a copy of preprocess_lidar as it was before the organised-scan rewrite (below), fed the way the
LiDAR adapter fed it: the scan flattened and its (0, 0, 0) rows dropped in numpy first.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open3d as o3d
from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)
from scipy.spatial import cKDTree

from midas_ros.preprocess import (
    LidarROI,
    PreprocessError,
    preprocess_csi,
    preprocess_depth,
    preprocess_lidar,
)
from midas_ros.sim.drivers import OS1_32, OS1_64, OS1_128, DriverSimulator, SpinningLidar
from midas_ros.sim.generate import simulate_sequence

# The simulator's rooms: one test subject in each (S10 in E01 ... S40 in E04).
ROOM_SUBJECTS = {1: 10, 2: 20, 3: 30, 4: 40}
DEFAULT_ROI = LidarROI()
# A box that holds the simulated people but none of the rooms' walls or furniture (the default ROI
# holds walls and furniture in E01-E03): what an installation would configure for its own room.
FITTED_ROI = LidarROI(x_min=1.0, x_max=4.75, y_min=-1.55, y_max=1.55)


def old_preprocess_lidar(
    points: np.ndarray,
    *,
    roi: LidarROI = DEFAULT_ROI,
    num_points: int = 512,
    voxel_size_m: float = 0.02,
    min_points: int = 16,
) -> np.ndarray:
    """preprocess_lidar before the rewrite (validation trimmed): float64 copy, finite rows, ROI, outlier
    removal (20, 2.0) on everything in the ROI, 2 cm voxel grid, FPS to num_points, padding."""
    xyz = np.asarray(points)[:, :3].astype(np.float64, copy=False)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    if xyz.shape[0] == 0:
        raise PreprocessError("non_finite", "all points are NaN or Inf")
    xyz = xyz[roi.contains(xyz)]
    if xyz.shape[0] < min_points:
        raise PreprocessError("too_few_points", f"{xyz.shape[0]} points inside the ROI")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(xyz)))
    if len(cloud.points) > 20:
        cloud, _ = cloud.remove_statistical_outlier(20, 2.0)
    if voxel_size_m > 0:
        cloud = cloud.voxel_down_sample(voxel_size_m)
    count = len(cloud.points)
    if count < min_points:
        raise PreprocessError("too_few_points", f"{count} points left")
    if count > num_points:
        cloud = cloud.farthest_point_down_sample(num_points)
    sampled = np.asarray(cloud.points, dtype=np.float32)
    if sampled.shape[0] < num_points:
        sampled = sampled[np.arange(num_points) % sampled.shape[0]]
    return sampled


def old_from_driver(points: np.ndarray, **kwargs) -> np.ndarray:
    """The old adapter path: flatten, drop (0, 0, 0) rows in numpy, then the old function."""
    flat = points.reshape(-1, points.shape[-1])
    flat = flat[(flat[:, 0] != 0) | (flat[:, 1] != 0) | (flat[:, 2] != 0)]
    return old_preprocess_lidar(flat, **kwargs)


# --- timing ----------------------------------------------------------------------------------------------

_O3D_CALLS: list[tuple[str, float]] = []  # (name, wall ms) of each open3d call while instrumented


def _instrument_open3d() -> Callable[[], None]:
    """Wrap the open3d calls preprocess_lidar makes so that each one's wall time is recorded; returns
    undo. The calling thread holds the GIL for the whole wall time (while open3d's OpenMP workers run,
    too), so wall time, not the thread's CPU time, is the GIL hold."""
    cls = o3d.geometry.PointCloud
    methods = (
        "remove_statistical_outlier",
        "voxel_down_sample",
        "farthest_point_down_sample",
        "select_by_index",
    )
    originals = {m: getattr(cls, m) for m in methods}

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            _O3D_CALLS.append((name, (time.perf_counter() - start) * 1e3))
            return out

        return wrapper

    for m, fn in originals.items():
        setattr(cls, m, timed(m, fn))
    vector = o3d.utility.Vector3dVector
    o3d.utility.Vector3dVector = timed("Vector3dVector", vector)

    def undo() -> None:
        for m, fn in originals.items():
            setattr(cls, m, fn)
        o3d.utility.Vector3dVector = vector

    return undo


def time_calls(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], repeats: int) -> dict:
    """Wall and CPU ms per call over inputs x repeats (after one warm-up call each), and the longest
    single open3d call (each call's fastest wall time of 5 instrumented passes: other jobs on a shared
    machine only ever add to a call's time, so this is an upper bound on its GIL hold on an idle core)."""
    for x in inputs:
        fn(x)
    wall, cpu = [], []
    for _ in range(repeats):
        for x in inputs:
            w0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            wall.append((time.perf_counter() - w0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    passes: list[list[tuple[str, float]]] = []
    undo = _instrument_open3d()
    try:
        for _ in range(5):
            _O3D_CALLS.clear()
            for x in inputs:
                fn(x)
            passes.append(list(_O3D_CALLS))
    finally:
        undo()
    fastest = [(calls[0][0], min(ms for _, ms in calls)) for calls in zip(*passes, strict=True)]
    name, longest = max(fastest, key=lambda c: c[1])
    ordered = sorted(wall)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
        "cpu": statistics.median(cpu),
        "o3d": (longest, name),
        "calls": len(wall),
    }


def _cell(t: dict) -> str:
    wall = f"{t['median']:.1f} / {t['p90']:.1f} / {t['max']:.1f}"
    return f"{wall} | {t['cpu']:.1f} | {t['o3d'][0]:.1f} ({t['o3d'][1]})"


def timing_section(frames: int, repeats: int) -> list[str]:
    sims = {env: DriverSimulator(subject, 1, frames, seed=0) for env, subject in ROOM_SUBJECTS.items()}
    groups = {"E04": (4,), "E01-E03": (1, 2, 3)}
    rows: list[tuple[str, str, int, Callable, Callable | None]] = []  # label, group, points, new, old
    scans: dict[tuple[str, str], list[np.ndarray]] = {}
    for lidar, name in ((OS1_32, "32x1024"), (OS1_64, "64x1024"), (OS1_128, "128x2048")):
        for group, envs in groups.items():
            scans[(name, group)] = [sims[e].ouster_scan(f, lidar) for e in envs for f in range(frames)]
    for group, envs in groups.items():
        scans[("VLP-16", group)] = [sims[e].velodyne_cloud(f) for e in envs for f in range(frames)]
        scans[("Livox", group)] = [sims[e].livox_cloud(f) for e in envs for f in range(frames)]

    def organised(stride):
        return lambda x: preprocess_lidar(x, stride=stride)

    for group in groups:
        for name, stride in (
            ("32x1024", 1),
            ("64x1024", 1),
            ("64x1024", (2, 1)),
            ("128x2048", 1),
            ("128x2048", (4, 2)),
        ):
            label = f"{name} organised" + (f", stride {stride}" if stride != 1 else "")
            old = old_from_driver if stride == 1 else None
            rows.append((label, group, name, organised(stride), old))
        rows.append(
            ("VLP-16 (N, 3), no-returns left out", group, "VLP-16", preprocess_lidar, old_preprocess_lidar)
        )
        rows.append(("Livox (N, 3), NaN rows", group, "Livox", preprocess_lidar, old_preprocess_lidar))

    lines = [
        "## 1. Time per call",
        "",
        f"{frames} frames per room (subjects {_subjects()}, action A01) x {repeats} repeats, after one "
        "warm-up call per frame. Wall ms: median / p90 / max; CPU ms: median process time per call "
        "(open3d's outlier removal runs OpenMP threads, so it can exceed the wall time); longest open3d "
        "call: the longest single open3d call (each holds the GIL for its whole wall time), each call "
        "taken at its fastest of 5 passes (other jobs only add time, so this bounds the hold on an idle "
        "core from above; a busy machine inflates it). E04: only "
        "the person inside the default ROI; E01-E03: walls and furniture inside it too.",
        "",
        "| input | rooms | points in / in ROI | old: wall ms | old: CPU ms | old: longest open3d call ms "
        "| new: wall ms | new: CPU ms | new: longest open3d call ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, group, key, new, old in rows:
        inputs = scans[(key, group)]
        sizes = [x.reshape(-1, x.shape[-1]).shape[0] for x in inputs]
        flat = [x.reshape(-1, x.shape[-1]).astype(np.float64) for x in inputs]
        in_roi = [int(LidarROI().contains(f).sum()) for f in flat]
        t_new = time_calls(new, inputs, repeats)
        t_old = time_calls(old, inputs, repeats) if old is not None else None
        old_cells = _cell(t_old) if t_old else "- | - | -"
        lines.append(
            f"| {label} | {group} | {int(np.median(sizes)):,} / {int(np.median(in_roi)):,} | {old_cells} "
            f"| {_cell(t_new)} |"
        )
        print(lines[-1], flush=True)
    return lines


# --- accuracy --------------------------------------------------------------------------------------------


class _Model:
    def __init__(self, path: str) -> None:
        from midas_ros.model import PosePredictor

        self.predictor = PosePredictor.from_checkpoint(path, device="cpu", num_threads=1)

    def mpjpe_mm(self, sample: dict, truth: np.ndarray) -> float:
        out = self.predictor.predict(sample)
        joints = np.asarray(getattr(out, "joints", out))  # a Prediction or a bare (17, 3) array
        return 1000.0 * float(np.linalg.norm(joints - truth, axis=1).mean())


def chamfer_m(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean of the two directed mean nearest-neighbour distances."""
    return 0.5 * float(cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def training_section(model: _Model, subjects: list[int], actions: list[int], frames: int) -> list[str]:
    identical, chamfer, n = 0, [], 0
    err: dict[str, list[float]] = {k: [] for k in ("L old", "L new", "DLW old", "DLW new")}
    for subject in subjects:
        for action in actions:
            seq = simulate_sequence(subject, action, frames, seed=0)
            for f in range(frames):
                old, new = old_preprocess_lidar(seq.lidar[f]), preprocess_lidar(seq.lidar[f])
                identical += bool(np.array_equal(old, new))
                chamfer.append(chamfer_m(old, new))
                n += 1
                depth = preprocess_depth(seq.depth_mm[f])
                csi = preprocess_csi(seq.csi_amplitude[f], seq.csi_phase[f])
                for tag, sample in (("old", old), ("new", new)):
                    err[f"L {tag}"].append(model.mpjpe_mm({"lidar": sample}, seq.joints[f]))
                    full = {"depth": depth, "lidar": sample, "csi": csi}
                    err[f"DLW {tag}"].append(model.mpjpe_mm(full, seq.joints[f]))
    mean = {k: statistics.fmean(v) for k, v in err.items()}
    return [
        "## 2. Old vs new on the simulator's training clouds",
        "",
        f"`simulate_sequence(subject, action, {frames}, seed=0).lidar` for subjects {subjects}, actions "
        f"{actions}: {n} person-cropped clouds (150..450 points in the ROI, the kind the shipped model was "
        "trained on).",
        "",
        f"- identical outputs (byte for byte): {identical} / {n}",
        f"- symmetric Chamfer distance old vs new: mean {1e3 * statistics.fmean(chamfer):.3f} mm, "
        f"max {1e3 * max(chamfer):.3f} mm",
        "",
        "| shipped model, MPJPE mm | old preprocessing | new preprocessing | change |",
        "|---|---|---|---|",
        f"| LiDAR only | {mean['L old']:.1f} | {mean['L new']:.1f} | "
        f"{100 * (mean['L new'] / mean['L old'] - 1):+.1f} % |",
        f"| depth + LiDAR + CSI | {mean['DLW old']:.1f} | {mean['DLW new']:.1f} | "
        f"{100 * (mean['DLW new'] / mean['DLW old'] - 1):+.1f} % |",
    ]


def scan_section(model: _Model, actions: list[int], frames: int) -> list[str]:
    variants: list[tuple[str, SpinningLidar, Callable[[np.ndarray], np.ndarray]]] = [
        ("64x1024, default ROI, old", OS1_64, old_from_driver),
        ("64x1024, default ROI, new", OS1_64, preprocess_lidar),
        ("64x1024, fitted ROI, old", OS1_64, lambda s: old_from_driver(s, roi=FITTED_ROI)),
        ("64x1024, fitted ROI, new", OS1_64, lambda s: preprocess_lidar(s, roi=FITTED_ROI)),
        (
            "64x1024, fitted ROI, new, stride (2, 1)",
            OS1_64,
            lambda s: preprocess_lidar(s, roi=FITTED_ROI, stride=(2, 1)),
        ),
        ("128x2048, fitted ROI, old", OS1_128, lambda s: old_from_driver(s, roi=FITTED_ROI)),
        ("128x2048, fitted ROI, new", OS1_128, lambda s: preprocess_lidar(s, roi=FITTED_ROI)),
        (
            "128x2048, fitted ROI, new, stride (4, 2)",
            OS1_128,
            lambda s: preprocess_lidar(s, roi=FITTED_ROI, stride=(4, 2)),
        ),
    ]
    crop = "training-style person crop (simulate_sequence), old = new"
    err: dict[str, dict[int, list[float]]] = {label: {} for label, _, _ in variants}
    err[crop] = {}
    for env, subject in ROOM_SUBJECTS.items():
        for action in actions:
            sim = DriverSimulator(subject, action, frames, seed=0)
            seq = simulate_sequence(subject, action, frames, seed=0)
            for f in range(frames):
                truth = sim.joints[f]
                err[crop].setdefault(env, []).append(
                    model.mpjpe_mm({"lidar": preprocess_lidar(seq.lidar[f])}, truth)
                )
                scans = {lidar: sim.ouster_scan(f, lidar) for lidar in (OS1_64, OS1_128)}
                for label, lidar, fn in variants:
                    err[label].setdefault(env, []).append(model.mpjpe_mm({"lidar": fn(scans[lidar])}, truth))
    lines = [
        "## 3. The shipped model on full scans (LiDAR only, MPJPE mm)",
        "",
        f"Subjects {_subjects()} (one per room), actions {actions}, {frames} frames each; the same frames "
        f"as full 360 deg scans. Fitted ROI: `{FITTED_ROI}`.",
        "",
        "| input, ROI, preprocessing | E01 | E02 | E03 | E04 | all |",
        "|---|---|---|---|---|---|",
    ]
    for label, per_env in err.items():
        cells = " | ".join(f"{statistics.fmean(per_env[e]):.0f}" for e in sorted(per_env))
        every = statistics.fmean(v for e in per_env for v in per_env[e])
        lines.append(f"| {label} | {cells} | {every:.0f} |")
    return lines


INTRO = """\
## What preprocess_lidar does now (midas_ros/preprocess.py)

1. One numpy pass over the x, y, z channels in the input's dtype (a float32 scan is not copied to float64):
   the ROI test, which NaN/Inf also fail, and (0, 0, 0) no-returns when the ROI holds the origin. Organised
   (H, W, >=3) scans are taken as they are, optionally with a stride over rings / columns.
2. At most 1024 points inside the ROI (the training clouds: person crops of 150..450 points; a person alone
   in a 64x1024 scan: 400..1050): the original order, unchanged: outlier removal (20 neighbours, 2 std),
   2 cm voxel grid, farthest point sampling to 512, padding: the training clouds come out byte-identical
   to before (table 2).
3. More (a dense scan, or walls and furniture inside the ROI): reduce first, with a 3 cm voxel grid (coarser
   than a 128x2048 scan's beam spacing on a person) and then every n-th point down to 1024; then outlier
   removal and FPS. Outlier removal and FPS never get more than 1024 points; only the conversion to open3d
   and that one grid pass see all the ROI's points.

Read with care: the machine is shared, so single maxima are other jobs' noise; the old pipeline's outlier
removal on everything in the ROI is what made it slow and long-holding (table 1, E01-E03). The default ROI
holds walls and furniture in rooms E01-E03 (table 3): fit it to the room. Striding a 64-beam scan by (2, 1)
or a 128x2048 one by (4, 2) gives the 32-beam density the model was trained on, and its best full-scan
accuracy.
"""


def _subjects() -> str:
    return ", ".join(f"S{s}" for s in ROOM_SUBJECTS.values())


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=5, help="timed frames per room")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per frame")
    parser.add_argument("--checkpoint", default="models/midas.safetensors")
    parser.add_argument(
        "--skip-accuracy", action="store_true", help="timing only (sections 2 and 3 need torch)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (markdown)")
    args = parser.parse_args()

    load_start = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    lines = timing_section(args.frames, args.repeats)
    if not args.skip_accuracy:
        model = _Model(args.checkpoint)
        lines += ["", *training_section(model, [40, 20], [1, 6, 9, 12, 17, 22, 26, 27], 10)]
        lines += ["", *scan_section(model, [1, 6, 12, 17, 22, 27], 5)]
    load_end = os.getloadavg()
    header = [
        "# LiDAR preprocessing benchmark",
        "",
        "`PYTHONPATH=. .venv/bin/python benchmarks/bench_lidar.py --out docs/bench_lidar.md` "
        "(benchmarks/bench_lidar.py says what old and new are).",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; CPU: {cpu_model()}, {os.cpu_count()} logical cores; "
        f"numpy {np.__version__}, open3d {o3d.__version__}",
        f"- load average (1/5/15 min) at the start: {_load(load_start)}, at the end: {_load(load_end)} "
        "(a shared machine: other jobs ran at the same time)",
        "",
    ]
    report = "\n".join([*header, INTRO, *lines]) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
