"""The live demo: a simulated sensor bag with dropouts replayed through the whole node graph.

    python -m midas_ros.ros.demo [--workdir out/demo] [--checkpoint models/midas.safetensors] [--rate 1]

1. Writes the demo bag (held-out subject 40, a few actions, 10 Hz, each sensor dropping out and coming
   back, two sensors down at once twice) into WORKDIR/demo_bag, unless it is there already.
2. Runs bag player (/clock) + depth/LiDAR/CSI adapters + staleness-aware sync + MIDAS fusion in ONE
   process on a MultiThreadedExecutor with use_sim_time, as `bringup --bag` does.
3. Records the skeleton stream (PoseArray + MarkerArray) into WORKDIR/skeleton_bag (MCAP).
4. Prints MPJPE per live modality subset against the bag's ground truth (matched by stamp) and writes
   WORKDIR/skeletons.png: predicted vs true skeletons for a few frames, one of them during a dropout.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from visualization_msgs.msg import MarkerArray

from midas_ros import MODALITIES
from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.ros import bag
from midas_ros.ros.bag_player import BagPlayer
from midas_ros.ros.bringup import build_nodes, spin, start_when_matched
from midas_ros.ros.conversions import stamp_to_ns
from midas_ros.ros.fusion_node import MARKERS_TOPIC, POSES_TOPIC, default_checkpoint
from midas_ros.ros.markers import LABEL_ID, MARKER_NS, subset_color, subset_label
from midas_ros.skeleton import BONES
from midas_ros.sync import NS_PER_S

MATCH_TOLERANCE_NS = 50_000_000  # a prediction belongs to the ground-truth frame within 50 ms


class SkeletonRecorder(Node):
    """Writes the fusion node's PoseArray and MarkerArray streams, as received (CDR bytes), to a bag."""

    def __init__(self, recorder: bag.BagRecorder, **kwargs: object) -> None:
        super().__init__("skeleton_recorder", **kwargs)
        self.recorder = recorder
        self.received = 0
        for topic, msg_type in ((POSES_TOPIC, PoseArray), (MARKERS_TOPIC, MarkerArray)):
            self.create_subscription(msg_type, topic, self._writer(topic), 50, raw=True)

    def _writer(self, topic: str) -> Callable[[bytes], None]:
        def write(rawdata: bytes) -> None:
            self.recorder.write(topic, self.get_clock().now().nanoseconds, rawdata)
            self.received += 1

        return write


@dataclass
class DemoResult:
    """What a demo run produced and measured."""

    bag_path: Path
    skeleton_bag: Path
    plot_path: Path | None
    frames: int  # ground-truth frames in the bag
    predicted: int  # frames that got a skeleton
    mpjpe_by_subset: dict[str, tuple[int, float]]  # subset label -> (frames, MPJPE mm)
    mpjpe_all_mm: float


def record_live_run(
    bag_path: Path,
    skeleton_bag: Path,
    *,
    checkpoint: str,
    device: str = "auto",
    rate: float = 1.0,
    timeout_s: float | None = None,
) -> int:
    """Play `bag_path` through the node graph in this process; record the skeletons. Returns their count."""
    if skeleton_bag.exists():
        shutil.rmtree(skeleton_bag)  # our own output of an earlier run
    recorder = bag.BagRecorder(
        skeleton_bag,
        {POSES_TOPIC: "geometry_msgs/msg/PoseArray", MARKERS_TOPIC: "visualization_msgs/msg/MarkerArray"},
    )
    rclpy.init()
    nodes: list[Node] = []
    try:
        nodes = build_nodes(
            bag=str(bag_path), use_sim_time=True, device=device, checkpoint=checkpoint, rate=rate
        )
        player = next(n for n in nodes if isinstance(n, BagPlayer))
        skeletons = SkeletonRecorder(recorder, parameter_overrides=[Parameter("use_sim_time", value=True)])
        nodes.append(skeletons)
        fusion = next(n for n in nodes if n.get_name() == "fusion_node")
        stop = threading.Event()

        def run() -> None:
            deadline = time.monotonic() + 15
            while fusion.markers_pub.get_subscription_count() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            start_when_matched(player)
            player.done.wait(timeout_s)
            time.sleep(1.0)  # let the last sets through inference and into the recorder
            stop.set()

        threading.Thread(target=run, name="demo_control", daemon=True).start()
        spin(nodes, until=stop)
        return skeletons.received
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
        recorder.close()


