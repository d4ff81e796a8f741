"""The demo's scenario: a simulated rig whose sensors drop out on a schedule, written as an MCAP bag.

The bag holds what real drivers would publish, built with the runtime's own rclpy message builders and
written as the CDR bytes rclpy serialises (the bytes a recorder would store):

| topic (BAG_TOPICS)         | type                               | frame_id                    |
|----------------------------|------------------------------------|-----------------------------|
| "/" + SENSOR_TOPICS[depth] | sensor_msgs/Image 16UC1 mm         | camera_depth_optical_frame  |
| "/" + DEPTH_CAMERA_INFO    | sensor_msgs/CameraInfo (with each) | camera_depth_optical_frame  |
| "/" + SENSOR_TOPICS[lidar] | sensor_msgs/PointCloud2, Ouster    | os_lidar                    |
| "/" + SENSOR_TOPICS[csi]   | PointCloud2 in the CSI layout      | wifi_csi                    |
| "/" + GROUND_TRUTH_TOPIC   | geometry_msgs/PoseArray            | midas_base                  |
| /tf_static                 | tf2_msgs/TFMessage                 | midas_base -> sensors       |

The sensors are those of a rig the model never saw in training (sim.rigs, held out by the recipe):
its camera's own resolution and intrinsics (published as camera_info), its mounting heights and tilts
(in /tf_static and, for the nodes, as their pose parameters: `rig_parameters`), and the LiDAR's whole
forward sector, walls and furniture included. Each sensor is stamped with its own offset from the
frame time plus jitter (real sensors are not triggered together), and is silent during its outages;
ground truth comes every frame. The scenario's parameters and message counts are stored in the bag's
metadata (``read_demo_bag_info``).

    python -m midas_ros.demo.scenario OUT_DIR [--frames-per-action N] [--actions 14 26]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseArray
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.demo.cloud_layouts import driver_cloud
from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC, GROUND_TRUTH_TOPIC, SENSOR_TOPICS, TF_STATIC_TOPIC
from midas_ros.rig import BASE_FRAME, Pose, Rig
from midas_ros.ros.bag_io import TYPESTORE, BagRecorder, bag_custom_data, msgtype_name, resolved_topic
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2
from midas_ros.ros.markers import pose_array
from midas_ros.sim.rigs import rig_by_name
from midas_ros.sim.sensors import FRAME_RATE_HZ
from midas_ros.sync import NS_PER_S

# -- the rig ---------------------------------------------------------------------------------------------

FRAME_IDS: dict[str, str] = {"depth": "camera_depth_optical_frame", "lidar": "os_lidar", "csi": "wifi_csi"}
DEFAULT_RIG = "pool31"  # held out of training: a D435 at 848 x 480, 1.4 m up, 12 deg down; an OS1-64
# camera_link (x forward, y left, z up) -> optical frame (z forward, x right, y down), as in REP 103
_OPTICAL_IN_CAMERA = Pose(roll=-np.pi / 2, yaw=-np.pi / 2)


def sensor_poses(rig: Rig) -> dict[str, Pose]:
    """Each sensor frame's pose in the base frame. The CSI frame is a logical one at the origin: CSI
    has no geometry the pipeline uses."""
    return {
        FRAME_IDS["depth"]: rig.depth_pose.compose(_OPTICAL_IN_CAMERA),
        FRAME_IDS["lidar"]: rig.lidar_pose,
        FRAME_IDS["csi"]: Pose(),
    }


def rig_parameters(rig: Rig) -> dict[str, dict[str, Any]]:
    """The adapters' pose parameters for a rig (node name -> overrides), as a user sets them."""
    return {
        "depth_adapter": {"camera_pose": rig.depth_pose.as_list()},
        "lidar_adapter": {"lidar_pose": rig.lidar_pose.as_list()},
    }


# Real sensors are not triggered together: fixed offsets (s) from the frame time, plus a small jitter.
SENSOR_OFFSETS_S: dict[str, float] = {"depth": 0.0, "lidar": 0.012, "csi": -0.018}
SENSOR_JITTER_S = 0.003
DEFAULT_START_S = 1_700_000_000  # bag stamps look like wall time, as in a recorded bag
FRAME_PERIOD_NS = round(NS_PER_S / FRAME_RATE_HZ)

