"""The demo's table: MPJPE per live modality subset beside the no-sensor constant, from the replay's scoring.

The scoring is the replay's (midas_ros/replay/scoring.py): each skeleton's live subset from its fusion
record, matched to the nearest ground-truth frame by stamp (within 50 ms), per-skeleton errors, rows per
live subset. This module turns those rows into the summary the demo prints (README): MPJPE per live
subset and over all, beside a constant predicted on every frame, preferably the checkpoint's stored
Procrustes-mean pose (evaluate/references.py), which also gives the "placement only" column (that
shape on the true pelvis, turned to the true heading); else any (17, 3) pose ("mean pose").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from midas_ros.evaluate.references import ReferencePose
from midas_ros.replay.ground_truth import GroundTruth
from midas_ros.replay.scoring import ALL, BagScore, score_skeletons, subset_rows
from midas_ros.replay.skeleton_bag import SkeletonStream


@dataclass(frozen=True)
class Score:
    """A skeleton stream scored against ground truth."""

    match: np.ndarray  # (N,) ground-truth index per skeleton, -1 = unmatched
    by_subset: dict[str, tuple[int, float]]  # subset label -> (skeletons, MPJPE mm)
    matched: int  # skeletons matched to a ground-truth frame
    mpjpe_all_mm: float  # over every matched skeleton (NaN when none)
    frames_predicted: int  # distinct ground-truth frames that got a skeleton
    # The same frames scored with one constant pose (knowing nothing), by subset label and "all": what the
    # model learned beyond that.
    reference_mm: dict[str, float] | None = None
    # With a checkpoint's stored reference: the constant is its Procrustes-mean pose, and this is that
    # shape placed at the true pelvis and heading (what knowing only where the person is buys).
    placement_mm: dict[str, float] | None = None

    @classmethod
    def of(cls, bag: BagScore) -> Score:
        """The demo's figures of a replay score (its rows per live subset, larger subsets first)."""
        rows = {str(row["subset"]): row for row in subset_rows([bag])}
        every = rows[ALL]

        def column(key: str, error: str) -> dict[str, float] | None:
            """A reference's column (subsets and "all"), None when it was not computed."""
            if not np.isfinite(bag.errors[error]).any():
                return None
            return {label: float(row[key]) for label, row in rows.items()}

        return cls(
            match=bag.match,
            by_subset={
                label: (int(row["frames"]), float(row["mpjpe_mm"]))
                for label, row in rows.items()
                if label != ALL
            },
            matched=int(every["frames"]),
            mpjpe_all_mm=float(every["mpjpe_mm"]),
            frames_predicted=bag.gt_with_skeleton,
            reference_mm=column("constant_mpjpe_mm", "const_mpjpe"),
            placement_mm=column("placement_mpjpe_mm", "placement_mpjpe"),
        )

    def table(self, skeletons: int, gt_frames: int) -> str:
        """The printed summary: counts, then MPJPE per live subset and over all, beside the references."""
        columns = []
        if self.reference_mm:
            name = "constant pose (mm)" if self.placement_mm else "mean pose (mm)"
            columns.append((name, self.reference_mm))
        if self.placement_mm:
            columns.append(("placement only (mm)", self.placement_mm))
        lines = [
            f"skeletons: {skeletons} for {gt_frames} ground-truth frames ({self.frames_predicted} matched)",
            f"{'live subset':<18} {'frames':>6} {'MPJPE (mm)':>11}"
            + "".join(f" {name:>19}" for name, _ in columns),
        ]
        rows = [*self.by_subset.items(), (ALL, (self.matched, self.mpjpe_all_mm))]
        for label, (n, err) in rows:
            lines.append(
                f"{label:<18} {n:>6d} {err:>11.1f}" + "".join(f" {c[label]:>19.1f}" for _, c in columns)
            )
        return "\n".join(lines)


def score(
    stamps: np.ndarray,
    pred: np.ndarray,
    labels: Sequence[str],
    gt_stamps: np.ndarray,
    gt: np.ndarray,
    constant_pose: np.ndarray | ReferencePose | None = None,
) -> Score:
    """Match each skeleton to its ground-truth frame and compute the MPJPE table (replay scoring); with
    `constant_pose`, the same table for a constant predicted on every frame: a (17, 3) pose as given, or
    a checkpoint's ReferencePose (its Procrustes mean at the mean training pelvis and heading), which
    also adds the placement-only table."""
    skeletons = SkeletonStream(np.asarray(stamps), np.asarray(pred), list(labels), [None] * len(labels))
    truth = GroundTruth(np.asarray(gt_stamps, dtype=np.int64), np.asarray(gt, dtype=np.float64), "arrays")
    return Score.of(score_skeletons("demo", skeletons, truth, constant_pose))
