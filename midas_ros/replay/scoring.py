"""Scoring a recorded skeleton stream against ground truth, per live subset, beside the constant pose.

The skeleton bag (either mode, or the demo's live run) is read with its fusion records
(skeleton_bag.read_skeleton_bag: each PoseArray with the live subset of its fusion record) and each
skeleton is matched to the ground-truth frame nearest its stamp within 50 ms (`match_to_ground_truth`).
Per skeleton (`skeleton_errors`): MPJPE and PA-MPJPE (evaluate.metrics, MM-Fi toolbox convention), and
for the checkpoint's stored reference (evaluate.references, `reference_from_checkpoint`) the constant
pose's MPJPE and PA-MPJPE and the placement-only MPJPE (that shape on the true pelvis with the true
heading; its PA-MPJPE is the constant's); a bare (17, 3) constant gets the first two only. Tables group
skeletons by bag and live subset (larger subsets first) with an "all" row, and, for several bags, the
same over all of them. The demo prints its table from the same rows (demo/scoring.py).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midas_ros.evaluate.metrics import frame_errors
from midas_ros.evaluate.references import ReferencePose
from midas_ros.replay.ground_truth import GroundTruth
from midas_ros.replay.skeleton_bag import SkeletonStream, read_skeleton_bag
from midas_ros.ros.fusion_record import FusionRecord
from midas_ros.skeleton import NUM_JOINTS

MATCH_TOLERANCE_NS = 50_000_000  # a prediction belongs to the ground-truth frame within 50 ms
ERROR_KEYS = ("mpjpe", "pa_mpjpe", "const_mpjpe", "const_pa_mpjpe", "placement_mpjpe")
COLUMNS: dict[str, str] = {  # CSV name -> Markdown header
    "bag": "bag",
    "subset": "live subset",
    "frames": "frames",
    "mpjpe_mm": "MPJPE (mm)",
    "pa_mpjpe_mm": "PA-MPJPE (mm)",
    "constant_mpjpe_mm": "constant pose MPJPE (mm)",
    "constant_pa_mpjpe_mm": "constant pose PA-MPJPE (mm)",
    "placement_mpjpe_mm": "placement only MPJPE (mm)",
}
ALL = "all"
ALL_BAGS = "all bags"


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


def skeleton_errors(
    joints: np.ndarray,
    match: np.ndarray,
    gt: np.ndarray,
    reference: ReferencePose | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{ERROR_KEYS: (N,) mm} per skeleton, NaN where a skeleton has no ground-truth frame (match -1).

    reference: a checkpoint's ReferencePose (constant pose and placement only), or one (17, 3) pose
    predicted on every frame (constant pose only), or None (model errors only)."""
    nan = np.full(len(match), np.nan)
    errors = {key: nan.copy() for key in ERROR_KEYS}
    ok = np.asarray(match) >= 0
    if not ok.any():
        return errors
    target = gt[match[ok]]
    model = frame_errors(joints[ok], target)
    errors["mpjpe"][ok], errors["pa_mpjpe"][ok] = model["mpjpe"], model["pa_mpjpe"]
    if reference is None:
        return errors
    if isinstance(reference, ReferencePose):
        constant = np.asarray(reference.constant(int(ok.sum())))
        errors["placement_mpjpe"][ok] = frame_errors(reference.placed(target), target)["mpjpe"]
    else:
        constant = np.broadcast_to(np.asarray(reference, dtype=np.float64), target.shape)
    const = frame_errors(constant, target)
    errors["const_mpjpe"][ok], errors["const_pa_mpjpe"][ok] = const["mpjpe"], const["pa_mpjpe"]
    return errors


@dataclass
class BagScore:
    """One bag's skeleton stream and its errors (NaN where a skeleton has no ground-truth frame)."""

    name: str
    stamps_ns: np.ndarray  # (N,) skeleton stamps
    joints: np.ndarray  # (N, 17, 3)
    labels: list[str]  # live subset per skeleton
    records: list[FusionRecord | None]
    match: np.ndarray  # (N,) ground-truth index, -1 = none within 50 ms
    errors: dict[str, np.ndarray] = field(default_factory=dict)  # ERROR_KEYS -> (N,) mm
    gt_frames: int = 0
    gt_stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reference: str | None = None  # where the constant pose came from

    @property
    def matched(self) -> np.ndarray:
        return self.match >= 0

    @property
    def gt_with_skeleton(self) -> int:
        return len(set(self.match[self.matched].tolist()))

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.stamps_ns)} skeletons for {self.gt_frames} ground-truth frames "
            f"({self.gt_with_skeleton} with a skeleton, {int(self.matched.sum())} skeletons matched)"
        )