# -- the bag's topics (absolute, as recorded in the root namespace) ---------------------------------------

BAG_SENSOR_TOPICS: dict[str, str] = {m: resolved_topic(SENSOR_TOPICS[m]) for m in MODALITIES}
BAG_CAMERA_INFO_TOPIC = resolved_topic(DEPTH_CAMERA_INFO_TOPIC)
BAG_GROUND_TRUTH_TOPIC = resolved_topic(GROUND_TRUTH_TOPIC)
# tf2's fixed, absolute name for static transforms (not one of this package's interfaces).
# tf2_msgs cannot be installed next to rclpy here, so /tf_static is the one message built and serialised
# with rosbags' own classes; every other message comes from the runtime's rclpy builders.
TF_MESSAGE_TYPE = "tf2_msgs/msg/TFMessage"
BAG_TOPICS: dict[str, str] = {
    BAG_SENSOR_TOPICS["depth"]: msgtype_name(Image),
    BAG_CAMERA_INFO_TOPIC: msgtype_name(CameraInfo),
    BAG_SENSOR_TOPICS["lidar"]: msgtype_name(PointCloud2),
    BAG_SENSOR_TOPICS["csi"]: msgtype_name(PointCloud2),
    BAG_GROUND_TRUTH_TOPIC: msgtype_name(PoseArray),
    TF_STATIC_TOPIC: TF_MESSAGE_TYPE,
}
SCENARIO_KEY = "midas_ros.demo.scenario"  # the bag's custom_data key holding DemoBagInfo as JSON

DEFAULT_SUBJECT = 40  # held out from training
DEFAULT_ACTIONS: tuple[int, ...] = (14, 12, 27, 26)
DEFAULT_FRAMES_PER_ACTION = 100

# -- dropout schedule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """One sensor silent over [start_s, end_s) seconds from the start of the bag."""

    modality: str
    start_s: float
    end_s: float


# Fractions of the bag's duration: each sensor goes away and comes back at least once, and two
# windows have two sensors down together (lidar + csi, then depth + csi).
_SCHEDULE_FRACTIONS: tuple[tuple[str, float, float], ...] = (
    ("depth", 0.12, 0.24),
    ("lidar", 0.32, 0.48),
    ("csi", 0.40, 0.56),
    ("depth", 0.66, 0.80),
    ("csi", 0.72, 0.88),
)


def default_dropout_schedule(duration_s: float) -> tuple[Outage, ...]:
    """The demo's scripted dropouts scaled to a bag of `duration_s` seconds."""
    return tuple(Outage(m, a * duration_s, b * duration_s) for m, a, b in _SCHEDULE_FRACTIONS)


def is_alive(schedule: Iterable[Outage], modality: str, t_s: float) -> bool:
    """Whether `modality` publishes at `t_s` seconds from the start under `schedule`."""
    return not any(o.modality == modality and o.start_s <= t_s < o.end_s for o in schedule)


# -- messages --------------------------------------------------------------------------------------------


