"""The timeline plot of one replayed bag: error, live subset, latency and each sensor's state over time.

Four panels sharing the time axis (seconds from the first skeleton or ground-truth frame):
1. MPJPE of each skeleton (coloured by its live subset), the constant pose's and placement only's;
2. the live subset of each skeleton;
3. latency from the fusion records: header stamp -> publication, the set's wait, inference;
4. per sensor, at each skeleton: used, or why it was missing (out of tolerance, late, dead, never
   received), from the fusion records; raw messages the adapters rejected (fast mode) as black crosses.
Colours follow the RViz legend (ros/markers.py), with all three sensors black instead of white.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midas_ros import MODALITIES
from midas_ros.replay.scoring import BagScore

SUBSET_COLOURS: dict[str, str] = {
    "depth+lidar+csi": "black",
    "depth+lidar": "goldenrod",
    "depth+csi": "magenta",
    "lidar+csi": "darkcyan",
    "depth": "red",
    "lidar": "green",
    "csi": "blue",
}
SUBSETS = tuple(SUBSET_COLOURS)
STATE_COLOURS: dict[str, str] = {
    "used": "tab:green",
    "out_of_tolerance": "gold",
    "late": "tab:orange",
    "dead": "tab:red",
    "never_received": "lightgrey",
}


def plot_timeline(
    path: Path,
    score: BagScore,
    *,
    rejections: Sequence[tuple[str, int, str]] = (),
    title: str = "",
) -> Path:
    """Write the timeline PNG of one bag (module docstring); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = [s for s in (score.stamps_ns[:1], score.gt_stamps_ns[:1]) if len(s)]
    t0 = int(min(int(s[0]) for s in starts)) if starts else 0
    t = (score.stamps_ns.astype(np.int64) - t0) / 1e9
    colours = [SUBSET_COLOURS.get(label, "grey") for label in score.labels]

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True, height_ratios=[3, 2, 2, 1.5])
    ax = axes[0]
    if len(t):
        ax.scatter(t, score.errors["mpjpe"], c=colours, s=10, label="MIDAS (colour: live subset)")
        for key, style, name in (
            ("const_mpjpe", "--", "constant pose"),
            ("placement_mpjpe", ":", "placement only"),
        ):
            if np.isfinite(score.errors[key]).any():
                ax.plot(t, score.errors[key], style, color="grey", lw=1, label=name)
    ax.set_ylabel("MPJPE (mm)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    present = [s for s in SUBSETS if s in set(score.labels)]
    others = sorted(set(score.labels) - set(SUBSETS))
    order = {label: k for k, label in enumerate([*present, *others])}
    if len(t):
        ax.scatter(t, [order[label] for label in score.labels], c=colours, s=10, marker="s")
    ax.set_yticks(range(len(order)), list(order))
    ax.set_ylabel("live subset")
    ax.grid(alpha=0.3)

    ax = axes[2]
    for attr, name in (
        ("stamp_to_publish_ms", "stamp -> publish"),
        ("wait_ms", "set wait"),
        ("inference_ms", "inference"),
    ):
        values = np.array([getattr(r, attr) if r else np.nan for r in score.records], dtype=float)
        if len(t):
            ax.plot(t, values, lw=1, label=name)
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[3]
    seen_states: set[str] = set()
    for row, modality in enumerate(MODALITIES):
        states = [
            ("used" if modality in r.subset else r.missing.get(modality, "never_received"))
            if r
            else "never_received"
            for r in score.records
        ]
        seen_states.update(states)
        if len(t):
            ax.scatter(
                t, np.full(len(t), row), c=[STATE_COLOURS.get(s, "grey") for s in states], s=12, marker="s"
            )
        rejected = [(stamp - t0) / 1e9 for m, stamp, _ in rejections if m == modality]
        if rejected:
            ax.scatter(rejected, np.full(len(rejected), row + 0.3), c="black", marker="x", s=14)
    ax.set_yticks(range(len(MODALITIES)), list(MODALITIES))
    ax.set_ylim(-0.6, len(MODALITIES) - 0.2)
    handles = [
        plt.Line2D([], [], marker="s", ls="", color=STATE_COLOURS[s], label=s.replace("_", " "))
        for s in STATE_COLOURS
        if s in seen_states
    ]
    if rejections:
        handles.append(plt.Line2D([], [], marker="x", ls="", color="black", label="rejected by adapter"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(handles))
    ax.set_ylabel("sensors")
    ax.set_xlabel("time (s)")
    fig.suptitle(title or f"{score.name}: replay timeline")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
