"""The ground-truth skeleton of a bag: a PoseArray topic or an .npz file, checked and in the base frame.

- A ``geometry_msgs/PoseArray`` topic: one message per frame, header stamp = the frame's time, the 17
  joints in MM-Fi (Human3.6M) order as the poses' positions (metres).
- An ``.npz`` with ``stamps`` (N,) integer nanoseconds (the sensors' header-stamp clock) and ``joints``
  (N, 17, 3) metres.

Both are taken to be in the base frame ``midas_base`` unless a fixed transform is given (``--gt-pose x
y z roll pitch yaw``: the ground truth's frame in the base frame, as `midas_ros.rig.Pose`). Frames with
a non-finite joint (a motion capture that lost the person) are left out and counted; frames are sorted
by stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midas_ros.replay.bag import ReplayError
from midas_ros.rig import Pose
from midas_ros.ros.bag_io import iter_pose_arrays
from midas_ros.skeleton import NUM_JOINTS


@dataclass(frozen=True)
class GroundTruth:
    stamps_ns: np.ndarray  # (N,) int64, sorted
    joints: np.ndarray  # (N, 17, 3) float64, base frame, metres
    source: str
    frame_id: str = ""  # the PoseArray's frame_id ("" for an npz)
    dropped: int = 0  # frames left out for a non-finite joint

    def __len__(self) -> int:
        return len(self.stamps_ns)


def _finish(
    stamps: np.ndarray, joints: np.ndarray, source: str, frame_id: str, pose: Pose | None
) -> GroundTruth:
    finite = np.isfinite(joints).all(axis=(1, 2))
    order = np.argsort(stamps[finite], kind="stable")
    joints = joints[finite][order]
    if pose is not None:
        joints = pose.to_base(joints)
    return GroundTruth(stamps[finite][order].astype(np.int64), joints, source, frame_id, int((~finite).sum()))


def from_topic(bag: Path | str, topic: str, pose: Pose | None = None) -> GroundTruth:
    """Ground truth from a PoseArray topic (ReplayError naming the first message of a wrong size)."""
    stamps, joints, frame_ids = [], [], set()
    for k, (stamp_ns, frame_id, positions) in enumerate(iter_pose_arrays(bag, topic)):
        if len(positions) != NUM_JOINTS:
            raise ReplayError(
                f"ground truth topic {topic}: message {k} (stamp {stamp_ns} ns) holds {len(positions)} "
                f"poses; expected {NUM_JOINTS}, the joints in MM-Fi (Human3.6M) order"
            )
        stamps.append(stamp_ns)
        joints.append(positions)
        frame_ids.add(frame_id)
    if not stamps:
        raise ReplayError(f"ground truth topic {topic} holds no message")
    frame_id = frame_ids.pop() if len(frame_ids) == 1 else ",".join(sorted(frame_ids))
    return _finish(
        np.asarray(stamps, dtype=np.int64), np.asarray(joints, dtype=np.float64), topic, frame_id, pose
    )


def from_npz(path: Path | str, pose: Pose | None = None) -> GroundTruth:
    """Ground truth from an .npz with `stamps` (N,) int ns and `joints` (N, 17, 3) metres."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"ground truth file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ReplayError(f"ground truth file {path} is not a readable .npz: {err}") from err
    found = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()) or "nothing"
    if "stamps" not in arrays or "joints" not in arrays:
        raise ReplayError(
            f"ground truth {path} needs arrays 'stamps' (N,) int ns and 'joints' (N, {NUM_JOINTS}, 3) "
            f"metres; it holds {found}"
        )
    stamps, joints = arrays["stamps"], arrays["joints"]
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or stamps.shape != (len(joints),):
        raise ReplayError(
            f"ground truth {path}: expected stamps (N,) and joints (N, {NUM_JOINTS}, 3) with the same N, "
            f"got stamps {stamps.shape} and joints {joints.shape}"
        )
    if not np.issubdtype(stamps.dtype, np.integer):
        raise ReplayError(
            f"ground truth {path}: stamps must be integer nanoseconds, got {stamps.dtype} "
            f"(e.g. (seconds * 1e9).astype(np.int64))"
        )
    if not np.issubdtype(joints.dtype, np.floating) and not np.issubdtype(joints.dtype, np.integer):
        raise ReplayError(f"ground truth {path}: joints must be numbers (metres), got {joints.dtype}")
    if len(stamps) == 0:
        raise ReplayError(f"ground truth {path} holds no frame")
    return _finish(stamps.astype(np.int64), joints.astype(np.float64), str(path), "", pose)