def score_skeletons(
    name: str,
    skeletons: SkeletonStream,
    ground_truth: GroundTruth | None,
    reference: ReferencePose | np.ndarray | None,
) -> BagScore:
    """Score a skeleton stream (module docstring); without ground truth, errors stay NaN."""
    stamps, joints = skeletons.stamps_ns, skeletons.joints
    if ground_truth is None or len(ground_truth) == 0:
        match = np.full(len(stamps), -1)
        errors = skeleton_errors(joints, match, np.zeros((0, NUM_JOINTS, 3)))
        return BagScore(name, stamps, joints, skeletons.labels, skeletons.records, match, errors)
    gt_stamps, gt = ground_truth.stamps_ns, ground_truth.joints
    match = match_to_ground_truth(stamps, gt_stamps)
    if isinstance(reference, ReferencePose):
        source: str | None = reference.source
    else:
        source = None if reference is None else "a given constant pose"
    return BagScore(
        name,
        stamps,
        joints,
        skeletons.labels,
        skeletons.records,
        match,
        skeleton_errors(joints, match, gt, reference),
        gt_frames=len(gt_stamps),
        gt_stamps_ns=gt_stamps,
        reference=source,
    )


def score_bag(
    name: str,
    skeleton_bag: Path,
    ground_truth: GroundTruth | None,
    reference: ReferencePose | np.ndarray | None,
) -> BagScore:
    """Read a skeleton bag and score it (score_skeletons)."""
    return score_skeletons(name, read_skeleton_bag(skeleton_bag), ground_truth, reference)


def _subset_order(label: str) -> tuple[int, str]:
    return (-label.count("+"), label)


def _row(bag: str, subset: str, errors: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, object]:
    def mean(key: str) -> float:
        values = errors[key][rows]
        return float(values.mean()) if len(values) and np.isfinite(values).all() else float("nan")

    return {
        "bag": bag,
        "subset": subset,
        "frames": len(rows),
        "mpjpe_mm": mean("mpjpe"),
        "pa_mpjpe_mm": mean("pa_mpjpe"),
        "constant_mpjpe_mm": mean("const_mpjpe"),
        "constant_pa_mpjpe_mm": mean("const_pa_mpjpe"),
        "placement_mpjpe_mm": mean("placement_mpjpe"),
    }


def _rows_of(
    bag: str, labels: Sequence[str], errors: dict[str, np.ndarray], matched: np.ndarray
) -> list[dict]:
    labels_arr = np.asarray(labels, dtype=object)
    rows = []
    for subset in sorted({lab for lab, ok in zip(labels, matched, strict=True) if ok}, key=_subset_order):
        rows.append(_row(bag, subset, errors, np.nonzero(matched & (labels_arr == subset))[0]))
    rows.append(_row(bag, ALL, errors, np.nonzero(matched)[0]))
    return rows


def subset_rows(scores: Sequence[BagScore]) -> list[dict[str, object]]:
    """Table rows: per bag its live subsets and "all"; with several bags, then the same over all bags.
    Only skeletons matched to a ground-truth frame count."""
    rows: list[dict[str, object]] = []
    for s in scores:
        rows += _rows_of(s.name, s.labels, s.errors, s.matched)
    if len(scores) > 1:
        labels = [lab for s in scores for lab in s.labels]
        errors = {k: np.concatenate([s.errors[k] for s in scores]) for k in ERROR_KEYS}
        matched = np.concatenate([s.matched for s in scores])
        rows += _rows_of(ALL_BAGS, labels, errors, matched)
    return rows


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    header = "| " + " | ".join(COLUMNS.values()) + " |"
    rule = "|" + "|".join("---" if k in ("bag", "subset") else "---:" for k in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(row[k]) for k in COLUMNS) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def write_tables(
    rows: Sequence[dict[str, object]], out_dir: Path, notes: Sequence[str] = ()
) -> tuple[Path, Path]:
    """table.md (with `notes` below the table) and table.csv in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = out_dir / "table.md", out_dir / "table.csv"
    text = ["# midas_ros replay: MPJPE / PA-MPJPE per live subset", "", markdown_table(rows), ""]
    text += [f"- {note}" for note in notes]
    md.write_text("\n".join(text) + "\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()})
    return md, csv_path


def write_frames_csv(score: BagScore, path: Path) -> Path:
    """One line per skeleton: stamp, live subset, matched ground-truth stamp, errors, latencies."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "stamp_ns",
                "subset",
                "gt_stamp_ns",
                *[f"{k}_mm" for k in ERROR_KEYS],
                "wait_ms",
                "inference_ms",
                "stamp_to_publish_ms",
                "missing",
            ]
        )
        for k, stamp in enumerate(score.stamps_ns.tolist()):
            record = score.records[k]
            gt_stamp = int(score.gt_stamps_ns[score.match[k]]) if score.match[k] >= 0 else ""
            latency = (
                [f"{record.wait_ms:.3f}", f"{record.inference_ms:.3f}", f"{record.stamp_to_publish_ms:.3f}"]
                if record
                else ["", "", ""]
            )
            missing = ";".join(f"{m}:{r}" for m, r in record.missing.items()) if record else ""
            errors = [
                "" if math.isnan(score.errors[e][k]) else f"{score.errors[e][k]:.3f}" for e in ERROR_KEYS
            ]
            writer.writerow([stamp, score.labels[k], gt_stamp, *errors, *latency, missing])
    return path
