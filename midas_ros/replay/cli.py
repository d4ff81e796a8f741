"""`midas_replay`: replay one or more bags through midas_ros and score them per live subset.

    midas_replay BAG [BAG ...] --out out/replay [--mode fast|live] [--rate 1.0] [--jobs N]
        [--depth-topic T] [--camera-info-topic T] [--lidar-topic T] [--csi-topic T]
        [--gt-topic T | --gt-npz FILE [FILE ...]] [--gt-pose X Y Z ROLL PITCH YAW]
        [--camera-pose X Y Z ROLL PITCH YAW] [--lidar-pose X Y Z ROLL PITCH YAW]
        [--checkpoint models/midas.safetensors] [--device auto|cpu|cuda] [--config-dir config/]
        [--set NODE.PARAM=VALUE ...]

Writes, per bag, OUT/<bag>/: skeletons/ (MCAP: PoseArray, MarkerArray and fusion records as the fusion
node publishes them), table.md / table.csv (MPJPE / PA-MPJPE per live subset beside the constant pose),
frames.csv (per skeleton), timeline.png, summary.json; and OUT/table.md / table.csv over every bag.
Exit status 0 when done (or stopped with Ctrl-C), 2 for input it cannot use (the message says what was
found: the bag's topics and types, the ground truth's shape).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any

# Only the standard library and light modules at import time: --help answers at once.

DESCRIPTION = (
    "Replay bags (MCAP or sqlite3) through midas_ros, live through the node graph or fast without DDS, "
    "and score the skeletons against a ground truth per live sensor subset."
)
EPILOG = """\
topics: a sensor whose option is not given is read from the default driver topic when the bag has it
(/camera/camera/depth/image_rect_raw + /camera/camera/depth/camera_info, /ouster/points, /wifi/csi);
'none' leaves a sensor out. Ground truth: a geometry_msgs/PoseArray of the 17 MM-Fi joints (default
/midas/ground_truth) or an .npz with stamps (N,) int ns and joints (N, 17, 3) m, in the base frame
midas_base unless --gt-pose gives its frame's pose there.

sensor poses (base frame, ROS x y z roll pitch yaw, m and rad): --camera-pose (camera_link) and
--lidar-pose, else the bag's /tf_static (base frame -> the messages' frame_id; a depth frame_id is the
optical frame), else config/adapters.yaml.

examples:
  midas_replay my_bag --out out/replay --gt-npz my_bag_gt.npz --camera-pose 0 0 1.4 0 0.2 0
  midas_replay bag_a bag_b bag_c --jobs 3 --out out/replay --lidar-topic /os1/points
  midas_replay my_bag --mode live --rate 0.5 --out out/replay_live
  midas_replay my_bag --set fusion_node.max_latency_s=0.6 --set lidar_adapter.search_x_max=4.0