def _header(stamp_ns: int, frame_id: str) -> Header:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def camera_info_message(rig: Rig, stamp_ns: int) -> CameraInfo:
    """The depth stream's CameraInfo as realsense2_camera publishes it: rectified, no distortion."""
    k = rig.depth_intrinsics
    return CameraInfo(
        header=_header(stamp_ns, FRAME_IDS["depth"]),
        width=k.width,
        height=k.height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def sensor_message(seq: Any, frame: int, modality: str, header: Header) -> Image | PointCloud2:
    """One simulated frame of a sensor as its driver publishes it (rclpy message)."""
    if modality == "depth":
        return array_to_image(np.asarray(seq.depth_mm[frame], dtype=np.uint16), header)  # 16UC1 mm
    if modality == "lidar":
        # The LiDAR's whole forward sector (walls, floor, furniture and the person), unorganised.
        return driver_cloud(seq.lidar[frame][:, :3].astype(np.float32), "ouster", header=header)
    if modality == "csi":
        return csi_to_pointcloud2(seq.csi_amplitude[frame], seq.csi_phase[frame], header)
    raise ValueError(f"unknown modality {modality!r}")


def ground_truth_message(joints: np.ndarray, stamp_ns: int) -> PoseArray:
    """Ground-truth joints (17, 3), base frame, as the PoseArray the fusion node's output is scored on."""
    return pose_array(joints, frame_id=BASE_FRAME, stamp=_header(stamp_ns, BASE_FRAME).stamp)


def write_frame(
    recorder: BagRecorder,
    rig: Rig,
    frame_ns: int,
    joints: np.ndarray,
    stamps_ns: Mapping[str, int],
    sensor: Callable[[str, Header], Image | PointCloud2],
    start_ns: int,
) -> None:
    """One frame of a simulated bag: the ground truth stamped frame_ns, and each sensor of stamps_ns
    (modality -> header stamp) as sensor(modality, header) builds it, the depth image with its
    CameraInfo. Log time = header stamp, in time order, as a recorder on the sensor host would."""
    items: list[tuple[int, str, Any]] = [
        (frame_ns, BAG_GROUND_TRUTH_TOPIC, ground_truth_message(joints, frame_ns))
    ]
    for modality, stamp_ns in stamps_ns.items():
        if modality == "depth":  # camera_info first: the image needs it
            items.append((stamp_ns, BAG_CAMERA_INFO_TOPIC, camera_info_message(rig, stamp_ns)))
        msg = sensor(modality, _header(stamp_ns, FRAME_IDS[modality]))
        items.append((stamp_ns, BAG_SENSOR_TOPICS[modality], msg))
    for stamp_ns, topic, msg in sorted(items, key=lambda item: item[0]):
        recorder.write(topic, max(stamp_ns, start_ns), serialize_message(msg))


def static_tf_cdr(rig: Rig, stamp_ns: int) -> bytes:
    """/tf_static (base frame -> each sensor frame, sensor_poses) as CDR bytes, built with rosbags."""
    types = TYPESTORE.types
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=BASE_FRAME
    )
    transforms = [
        types["geometry_msgs/msg/TransformStamped"](
            header=header,
            child_frame_id=child,
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](*(float(t) for t in pose.translation)),
                rotation=types["geometry_msgs/msg/Quaternion"](*(float(q) for q in pose.quaternion_xyzw())),
            ),
        )
        for child, pose in sensor_poses(rig).items()
    ]
    msg = types[TF_MESSAGE_TYPE](transforms=transforms)
    return bytes(TYPESTORE.serialize_cdr(msg, TF_MESSAGE_TYPE))


# -- the bag ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoBagInfo:
    """What a demo bag holds (also stored in its metadata under SCENARIO_KEY)."""

    path: Path
    subject: int
    rig: str
    actions: tuple[int, ...]
    frames_per_action: int
    seed: int
    num_frames: int
    start_ns: int
    duration_s: float
    schedule: tuple[Outage, ...]
    message_counts: dict[str, int]

    def to_json(self) -> str:
        fields = asdict(self)
        fields.pop("path")
        return json.dumps(fields)


def read_demo_bag_info(path: Path | str) -> DemoBagInfo | None:
    """The scenario a demo bag was written with; None for a bag without one (not a demo bag)."""
    text = bag_custom_data(path).get(SCENARIO_KEY)
    if text is None:
        return None
    fields = json.loads(text)
    return DemoBagInfo(
        path=Path(path),
        subject=int(fields["subject"]),
        rig=str(fields["rig"]),
        actions=tuple(int(a) for a in fields["actions"]),
        frames_per_action=int(fields["frames_per_action"]),
        seed=int(fields["seed"]),
        num_frames=int(fields["num_frames"]),
        start_ns=int(fields["start_ns"]),
        duration_s=float(fields["duration_s"]),
        schedule=tuple(Outage(o["modality"], o["start_s"], o["end_s"]) for o in fields["schedule"]),
        message_counts={str(k): int(v) for k, v in fields["message_counts"].items()},
    )


