"""Everything one bag's replay needs, resolved and checked before anything heavy runs.

`prepare` opens the bag (bag.inspect_bag: topics and types), reads the ground truth
(ground_truth.py), picks each sensor's pose (tf_static.sensor_poses) and merges the nodes' parameters
(settings.py). The result is a plain, picklable `ReplayPlan` that fast.py runs in this process or in a
worker process, and live.py hands to the node graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from midas_ros.replay import ground_truth as gt_io
from midas_ros.replay.bag import BagInputs, ReplayError, TopicRequest, inspect_bag
from midas_ros.replay.ground_truth import GroundTruth
from midas_ros.replay.settings import NodeParameters, node_parameters
from midas_ros.replay.tf_static import ResolvedPose, sensor_poses
from midas_ros.rig import Pose
from midas_ros.ros.fusion import FusionSettings
from midas_ros.ros.parameters import ADAPTER_NODES, FUSION_NODE, resolve
from midas_ros.ros.samples import DEPTH_PARAMETERS, POSE_PARAMETERS, fallback_intrinsics


@dataclass(frozen=True)
class ReplayPlan:
    name: str  # the bag's name in tables and its output folder
    inputs: BagInputs
    poses: dict[str, ResolvedPose]  # modality -> pose used (depth: camera_link; lidar: the cloud's frame)
    overrides: NodeParameters  # what the nodes get over config/*.yaml: --set values and the poses
    parameters: NodeParameters  # config/*.yaml with the overrides: what every node runs with
    ground_truth: GroundTruth | None
    checkpoint: Path
    device: str
    config_dir: Path | None
    out_dir: Path

    @property
    def fusion_settings(self) -> FusionSettings:
        """The fusion node's settings (its parameters: config/midas.yaml with the overrides)."""
        return FusionSettings.from_parameters(self.parameters[FUSION_NODE])

    @property
    def base_frame(self) -> str:
        return self.fusion_settings.frame_id

    def adapter_parameters(self, modality: str) -> dict[str, Any]:
        return self.parameters[ADAPTER_NODES[modality]]

    def describe(self) -> list[str]:
        """Lines saying what is replayed, from where, and what was left out."""
        lines = [f"bag {self.inputs.path} ({self.inputs.duration_s:.1f} s)"]
        for m, topic in self.inputs.sensor_topics.items():
            pose = self.poses.get(m)
            where = f", pose {[round(v, 4) for v in pose.pose.as_list()]} ({pose.source})" if pose else ""
            lines.append(f"  {m:<5} {topic} ({self.inputs.counts.get(topic, 0)} messages{where})")
        if self.inputs.camera_info_topic:
            lines.append(f"  camera info {self.inputs.camera_info_topic}")
        if self.ground_truth is not None:
            gt = self.ground_truth
            dropped = f", {gt.dropped} left out (non-finite)" if gt.dropped else ""
            lines.append(f"  ground truth {gt.source}: {len(gt)} frames{dropped}")
        else:
            lines.append("  no ground truth: skeletons and timeline only, no error table")
        lines += [f"  note: {note}" for note in self.inputs.notes]
        return lines


def prepare(
    bag: Path | str,
    request: TopicRequest,
    *,
    out_dir: Path,
    name: str | None = None,
    gt_npz: Path | None = None,
    gt_pose: Pose | None = None,
    camera_pose: Pose | None = None,
    lidar_pose: Pose | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_dir: Path | None = None,
    checkpoint: Path,
    device: str = "auto",
    use_tf_static: bool = True,
) -> ReplayPlan:
    """Resolve and check one bag's replay (ReplayError with a clear message for unusable input)."""
    overrides = {node: dict(values) for node, values in (overrides or {}).items()}
    try:
        params = node_parameters(config_dir, overrides)
        base_frame = FusionSettings.from_parameters(params[FUSION_NODE]).frame_id
        has_k = fallback_intrinsics(resolve(DEPTH_PARAMETERS, params[ADAPTER_NODES["depth"]])) is not None
    except (OSError, ValueError) as err:
        raise ReplayError(f"cannot read the nodes' parameters: {err}") from err
    if gt_npz is not None:
        request = replace(request, ground_truth="none")  # the file, not a topic
    inputs = inspect_bag(bag, request, camera_info_fallback=has_k)

    explicit: dict[str, Pose] = {}
    for modality, pose in (("depth", camera_pose), ("lidar", lidar_pose)):
        parameter = POSE_PARAMETERS[modality].name
        if pose is not None:
            explicit[modality] = pose
        elif parameter in overrides.get(ADAPTER_NODES[modality], {}):
            explicit[modality] = Pose.from_list(overrides[ADAPTER_NODES[modality]][parameter])
    poses = sensor_poses(
        inputs.path,
        inputs.frame_ids,
        {m: params[ADAPTER_NODES[m]] for m in POSE_PARAMETERS},
        explicit,
        base_frame=base_frame,
        use_tf_static=use_tf_static and inputs.has_tf_static,
    )
    for modality, resolved in poses.items():
        node, parameter = ADAPTER_NODES[modality], POSE_PARAMETERS[modality].name
        overrides.setdefault(node, {})[parameter] = resolved.pose.as_list()
        if resolved.source == "config":
            inputs.notes.append(
                f"{modality} pose from the config's {parameter} (not in /tf_static, no --"
                f"{'camera' if modality == 'depth' else 'lidar'}-pose): check it is your rig's"
            )
    params = node_parameters(config_dir, overrides)

    ground_truth = None
    if gt_npz is not None:
        ground_truth = gt_io.from_npz(gt_npz, gt_pose)
    elif inputs.ground_truth_topic is not None:
        ground_truth = gt_io.from_topic(inputs.path, inputs.ground_truth_topic, gt_pose)
        if gt_pose is None and ground_truth.frame_id not in ("", base_frame):
            inputs.notes.append(
                f"ground truth frame_id is {ground_truth.frame_id!r}, not {base_frame!r}: scored as if it "
                "were the base frame (give --gt-pose if it is not)"
            )
    if not Path(checkpoint).exists():
        raise ReplayError(f"checkpoint {checkpoint} not found (give --checkpoint)")
    return ReplayPlan(
        name=name or Path(bag).name,
        inputs=inputs,
        poses=poses,
        overrides=overrides,
        parameters=params,
        ground_truth=ground_truth,
        checkpoint=Path(checkpoint),
        device=device,
        config_dir=config_dir,
        out_dir=out_dir,
    )
