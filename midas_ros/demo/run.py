"""The live demo: a simulated sensor bag with dropouts replayed through the whole node graph, scored.

    python -m midas_ros.demo [--workdir out/demo] [--checkpoint models/midas.safetensors] [--rate 1]

1. Writes the demo bag (scenario.py: held-out subject 40, a few actions, 10 Hz, each sensor dropping out
   and coming back, two sensors down at once twice) into WORKDIR/demo_bag, unless a bag of the same
   scenario is there already.
2. Replays it live, as ``midas_replay --mode live`` does (midas_ros/replay: plan.prepare with the rig's
   sensor poses as a user sets them, live.run_live): bag player (/clock) + depth/LiDAR/CSI adapters +
   staleness-aware sync + MIDAS fusion in ONE process (an executor thread per node) with use_sim_time.
3. Records the skeleton stream (PoseArray, MarkerArray, fusion record) into WORKDIR/skeleton_bag (MCAP).
4. Scores it with the replay's scoring against the bag's ground truth, matched by stamp, and prints
   MPJPE per live modality subset (scoring.py), and writes WORKDIR/skeletons.png: predicted vs true
   skeletons for a few frames, some during dropouts.

Ctrl-C at any point stops it cleanly and exits with status 0.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from midas_ros.replay.cli import run_command, usage_errors

if TYPE_CHECKING:
    from midas_ros.demo.scenario import DemoBagInfo

# Only light modules at import time (replay.cli: the standard library): main() installs its Ctrl-C
# handling before the heavy imports.

DESCRIPTION = "The live demo: a simulated sensor bag with dropouts replayed through the node graph, scored."


@dataclass
class DemoResult:
    """What a demo run produced and measured."""

    bag_path: Path
    skeleton_bag: Path
    plot_path: Path | None
    frames: int  # ground-truth frames in the bag
    skeletons: int  # skeletons recorded
    predicted: int  # ground-truth frames that got a skeleton
    mpjpe_by_subset: dict[str, tuple[int, float]]  # subset label -> (skeletons, MPJPE mm)
    mpjpe_all_mm: float


def training_mean_pose(checkpoint: Path) -> np.ndarray | None:
    """The checkpoint's mean training pose (room frame, (17, 3)), read as plain arrays: no unpickling."""
    from safetensors.numpy import load_file

    pose = load_file(str(checkpoint)).get("pose_mean")
    return None if pose is None else pose.astype(np.float64)


def ensure_demo_bag(
    bag_path: Path, *, subject: int, actions: Sequence[int], frames_per_action: int, seed: int, rebuild: bool
) -> DemoBagInfo:
    """Write the demo bag unless one of the same scenario is at `bag_path`; print its dropouts."""
    from midas_ros.demo.scenario import DEFAULT_RIG, read_demo_bag_info, write_demo_bag

    try:
        info = read_demo_bag_info(bag_path) if bag_path.exists() else None
    except (KeyError, ValueError):
        info = None  # a bag of an older demo format
    wanted = (subject, DEFAULT_RIG, tuple(actions), frames_per_action, seed)
    same = (
        info is not None
        and (info.subject, info.rig, info.actions, info.frames_per_action, info.seed) == wanted
    )
    if same and not rebuild:
        print(f"demo bag: {bag_path} (reused: same scenario)")
    else:
        if bag_path.exists():
            shutil.rmtree(bag_path)  # another scenario, an older format, or --rebuild-bag
        info = write_demo_bag(
            bag_path, subject=subject, actions=actions, frames_per_action=frames_per_action, seed=seed
        )
        print(
            f"demo bag: {info.path} ({info.duration_s:.0f} s, subject {subject}, rig {info.rig}, "
            f"actions {list(actions)})"
        )
    for outage in info.schedule:
        print(f"  {outage.modality:5s} down {outage.start_s:5.1f} .. {outage.end_s:5.1f} s")
    return info