"""
POSE_METAVAR = ("X", "Y", "Z", "ROLL", "PITCH", "YAW")


@dataclass
class BagResult:
    """One bag's run, score and output files."""

    plan: Any  # ReplayPlan
    stats: Any  # RunStats
    score: Any  # BagScore
    files: dict[str, Path]


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midas_replay",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bags", nargs="+", type=Path, help="bag folders (rosbag2: MCAP or sqlite3)")
    parser.add_argument("--out", type=Path, default=Path("out/replay"), help="output folder")
    parser.add_argument(
        "--mode",
        choices=("fast", "live"),
        default="fast",
        help="fast: no DDS, log time as arrival, as fast as the CPU allows; live: the node "
        "graph with /clock at --rate",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="live: playback speed factor")
    parser.add_argument("--jobs", type=int, default=1, help="fast: bags replayed at once (processes)")
    topics = parser.add_argument_group("topics")
    topics.add_argument("--depth-topic", help="sensor_msgs/Image, 16UC1 mm or 32FC1 m")
    topics.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo of the depth images")
    topics.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 with x, y, z")
    topics.add_argument("--csi-topic", help="sensor_msgs/PointCloud2 in the CSI layout")
    truth = parser.add_argument_group("ground truth")
    truth.add_argument(
        "--gt-topic", help="geometry_msgs/PoseArray of the 17 joints (default /midas/ground_truth)"
    )
    truth.add_argument("--gt-npz", type=Path, nargs="+", help="one .npz per bag (stamps, joints)")
    truth.add_argument(
        "--gt-pose",
        type=float,
        nargs=6,
        metavar=POSE_METAVAR,
        help="the ground truth's frame in the base frame (default: it is the base frame)",
    )
    poses = parser.add_argument_group("sensor poses")
    poses.add_argument("--camera-pose", type=float, nargs=6, metavar=POSE_METAVAR, help="depth camera_link")
    poses.add_argument("--lidar-pose", type=float, nargs=6, metavar=POSE_METAVAR, help="the cloud's frame")
    poses.add_argument("--no-tf-static", action="store_true", help="ignore the bag's /tf_static")
    model = parser.add_argument_group("model and nodes")
    model.add_argument("--checkpoint", type=Path, default=None, help="default: models/midas.safetensors")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    model.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="folder of adapters.yaml and midas.yaml (default: the package's config/)",
    )
    model.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.PARAM=VALUE",
        help="a node parameter over the config, in both modes (repeatable), e.g. "
        "fusion_node.max_latency_s=0.2",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plot", action="store_true", help="no timeline plot")
    return parser


def _names(bags: Sequence[Path]) -> list[str]:
    """Output folder names of the bags: their folder names, made unique."""
    names: list[str] = []
    for bag in bags:
        base = bag.resolve().name or "bag"
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def prepare_plans(args: argparse.Namespace) -> list[Any]:
    """One checked ReplayPlan per bag (ReplayError for unusable input)."""
    from midas_ros.replay.bag import ReplayError, TopicRequest
    from midas_ros.replay.plan import prepare
    from midas_ros.replay.settings import overrides_from
    from midas_ros.rig import Pose
    from midas_ros.ros.fusion_node import default_checkpoint

    if args.mode == "live" and args.jobs != 1:
        raise ReplayError(
            "--jobs runs fast replays in parallel; live replays run one at a time (--mode fast)"
        )
    if args.jobs < 1:
        raise ReplayError(f"--jobs must be at least 1, got {args.jobs}")
    if args.rate <= 0:
        raise ReplayError(f"--rate must be > 0, got {args.rate}")
    if args.gt_npz and len(args.gt_npz) != len(args.bags):
        raise ReplayError(f"--gt-npz needs one file per bag: {len(args.bags)} bags, {len(args.gt_npz)} files")
    if args.gt_npz and args.gt_topic:
        raise ReplayError("give the ground truth as --gt-topic or --gt-npz, not both")
    try:
        overrides = overrides_from(args.overrides)
        pose = {
            k: Pose.from_list(v) if v else None
            for k, v in (("gt", args.gt_pose), ("camera", args.camera_pose), ("lidar", args.lidar_pose))
        }
    except ValueError as err:
        raise ReplayError(str(err)) from err
    request = TopicRequest(
        args.depth_topic, args.camera_info_topic, args.lidar_topic, args.csi_topic, args.gt_topic
    )
    checkpoint = args.checkpoint or default_checkpoint()
    plans = []
    for k, (bag, name) in enumerate(zip(args.bags, _names(args.bags), strict=True)):
        plans.append(
            prepare(
                bag,
                request,
                out_dir=args.out / name,
                name=name,
                gt_npz=args.gt_npz[k] if args.gt_npz else None,
                gt_pose=pose["gt"],
                camera_pose=pose["camera"],
                lidar_pose=pose["lidar"],
                overrides=overrides,
                config_dir=args.config_dir,
                checkpoint=checkpoint,
                device=args.device,
                use_tf_static=not args.no_tf_static,
            )
        )
    return plans