def write_demo_bag(
    path: Path | str,
    *,
    subject: int = DEFAULT_SUBJECT,
    rig: str = DEFAULT_RIG,
    actions: Sequence[int] = DEFAULT_ACTIONS,
    frames_per_action: int = DEFAULT_FRAMES_PER_ACTION,
    seed: int = 0,
    start_s: int = DEFAULT_START_S,
    schedule: Sequence[Outage] | None = None,
) -> DemoBagInfo:
    """Simulate `subject` doing `actions` back to back at 10 Hz, seen through the pool rig named `rig`,
    and write the sensor streams as a bag.

    Sensors are silent during their outages in `schedule` (default: `default_dropout_schedule`); ground
    truth is written for every frame. The bag is written next to `path` and renamed when complete, so an
    interrupted write never leaves a bag at `path`. `path` must not exist.
    """
    from midas_ros.sim.generate import simulate_sequence  # heavy: import only when writing
    from midas_ros.sim.rigs import rig_placement

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} already exists")
    if frames_per_action < 1 or not actions:
        raise ValueError("need at least one action and one frame per action")
    num_frames = frames_per_action * len(actions)
    duration_s = num_frames * FRAME_PERIOD_NS / NS_PER_S
    schedule = tuple(default_dropout_schedule(duration_s) if schedule is None else schedule)
    start_ns = start_s * NS_PER_S
    rng = np.random.default_rng(seed)
    sensor_rig = rig_by_name(rig)
    placement = rig_placement(subject, actions[0], seed)  # one spot in the room for the whole bag
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # our own interrupted write

    try:
        with BagRecorder(partial, BAG_TOPICS) as recorder:
            recorder.write(TF_STATIC_TOPIC, start_ns, static_tf_cdr(sensor_rig, start_ns))
            with tqdm(total=num_frames, desc="demo bag", unit="frame") as progress:
                for k, action in enumerate(actions):
                    seq = simulate_sequence(subject, action, frames_per_action, seed, sensor_rig, placement)
                    for f in range(frames_per_action):
                        index = k * frames_per_action + f
                        t_s = index * FRAME_PERIOD_NS / NS_PER_S
                        frame_ns = start_ns + index * FRAME_PERIOD_NS
                        stamps_ns = {  # the sensors alive, not triggered together
                            m: frame_ns
                            + round(
                                (SENSOR_OFFSETS_S[m] + rng.uniform(-SENSOR_JITTER_S, SENSOR_JITTER_S))
                                * NS_PER_S
                            )
                            for m in MODALITIES
                            if is_alive(schedule, m, t_s)
                        }
                        write_frame(
                            recorder,
                            sensor_rig,
                            frame_ns,
                            seq.joints[f],
                            stamps_ns,
                            functools.partial(sensor_message, seq, f),
                            start_ns,
                        )
                        progress.update()
            info = DemoBagInfo(
                path=path,
                subject=subject,
                rig=rig,
                actions=tuple(actions),
                frames_per_action=frames_per_action,
                seed=seed,
                num_frames=num_frames,
                start_ns=start_ns,
                duration_s=duration_s,
                schedule=schedule,
                message_counts=dict(recorder.counts),
            )
            recorder.set_custom_data(SCENARIO_KEY, info.to_json())
        partial.rename(path)
    except BaseException:  # interrupted or failed: leave nothing half-written behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the simulated demo bag (MCAP).")
    parser.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument("--subject", type=int, default=DEFAULT_SUBJECT)
    parser.add_argument(
        "--rig", default=DEFAULT_RIG, help="a pool rig's name (default: held out of training)"
    )
    parser.add_argument("--actions", type=int, nargs="+", default=list(DEFAULT_ACTIONS))
    parser.add_argument("--frames-per-action", type=int, default=DEFAULT_FRAMES_PER_ACTION)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = write_demo_bag(
        args.out,
        subject=args.subject,
        rig=args.rig,
        actions=args.actions,
        frames_per_action=args.frames_per_action,
        seed=args.seed,
    )
    print(f"wrote {info.path}: {info.duration_s:.1f} s, {info.message_counts}")


if __name__ == "__main__":
    main()