def read_skeletons(skeleton_bag: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(stamps ns, joints (N, 17, 3), subset label per pose) from a recorded skeleton bag."""
    stamps, joints = bag.read_pose_arrays(skeleton_bag, POSES_TOPIC)
    labels_by_stamp: dict[int, str] = {}
    for message in bag.read_messages(skeleton_bag, [MARKERS_TOPIC]):
        for marker in message.deserialize().markers:
            if marker.ns == MARKER_NS and marker.id == LABEL_ID:
                labels_by_stamp[stamp_to_ns(marker.header.stamp)] = marker.text
    return stamps, joints, [labels_by_stamp.get(int(s), "?") for s in stamps]


def match_to_ground_truth(pred_stamps: np.ndarray, gt_stamps: np.ndarray) -> np.ndarray:
    """Index of the nearest ground-truth stamp of each prediction, -1 when none is within 50 ms."""
    pred_stamps = np.asarray(pred_stamps, dtype=np.int64)
    if len(gt_stamps) == 0:
        return np.full(len(pred_stamps), -1)
    right = np.clip(np.searchsorted(gt_stamps, pred_stamps), 0, len(gt_stamps) - 1)
    left = np.clip(right - 1, 0, len(gt_stamps) - 1)
    nearest = np.where(
        np.abs(gt_stamps[left] - pred_stamps) <= np.abs(gt_stamps[right] - pred_stamps), left, right
    )
    return np.where(np.abs(gt_stamps[nearest] - pred_stamps) <= MATCH_TOLERANCE_NS, nearest, -1)


def mpjpe_by_subset(
    pred: np.ndarray, labels: Sequence[str], gt: np.ndarray, match: np.ndarray
) -> dict[str, tuple[int, float]]:
    """{subset label: (frames, MPJPE mm)} over the predictions matched to a ground-truth frame."""
    table: dict[str, tuple[int, float]] = {}
    for label in sorted(set(labels), key=lambda lab: (-lab.count("+"), lab)):
        rows = [k for k, lab in enumerate(labels) if lab == label and match[k] >= 0]
        if rows:
            table[label] = (len(rows), mpjpe_mm(pred[rows], gt[match[rows]]))
    return table


def plot_skeletons(
    path: Path,
    frames: Sequence[tuple[str, np.ndarray, np.ndarray, str]],
) -> Path:
    """PNG of predicted (subset colour) vs true (black) skeletons; frames = (title, pred, true, label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4.2 * len(frames), 4.8))
    for k, (title, pred, true, label) in enumerate(frames):
        ax = fig.add_subplot(1, len(frames), k + 1, projection="3d")
        color = _plot_rgb(label)
        for joints, col, name in ((true, "black", "true"), (pred, color, f"predicted ({label})")):
            for a, b in BONES:
                ax.plot(*zip(joints[a], joints[b], strict=True), color=col, linewidth=2)
            ax.scatter(*joints.T, color=col, s=10, label=name)
        centre = true.mean(axis=0)
        for axis, setter in zip(range(3), (ax.set_xlim, ax.set_ylim, ax.set_zlim), strict=True):
            setter(centre[axis] - 1.0, centre[axis] + 1.0)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_zlabel("z (m)")
        ax.view_init(elev=15, azim=200)
        ax.set_title(title, fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_rgb(label: str) -> tuple[float, float, float]:
    """The legend colour of a subset label; white (all three) is drawn grey on the white page."""
    names = label.split("+")
    if not set(names) <= set(MODALITIES):
        return (0.5, 0.5, 0.5)
    c = subset_color(names)
    return (0.55, 0.55, 0.55) if (c.r, c.g, c.b) == (1.0, 1.0, 1.0) else (c.r, c.g, c.b)


def pick_plot_frames(labels: Sequence[str], match: np.ndarray, count: int = 4) -> list[int]:
    """Prediction indices to plot: spread over the run, the full set first, then the dropout subsets."""
    full = subset_label(MODALITIES)
    matched = [k for k in range(len(labels)) if match[k] >= 0]
    picks: list[int] = []
    with_full = [k for k in matched if labels[k] == full]
    if with_full:
        picks.append(with_full[len(with_full) // 2])
    by_size = sorted(
        {labels[k] for k in matched if labels[k] != full}, key=lambda lab: (-lab.count("+"), lab)
    )
    for label in by_size:
        rows = [k for k in matched if labels[k] == label]
        picks.append(rows[len(rows) // 2])
        if len(picks) == count:
            break
    return sorted(picks)


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
    """The whole demo (module docstring); returns the figures it printed."""
    checkpoint_path = Path(checkpoint) if checkpoint else default_checkpoint()
    if not checkpoint_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {checkpoint_path}: train one with `midas_train` or pass --checkpoint"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    bag_path = workdir / "demo_bag"
    if rebuild_bag and bag_path.exists():
        shutil.rmtree(bag_path)
    if not bag_path.exists():
        info = bag.write_demo_bag(
            bag_path, subject=subject, actions=actions, frames_per_action=frames_per_action, seed=seed
        )
        print(f"demo bag: {info.path} ({info.duration_s:.0f} s, subject {subject}, actions {list(actions)})")
        for outage in info.schedule:
            print(f"  {outage.modality:5s} down {outage.start_s:5.1f} .. {outage.end_s:5.1f} s")
    skeleton_bag = workdir / "skeleton_bag"
    print(f"playing {bag_path} through player + adapters + sync + fusion (sim time, rate {rate}) ...")
    record_live_run(bag_path, skeleton_bag, checkpoint=str(checkpoint_path), device=device, rate=rate)

    gt_stamps, gt = bag.read_pose_arrays(bag_path)
    stamps, pred, labels = read_skeletons(skeleton_bag)
    match = match_to_ground_truth(stamps, gt_stamps)
    table = mpjpe_by_subset(pred, labels, gt, match)
    ok = match >= 0
    overall = mpjpe_mm(pred[ok], gt[match[ok]]) if ok.any() else float("nan")
    predicted_frames = len(set(match[ok].tolist()))

    print(f"\nskeletons: {len(stamps)} for {len(gt_stamps)} ground-truth frames ({predicted_frames} matched)")
    print(f"{'live subset':<18} {'frames':>6} {'MPJPE (mm)':>11}")
    for label, (n, err) in table.items():
        print(f"{label:<18} {n:>6d} {err:>11.1f}")
    print(f"{'all':<18} {int(ok.sum()):>6d} {overall:>11.1f}")

    plot_path = None
    if plot and ok.any():
        picks = pick_plot_frames(labels, match)
        frames = []
        for k in picks:
            t_s = (gt_stamps[match[k]] - gt_stamps[0]) / NS_PER_S
            err = mpjpe_mm(pred[k], gt[match[k]])
            frames.append(
                (f"t = {t_s:.1f} s, live: {labels[k]}\nMPJPE {err:.0f} mm", pred[k], gt[match[k]], labels[k])
            )
        plot_path = plot_skeletons(workdir / "skeletons.png", frames)
        print(f"plot: {plot_path}")
    print(f"skeleton stream: {skeleton_bag} (PoseArray {POSES_TOPIC}, MarkerArray {MARKERS_TOPIC})")
    return DemoResult(
        bag_path=bag_path,
        skeleton_bag=skeleton_bag,
        plot_path=plot_path,
        frames=len(gt_stamps),
        predicted=predicted_frames,
        mpjpe_by_subset=table,
        mpjpe_all_mm=overall,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