def replay_bag(
    plan: Any,
    *,
    mode: str,
    rate: float = 1.0,
    progress: bool = True,
    plot: bool = True,
    workers: bool = False,
) -> BagResult:
    """Run one bag, score it and write its outputs in plan.out_dir. workers: fast mode preprocesses
    depth and LiDAR in processes of their own."""
    from midas_ros.evaluate.references import reference_from_checkpoint
    from midas_ros.replay.scoring import score_bag, subset_rows, write_frames_csv, write_tables

    plan.out_dir.mkdir(parents=True, exist_ok=True)
    skeleton_bag = plan.out_dir / "skeletons"
    if skeleton_bag.exists():
        shutil.rmtree(skeleton_bag)  # our own output of an earlier run
    if mode == "fast":
        from midas_ros.replay.fast import run_fast

        stats = run_fast(plan, skeleton_bag, progress=progress, workers=workers)
    else:
        from midas_ros.replay.live import run_live

        stats = run_live(plan, skeleton_bag, rate=rate, progress=progress)
    reference = reference_from_checkpoint(plan.checkpoint)
    score = score_bag(plan.name, skeleton_bag, plan.ground_truth, reference)
    files = {"skeletons": skeleton_bag, "frames": write_frames_csv(score, plan.out_dir / "frames.csv")}
    if plan.ground_truth is not None:
        files["table"], files["table_csv"] = write_tables(
            subset_rows([score]), plan.out_dir, _notes([score], reference)
        )
    if plot:
        from midas_ros.replay.timeline import plot_timeline

        title = f"{plan.name}: {mode} replay, {stats.skeletons} skeletons"
        files["timeline"] = plot_timeline(
            plan.out_dir / "timeline.png", score, rejections=stats.rejections, title=title
        )
    summary = {
        "bag": str(plan.inputs.path),
        "mode": mode,
        "rate": rate if mode == "live" else None,
        "topics": plan.inputs.sensor_topics,
        "poses": {m: {"pose": p.pose.as_list(), "source": p.source} for m, p in plan.poses.items()},
        "notes": plan.inputs.notes,
        "wall_s": stats.wall_s,
        "start_s": stats.start_s,
        "messages": stats.messages,
        "skeletons": stats.skeletons,
        "skeletons_per_s": stats.skeletons_per_s,
        "bag_duration_s": stats.bag_duration_s,
        "realtime_factor": stats.realtime_factor,
        "accounting": stats.accounting,
        "ground_truth_frames": score.gt_frames,
        "ground_truth_frames_with_skeleton": score.gt_with_skeleton,
    }
    files["summary"] = plan.out_dir / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    return BagResult(plan, stats, score, files)


def _fast_job(plan: Any, plot: bool) -> BagResult:
    """A worker process's job (--jobs): one bag, fast, no progress bar."""
    return replay_bag(plan, mode="fast", progress=False, plot=plot)


def _notes(scores: Sequence[Any], reference: Any) -> list[str]:
    notes = [s.summary() for s in scores]
    if reference is None:
        notes.append("the checkpoint stores no constant pose (reference columns n/a)")
    else:
        notes.append(
            f"constant pose and placement only: the Procrustes-mean training pose {reference.source}"
        )
    notes.append("frames: skeletons matched to a ground-truth frame (nearest stamp within 50 ms)")
    return notes


def _accounting_line(stats: Any) -> str:
    parts = []
    for modality, counts in stats.accounting.items():
        rejected = ", ".join(f"{r} {n}" for r, n in sorted(counts.get("rejected", {}).items()))
        extra = f" (rejected: {rejected})" if rejected else ""
        busy = f", {counts['dropped_busy']} dropped busy" if counts.get("dropped_busy") else ""
        parts.append(f"{modality} {counts['processed']}/{counts['received']}{busy}{extra}")
    return "  samples made/received: " + "; ".join(parts)


