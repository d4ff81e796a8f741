"""Scoring a recorded skeleton stream against the demo bag's ground truth, per live modality subset.

Each skeleton's live subset comes from the fusion node's per-skeleton record (midas/skeleton/fusion,
``fusion_record.parse_fusion_record``), which carries the skeleton's own stamp. Predictions are matched to
the nearest ground-truth frame by stamp (within 50 ms).

Beside the model, the same frames are scored with a no-sensor constant: preferably the checkpoint's
stored Procrustes-mean pose (`checkpoint_reference`, evaluate/references.py), which also gives the
"placement only" column (that shape on the true pelvis, turned to the true heading); else any (17, 3)
pose predicted as given.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.evaluate.references import ReferencePose, reference_from_checkpoint
from midas_ros.interfaces import FUSION_TOPIC, POSES_TOPIC
from midas_ros.ros.bag_io import read_messages, read_pose_arrays, resolved_topic
from midas_ros.ros.fusion_record import parse_fusion_record
from midas_ros.skeleton import NUM_JOINTS

MATCH_TOLERANCE_NS = 50_000_000  # a prediction belongs to the ground-truth frame within 50 ms
UNKNOWN_SUBSET = "?"  # a skeleton whose fusion record was not recorded


def read_skeletons(skeleton_bag: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(stamps ns (N,), joints (N, 17, 3), live subset label per skeleton) from a recorded skeleton bag.

    Poses and fusion records are paired by stamp (in recording order when two share a stamp).
    """
    stamps, joints = read_pose_arrays(skeleton_bag, resolved_topic(POSES_TOPIC))
    labels_by_stamp: dict[int, deque[str]] = defaultdict(deque)
    for message in read_messages(skeleton_bag, [resolved_topic(FUSION_TOPIC)]):
        record = parse_fusion_record(message.deserialize())
        labels_by_stamp[record.stamp_ns].append(record.label)
    labels = []
    for stamp in stamps.tolist():
        queue = labels_by_stamp.get(stamp)
        labels.append(queue.popleft() if queue else UNKNOWN_SUBSET)
    if len(stamps) == 0:
        joints = np.zeros((0, NUM_JOINTS, 3))
    return stamps, joints, labels


def match_to_ground_truth(pred_stamps: np.ndarray, gt_stamps: np.ndarray) -> np.ndarray:
    """Index of the nearest ground-truth stamp of each prediction, -1 when none is within 50 ms."""
    pred_stamps = np.asarray(pred_stamps, dtype=np.int64)
    gt_stamps = np.asarray(gt_stamps, dtype=np.int64)
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
    """{subset label: (frames, MPJPE mm)} over the predictions matched to a ground-truth frame.

    Larger subsets first, then by name.
    """
    table: dict[str, tuple[int, float]] = {}
    for label in sorted(set(labels), key=lambda lab: (-lab.count("+"), lab)):
        rows = [k for k, lab in enumerate(labels) if lab == label and match[k] >= 0]
        if rows:
            table[label] = (len(rows), mpjpe_mm(pred[rows], gt[match[rows]]))
    return table


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
        rows = [*self.by_subset.items(), ("all", (self.matched, self.mpjpe_all_mm))]
        for label, (n, err) in rows:
            lines.append(
                f"{label:<18} {n:>6d} {err:>11.1f}" + "".join(f" {c[label]:>19.1f}" for _, c in columns)
            )
        return "\n".join(lines)


def checkpoint_reference(checkpoint: str | Path) -> ReferencePose | None:
    """The Procrustes-mean constant pose stored in a checkpoint's JSON, None for older checkpoints."""
    return reference_from_checkpoint(checkpoint)


def score(
    stamps: np.ndarray,
    pred: np.ndarray,
    labels: Sequence[str],
    gt_stamps: np.ndarray,
    gt: np.ndarray,
    constant_pose: np.ndarray | ReferencePose | None = None,
) -> Score:
    """Match each skeleton to its ground-truth frame and compute the MPJPE table; with `constant_pose`,
    the same table for a constant predicted on every frame: a (17, 3) pose as given, or a checkpoint's
    ReferencePose (its Procrustes mean at the mean training pelvis and heading), which also adds the
    placement-only table."""
    match = match_to_ground_truth(stamps, gt_stamps)
    ok = match >= 0
    reference = placement = None
    if constant_pose is not None and ok.any():
        if isinstance(constant_pose, ReferencePose):
            constant = np.asarray(constant_pose.constant(len(pred)))
            # Each skeleton's placed shape follows the ground-truth frame it is matched to.
            targets = gt[np.where(ok, match, 0)]
            placement = _table_of(constant_pose.placed(targets), labels, gt, match, ok)
        else:
            constant = np.broadcast_to(np.asarray(constant_pose, dtype=np.float64), pred.shape)
        reference = _table_of(constant, labels, gt, match, ok)
    return Score(
        match=match,
        by_subset=mpjpe_by_subset(pred, labels, gt, match),
        matched=int(ok.sum()),
        mpjpe_all_mm=mpjpe_mm(pred[ok], gt[match[ok]]) if ok.any() else float("nan"),
        frames_predicted=len(set(match[ok].tolist())),
        reference_mm=reference,
        placement_mm=placement,
    )


def _table_of(
    poses: np.ndarray, labels: Sequence[str], gt: np.ndarray, match: np.ndarray, ok: np.ndarray
) -> dict[str, float]:
    """{subset label: MPJPE mm} and "all" of one pose per skeleton."""
    table = {label: err for label, (_, err) in mpjpe_by_subset(poses, labels, gt, match).items()}
    table["all"] = mpjpe_mm(poses[ok], gt[match[ok]])
    return table