def run_demo(
    workdir: Path,
    *,
    checkpoint: str = "",
    device: str = "auto",
    rate: float = 1.0,
    subject: int = 40,
    actions: Sequence[int] = (14, 12, 27, 26),
    frames_per_action: int = 100,
    seed: int = 0,
    rebuild_bag: bool = False,
    plot: bool = True,
) -> DemoResult:
    """The whole demo (module docstring); returns the figures it printed. Ctrl-C: KeyboardInterrupt."""
    from midas_ros.demo.plots import plot_run
    from midas_ros.demo.scenario import rig_parameters
    from midas_ros.demo.scoring import Score
    from midas_ros.evaluate.references import reference_from_checkpoint
    from midas_ros.interfaces import FUSION_TOPIC, POSES_TOPIC
    from midas_ros.replay.bag import ReplayError, TopicRequest
    from midas_ros.replay.live import run_live
    from midas_ros.replay.plan import prepare
    from midas_ros.replay.scoring import score_bag
    from midas_ros.ros.fusion_node import default_checkpoint
    from midas_ros.sim.rigs import rig_by_name

    checkpoint_path = Path(checkpoint) if checkpoint else default_checkpoint()
    if not checkpoint_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {checkpoint_path}: train one with `midas_train` or pass --checkpoint"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    bag_path = workdir / "demo_bag"
    info = ensure_demo_bag(
        bag_path,
        subject=subject,
        actions=actions,
        frames_per_action=frames_per_action,
        seed=seed,
        rebuild=rebuild_bag,
    )
    # One replay of the demo bag: the default drivers' topics, the ground truth on /midas/ground_truth,
    # the sensors' poses as a user sets them (rather than the bag's /tf_static).
    plan = prepare(
        bag_path,
        TopicRequest(),
        out_dir=workdir,
        checkpoint=checkpoint_path,
        device=device,
        overrides=rig_parameters(rig_by_name(info.rig)),
    )
    if plan.ground_truth is None:
        raise ReplayError(f"{bag_path} holds no ground truth: rebuild it (--rebuild-bag)")
    skeleton_bag = workdir / "skeleton_bag"
    print(f"playing {bag_path} through player + adapters + sync + fusion (sim time, rate {rate}) ...")
    run_live(
        plan, skeleton_bag, rate=rate, progress=False, on_start=lambda: print("playback started", flush=True)
    )

    reference = reference_from_checkpoint(checkpoint_path)
    constant = reference if reference is not None else training_mean_pose(checkpoint_path)
    scored = score_bag(plan.name, skeleton_bag, plan.ground_truth, constant)
    result = Score.of(scored)
    print()
    print(result.table(len(scored.stamps_ns), scored.gt_frames))

    plot_path = None
    if plot:
        gt = plan.ground_truth
        path = workdir / "skeletons.png"
        plot_path = plot_run(path, scored.joints, scored.labels, gt.stamps_ns, gt.joints, scored.match)
        if plot_path is not None:
            print(f"plot: {plot_path}")
    print(f"skeleton stream: {skeleton_bag} (PoseArray {POSES_TOPIC}, fusion record {FUSION_TOPIC}, markers)")
    return DemoResult(
        bag_path=bag_path,
        skeleton_bag=skeleton_bag,
        plot_path=plot_path,
        frames=scored.gt_frames,
        skeletons=len(scored.stamps_ns),
        predicted=result.frames_predicted,
        mpjpe_by_subset=result.by_subset,
        mpjpe_all_mm=result.mpjpe_all_mm,
    )


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midas_demo", description=DESCRIPTION)
    parser.add_argument("--workdir", type=Path, default=Path("out/demo"), help="bags and plot go here")
    parser.add_argument(
        "--checkpoint", default="", help="MIDAS checkpoint (default: models/midas.safetensors)"
    )
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--subject", type=int, default=40, help="simulated subject (held out from training)")
    parser.add_argument("--actions", type=int, nargs="+", default=[14, 12, 27, 26])
    parser.add_argument("--frames-per-action", type=int, default=100, help="10 Hz frames per action")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild-bag", action="store_true", help="rewrite the demo bag even if present")
    parser.add_argument("--no-plot", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `midas_demo`: exit 0 when done or interrupted (Ctrl-C), 2 without a checkpoint or
    with an unusable demo bag. On Ctrl-C the process ends with status 0 (replay.cli.run_command), whatever
    was interrupted."""

    def body() -> None:
        args = build_arg_parser().parse_args(sys.argv[1:] if argv is None else argv)
        run_demo(
            args.workdir,
            checkpoint=args.checkpoint,
            device=args.device,
            rate=args.rate,
            subject=args.subject,
            actions=args.actions,
            frames_per_action=args.frames_per_action,
            seed=args.seed,
            rebuild_bag=args.rebuild_bag,
            plot=not args.no_plot,
        )

    run_command(body, lambda: (FileNotFoundError, *usage_errors()))


if __name__ == "__main__":
    main()
