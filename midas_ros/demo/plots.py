"""The demo's figure: predicted (coloured by live subset) vs true (black) skeletons for a few frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midas_ros import MODALITIES
from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.ros.markers import MODALITY_RGB, subset_label
from midas_ros.skeleton import BONES
from midas_ros.sync import NS_PER_S


def subset_rgb(label: str) -> tuple[float, float, float]:
    """The RViz legend colour of a subset label (markers.py); white (all three) is grey on a white page."""
    names = label.split("+")
    if not set(names) <= set(MODALITIES):
        return (0.5, 0.5, 0.5)
    rgb = np.sum([MODALITY_RGB[n] for n in names], axis=0)
    return (0.55, 0.55, 0.55) if np.all(rgb == 1.0) else (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def pick_plot_frames(labels: Sequence[str], match: np.ndarray, count: int = 4) -> list[int]:
    """Skeleton indices to plot: the middle one of the full set, then one per dropout subset."""
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
        if len(picks) == count:
            break
        rows = [k for k in matched if labels[k] == label]
        picks.append(rows[len(rows) // 2])
    return sorted(picks)


def plot_skeletons(path: Path, frames: Sequence[tuple[str, np.ndarray, np.ndarray, str]]) -> Path:
    """PNG of predicted (subset colour) vs true (black) skeletons; frames = (title, pred, true, label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4.2 * len(frames), 4.8))
    for k, (title, pred, true, label) in enumerate(frames):
        ax = fig.add_subplot(1, len(frames), k + 1, projection="3d")
        color = subset_rgb(label)
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


def plot_run(
    path: Path,
    pred: np.ndarray,
    labels: Sequence[str],
    gt_stamps: np.ndarray,
    gt: np.ndarray,
    match: np.ndarray,
) -> Path | None:
    """The demo's figure for a scored run (None when no skeleton matched a ground-truth frame)."""
    picks = pick_plot_frames(labels, match)
    if not picks:
        return None
    frames = []
    for k in picks:
        t_s = (gt_stamps[match[k]] - gt_stamps[0]) / NS_PER_S
        err = mpjpe_mm(pred[k], gt[match[k]])
        title = f"t = {t_s:.1f} s, live: {labels[k]}\nMPJPE {err:.0f} mm"
        frames.append((title, pred[k], gt[match[k]], labels[k]))
    return plot_skeletons(path, frames)
