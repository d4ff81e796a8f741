"""The skeleton stream as a bag: what the fusion node publishes, written by both modes, read by scoring.

- `SKELETON_BAG_TOPICS`: its topics and types (PoseArray, MarkerArray, fusion record), as the live
  recorder (live.py) subscribes to them and fast mode (fast.py) writes them.
- `skeleton_messages` / `withdraw_message`: the CDR bytes of what the fusion node publishes for a
  skeleton and when it withdraws one, from the runtime's own builders (ros/fusion.py's `Fused`,
  ros/fusion_record.py, ros/markers.py).
- `read_skeleton_bag`: each PoseArray with the fusion record of its stamp (the live subset, the missing
  sensors and why, the latencies); `read_skeletons` the same as (stamps, joints, subset labels).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.serialization import serialize_message
from visualization_msgs.msg import MarkerArray

from midas_ros.interfaces import FUSION_TOPIC, MARKERS_TOPIC, POSES_TOPIC
from midas_ros.ros.bag_io import msgtype_name, read_messages, read_pose_arrays, resolved_topic
from midas_ros.ros.fusion import Fused
from midas_ros.ros.fusion_record import FusionRecord, fusion_record_msg, parse_fusion_record
from midas_ros.ros.markers import delete_all_markers
from midas_ros.skeleton import NUM_JOINTS
from midas_ros.sync import NS_PER_S

# What the fusion node publishes (relative names, root namespace) and their message classes.
RECORDED: dict[str, type] = {
    POSES_TOPIC: PoseArray,
    MARKERS_TOPIC: MarkerArray,
    FUSION_TOPIC: DiagnosticArray,
}
# The same topics as the skeleton bag names them.
SKELETON_BAG_TOPICS: dict[str, str] = {resolved_topic(t): msgtype_name(cls) for t, cls in RECORDED.items()}
UNKNOWN_SUBSET = "?"  # a skeleton whose fusion record was not recorded


def skeleton_messages(
    fused: Fused, record: FusionRecord, *, frame_id: str, lifetime_s: float
) -> dict[str, bytes]:
    """{bag topic: CDR bytes} of the markers, poses and fusion record the node publishes for a skeleton."""
    return {
        resolved_topic(MARKERS_TOPIC): serialize_message(fused.markers(frame_id, lifetime_s)),
        resolved_topic(POSES_TOPIC): serialize_message(fused.poses(frame_id)),
        resolved_topic(FUSION_TOPIC): serialize_message(fusion_record_msg(record, frame_id)),
    }


def withdraw_message(frame_id: str, stamp_ns: int) -> tuple[str, bytes]:
    """(bag topic, CDR bytes) of the markers' DELETEALL the node publishes when the skeleton goes."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    msg = delete_all_markers(frame_id, Time(sec=sec, nanosec=nanosec))
    return resolved_topic(MARKERS_TOPIC), serialize_message(msg)


@dataclass(frozen=True)
class SkeletonStream:
    """A skeleton bag's skeletons, in recording order."""

    stamps_ns: np.ndarray  # (N,) int64
    joints: np.ndarray  # (N, 17, 3)
    labels: list[str]  # each skeleton's live subset (UNKNOWN_SUBSET without its fusion record)
    records: list[FusionRecord | None]  # each skeleton's fusion record (None: not recorded)


def read_skeleton_bag(skeleton_bag: Path) -> SkeletonStream:
    """The skeletons of a skeleton bag with their fusion records, paired by stamp (in recording order
    when two share a stamp; a record may come before or after its poses)."""
    stamps, joints = read_pose_arrays(skeleton_bag, resolved_topic(POSES_TOPIC))
    by_stamp: dict[int, deque[FusionRecord]] = defaultdict(deque)
    for message in read_messages(skeleton_bag, [resolved_topic(FUSION_TOPIC)]):
        record = parse_fusion_record(message.deserialize())
        by_stamp[record.stamp_ns].append(record)
    records: list[FusionRecord | None] = []
    for stamp in stamps.tolist():
        queue = by_stamp.get(stamp)
        records.append(queue.popleft() if queue else None)
    if len(stamps) == 0:
        joints = np.zeros((0, NUM_JOINTS, 3))
    labels = [r.label if r is not None else UNKNOWN_SUBSET for r in records]
    return SkeletonStream(stamps, joints, labels, records)


def read_skeletons(skeleton_bag: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(stamps ns (N,), joints (N, 17, 3), live subset label per skeleton) of a skeleton bag."""
    stream = read_skeleton_bag(skeleton_bag)
    return stream.stamps_ns, stream.joints, stream.labels