def run(args: argparse.Namespace) -> list[BagResult]:
    """The whole command for parsed arguments (module docstring); returns each bag's result."""
    from tqdm import tqdm

    from midas_ros.evaluate.references import reference_from_checkpoint
    from midas_ros.replay.scoring import markdown_table, subset_rows, write_tables

    started = time.perf_counter()
    plans = prepare_plans(args)
    for plan in plans:
        print("\n".join(plan.describe()), flush=True)
    progress, plot = not args.no_progress, not args.no_plot
    results: list[BagResult] = []
    if args.mode == "fast" and args.jobs > 1 and len(plans) > 1:
        context = get_context("spawn")  # torch and threads do not survive a fork
        pool = ProcessPoolExecutor(max_workers=min(args.jobs, len(plans)), mp_context=context)
        try:
            futures = [pool.submit(_fast_job, plan, plot) for plan in plans]
            with tqdm(total=len(plans), desc="bags", unit="bag", disable=not progress) as bar:
                for future in as_completed(futures):
                    results.append(future.result())
                    bar.update()
        except BaseException:  # an error or Ctrl-C: do not wait for the other bags
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        order = {plan.name: k for k, plan in enumerate(plans)}
        results.sort(key=lambda r: order[r.plan.name])
    else:
        workers = (os.cpu_count() or 1) > 1  # one bag at a time: its preprocessing takes the other cores
        for plan in plans:
            results.append(
                replay_bag(
                    plan, mode=args.mode, rate=args.rate, progress=progress, plot=plot, workers=workers
                )
            )
    for result in results:
        print(f"{result.plan.name}: {result.stats.summary()}")
        print(_accounting_line(result.stats))
        if result.plan.ground_truth is not None:
            print(f"  {result.score.summary()}")
    scored = [r.score for r in results if r.plan.ground_truth is not None]
    if scored:
        rows = subset_rows(scored)
        reference = reference_from_checkpoint(results[0].plan.checkpoint)
        md, csv_path = write_tables(rows, args.out, _notes(scored, reference))
        print()
        print(markdown_table(rows))
        print(f"\ntable: {md} and {csv_path}")
    elapsed = time.perf_counter() - started
    total_bag = sum(r.stats.bag_duration_s for r in results)
    total_skeletons = sum(r.stats.skeletons for r in results)
    print(
        f"{args.mode}: {len(results)} bag(s), {total_bag:.1f} s of bag, {total_skeletons} skeletons in "
        f"{elapsed:.1f} s wall (start-up and scoring included): {total_skeletons / elapsed:.1f} skeletons/s, "
        f"real-time factor {total_bag / elapsed:.2f}x"
    )
    print(f"outputs: {args.out}/<bag>/ (skeletons/ MCAP, table.md, frames.csv, timeline.png, summary.json)")
    return results


_INTERRUPTED = threading.Event()


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: raise KeyboardInterrupt once, ignore any further Ctrl-C on the way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def usage_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean input the replay cannot use (exit status 2). Imported when asked for: the
    replay's modules load rclpy's messages, which must not happen before the Ctrl-C handling is set."""
    from midas_ros.replay.bag import ReplayError

    return (ReplayError,)


def run_command(
    body: Callable[[], object], errors: Callable[[], tuple[type[BaseException], ...]] = usage_errors
) -> None:
    """A command's main (midas_replay's, midas_demo's): run `body`; exit status 2 with "error: ..." for
    one of `errors()`; on Ctrl-C at any point the process ends right here with status 0 (``os._exit``,
    "interrupted" on stderr), whatever was interrupted. From the main thread only the first Ctrl-C
    raises, later ones are ignored."""
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.signal(signal.SIGINT, _interrupt_once)
    try:
        body()
    except BaseException as exc:
        # An interrupt may surface as another exception: one inside a C extension's import, for one,
        # becomes "ImportError: initialization failed".
        if isinstance(exc, KeyboardInterrupt) or _INTERRUPTED.is_set():
            if main_thread:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("\ninterrupted", file=sys.stderr)
            # Our resources are released by now (bags closed, nodes destroyed, rclpy shut down). Skip the
            # interpreter's teardown: a C extension whose import was interrupted (open3d, torch) can fail
            # in its own and turn the exit status into 1 or a death by SIGINT.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if isinstance(exc, errors()):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `midas_replay`: exit 0 when done or interrupted, 2 for unusable input."""
    args = build_arg_parser().parse_args(sys.argv[1:] if argv is None else argv)
    run_command(lambda: run(args))


if __name__ == "__main__":
    main()
