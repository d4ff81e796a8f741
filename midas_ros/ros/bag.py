"""MCAP bags with rosbags (pure Python): write the simulated demo bag, read bags back, record streams.

The demo bag holds what real drivers would publish, with a scripted dropout schedule:

| topic                    | type                          | frame_id                    |
|--------------------------|-------------------------------|-----------------------------|
| DEMO_TOPICS["depth"]     | sensor_msgs/Image 16UC1 mm    | camera_depth_optical_frame  |
| DEMO_TOPICS["lidar"]     | sensor_msgs/PointCloud2 Ouster| os_lidar                    |
| DEMO_TOPICS["csi"]       | PointCloud2, CSI layout       | wifi_csi                    |
| /midas/ground_truth      | geometry_msgs/PoseArray       | midas_room                  |
| /tf_static               | tf2_msgs/TFMessage            | midas_room -> sensors       |

Usage: ``python -m midas_ros.ros.bag OUT_DIR [--frames-per-action N]`` writes a demo bag.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.ros.conversions import stamp_to_ns
from midas_ros.sim.sensors import (
    DEPTH_CAMERA_POSITION,
    DEPTH_OPTICAL_QUATERNION_XYZW,
    FRAME_RATE_HZ,
    LIDAR_POSITION,
    LIDAR_RINGS,
    LIDAR_VERTICAL_FOV_DEG,
)
from midas_ros.skeleton import NUM_JOINTS
from midas_ros.sync import NS_PER_S

TYPESTORE = get_typestore(Stores.ROS2_KILTED)

ROOM_FRAME = "midas_room"
DEMO_TOPICS: dict[str, str] = {
    "depth": "/camera/camera/depth/image_rect_raw",  # realsense2_camera's default name
    "lidar": "/ouster/points",  # ouster-ros's default name
    "csi": "/wifi/csi",
}
GROUND_TRUTH_TOPIC = "/midas/ground_truth"
TF_STATIC_TOPIC = "/tf_static"
FRAME_IDS: dict[str, str] = {"depth": "camera_depth_optical_frame", "lidar": "os_lidar", "csi": "wifi_csi"}
# Sensor poses in the room frame (the simulator's rig): translation (m) and quaternion (x, y, z, w).
# The CSI frame is a logical one at the room origin: CSI has no geometry the pipeline uses.
SENSOR_POSES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float, float]]] = {
    FRAME_IDS["depth"]: (DEPTH_CAMERA_POSITION, DEPTH_OPTICAL_QUATERNION_XYZW),
    FRAME_IDS["lidar"]: (LIDAR_POSITION, (0.0, 0.0, 0.0, 1.0)),
    FRAME_IDS["csi"]: ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),
}
# Real sensors are not triggered together: fixed offsets (s) from the frame time, plus a small jitter.
SENSOR_OFFSETS_S: dict[str, float] = {"depth": 0.0, "lidar": 0.012, "csi": -0.018}
SENSOR_JITTER_S = 0.003
DEFAULT_START_S = 1_700_000_000  # bag stamps look like wall time, as in a recorded bag
FRAME_PERIOD_NS = round(NS_PER_S / FRAME_RATE_HZ)
LIDAR_SCAN_S = 0.1  # one turn of the spinning LiDAR (10 Hz mode)


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


# -- message builders (rosbags classes) -----------------------------------------------------------------


def _msg(msgtype: str, **fields: Any) -> Any:
    return TYPESTORE.types[msgtype](**fields)


def _header(stamp_ns: int, frame_id: str) -> Any:
    stamp = _msg("builtin_interfaces/msg/Time", sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
    return _msg("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def depth_image_msg(depth_mm: np.ndarray, stamp_ns: int, frame_id: str = FRAME_IDS["depth"]) -> Any:
    """A 16UC1 millimetre depth Image as a RealSense driver publishes it (0 = no return)."""
    depth = np.ascontiguousarray(depth_mm, dtype="<u2")
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    h, w = depth.shape
    return _msg(
        "sensor_msgs/msg/Image",
        header=_header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding="16UC1",
        is_bigendian=0,
        step=2 * w,
        data=depth.view(np.uint8).reshape(-1),
    )


def _point_field(name: str, offset: int, datatype: int, count: int = 1) -> Any:
    return _msg("sensor_msgs/msg/PointField", name=name, offset=offset, datatype=datatype, count=count)


# Ouster "original" point layout (ouster-ros): 48-byte padded points.
OUSTER_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "ambient", "range"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2", "<u2", "<u2", "<u4"],
        "offsets": [0, 4, 8, 16, 20, 24, 26, 28, 32],
        "itemsize": 48,
    }
)
_POINTFIELD_TYPES = {"<f4": 7, "<u4": 6, "<u2": 4}


def ouster_cloud_msg(points: np.ndarray, stamp_ns: int, frame_id: str = FRAME_IDS["lidar"]) -> Any:
    """A PointCloud2 in Ouster's padded layout (unorganised: the simulator's crop around the person)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, >=3), got {points.shape}")
    xyz = points[:, :3]
    rng = np.linalg.norm(xyz, axis=1)
    elevation = np.degrees(np.arcsin(np.divide(xyz[:, 2], rng, out=np.zeros_like(rng), where=rng > 0)))
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    cloud = np.zeros(len(xyz), dtype=OUSTER_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    cloud["intensity"] = 100.0
    # Ouster's ring 0 is the top beam; t is the column's time within the scan.
    ring = np.round((LIDAR_VERTICAL_FOV_DEG / 2 - elevation) / LIDAR_VERTICAL_FOV_DEG * (LIDAR_RINGS - 1))
    cloud["ring"] = np.clip(ring, 0, LIDAR_RINGS - 1)
    cloud["t"] = ((np.pi - azimuth) / (2 * np.pi) * LIDAR_SCAN_S * NS_PER_S).astype(np.uint32)
    cloud["reflectivity"] = 50
    cloud["range"] = np.round(rng * 1000.0).astype(np.uint32)
    fields = [
        _point_field(name, OUSTER_DTYPE.fields[name][1], _POINTFIELD_TYPES[OUSTER_DTYPE.fields[name][0].str])
        for name in OUSTER_DTYPE.names
    ]
    return _msg(
        "sensor_msgs/msg/PointCloud2",
        header=_header(stamp_ns, frame_id),
        height=1,
        width=len(cloud),
        fields=fields,
        is_bigendian=False,
        point_step=OUSTER_DTYPE.itemsize,
        row_step=OUSTER_DTYPE.itemsize * len(cloud),
        data=cloud.view(np.uint8).reshape(-1),
        is_dense=bool(np.all(np.isfinite(xyz))),
    )


def csi_cloud_msg(
    amplitude: np.ndarray, phase: np.ndarray, stamp_ns: int, frame_id: str = FRAME_IDS["csi"]
) -> Any:
    """CSI as a PointCloud2 in the project's CSI layout (design.md): antennas x subcarriers of packets."""
    amplitude = np.asarray(amplitude, dtype="<f4")
    phase = np.asarray(phase, dtype="<f4")
    if amplitude.ndim != 3 or amplitude.shape != phase.shape:
        raise ValueError(
            f"amplitude and phase must be equal (antennas, subcarriers, packets): {amplitude.shape}"
        )
    antennas, subcarriers, packets = amplitude.shape
    # Row-major by antenna then subcarrier; each point = amplitude[packets] then phase[packets].
    data = np.ascontiguousarray(np.concatenate([amplitude, phase], axis=2))
    step = 8 * packets
    return _msg(
        "sensor_msgs/msg/PointCloud2",
        header=_header(stamp_ns, frame_id),
        height=antennas,
        width=subcarriers,
        fields=[_point_field("amplitude", 0, 7, packets), _point_field("phase", 4 * packets, 7, packets)],
        is_bigendian=False,
        point_step=step,
        row_step=step * subcarriers,
        data=data.view(np.uint8).reshape(-1),
        is_dense=bool(np.all(np.isfinite(data))),
    )


def pose_array_msg(joints: np.ndarray, stamp_ns: int, frame_id: str = ROOM_FRAME) -> Any:
    """Joints (J, 3) as a PoseArray (positions; identity orientations)."""
    joints = np.asarray(joints, dtype=np.float64)
    poses = [
        _msg(
            "geometry_msgs/msg/Pose",
            position=_msg("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z)),
            orientation=_msg("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
        )
        for x, y, z in joints
    ]
    return _msg("geometry_msgs/msg/PoseArray", header=_header(stamp_ns, frame_id), poses=poses)


def static_tf_msg(stamp_ns: int) -> Any:
    """/tf_static: the room frame to each sensor frame (SENSOR_POSES)."""
    transforms = []
    for child, ((tx, ty, tz), (qx, qy, qz, qw)) in SENSOR_POSES.items():
        transform = _msg(
            "geometry_msgs/msg/Transform",
            translation=_msg("geometry_msgs/msg/Vector3", x=tx, y=ty, z=tz),
            rotation=_msg("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
        )
        transforms.append(
            _msg(
                "geometry_msgs/msg/TransformStamped",
                header=_header(stamp_ns, ROOM_FRAME),
                child_frame_id=child,
                transform=transform,
            )
        )
    return _msg("tf2_msgs/msg/TFMessage", transforms=transforms)


# -- writing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoBagInfo:
    """What a demo bag holds."""

    path: Path
    subject: int
    actions: tuple[int, ...]
    num_frames: int
    start_ns: int
    duration_s: float
    schedule: tuple[Outage, ...]
    message_counts: dict[str, int]


def open_writer(path: Path | str) -> Writer:
    """An MCAP rosbag2 writer (version 9); the path must not exist yet."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    return Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)


def write_demo_bag(
    path: Path | str,
    *,
    subject: int = 40,
    actions: Sequence[int] = (14, 12, 27, 26),
    frames_per_action: int = 100,
    seed: int = 0,
    start_s: int = DEFAULT_START_S,
    schedule: Sequence[Outage] | None = None,
) -> DemoBagInfo:
    """Simulate `subject` doing `actions` back to back at 10 Hz and write the sensor streams as a bag.

    Sensors are silent during their outages in `schedule` (default: `default_dropout_schedule`); ground
    truth is written for every frame.
    """
    from midas_ros.sim.generate import simulate_sequence  # heavy: import only when writing

    if frames_per_action < 1 or not actions:
        raise ValueError("need at least one action and one frame per action")
    num_frames = frames_per_action * len(actions)
    duration_s = num_frames * FRAME_PERIOD_NS / NS_PER_S
    schedule = tuple(default_dropout_schedule(duration_s) if schedule is None else schedule)
    start_ns = start_s * NS_PER_S
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys([*DEMO_TOPICS.values(), GROUND_TRUTH_TOPIC, TF_STATIC_TOPIC], 0)

    with open_writer(path) as writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            for topic, msgtype in (
                (DEMO_TOPICS["depth"], "sensor_msgs/msg/Image"),
                (DEMO_TOPICS["lidar"], "sensor_msgs/msg/PointCloud2"),
                (DEMO_TOPICS["csi"], "sensor_msgs/msg/PointCloud2"),
                (GROUND_TRUTH_TOPIC, "geometry_msgs/msg/PoseArray"),
                (TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage"),
            )
        }

        def write(topic: str, stamp_ns: int, msg: Any) -> None:
            writer.write(conns[topic], stamp_ns, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
            counts[topic] += 1

        write(TF_STATIC_TOPIC, start_ns, static_tf_msg(start_ns))
        progress = tqdm(total=num_frames, desc="demo bag", unit="frame")
        for k, action in enumerate(actions):
            seq = simulate_sequence(subject, action, frames_per_action, seed)
            for f in range(frames_per_action):
                index = k * frames_per_action + f
                t_s = index * FRAME_PERIOD_NS / NS_PER_S
                frame_ns = start_ns + index * FRAME_PERIOD_NS
                items: list[tuple[int, str, Any]] = [
                    (frame_ns, GROUND_TRUTH_TOPIC, pose_array_msg(seq.joints[f], frame_ns))
                ]
                for modality in MODALITIES:
                    if not is_alive(schedule, modality, t_s):
                        continue
                    jitter = rng.uniform(-SENSOR_JITTER_S, SENSOR_JITTER_S)
                    stamp_ns = frame_ns + round((SENSOR_OFFSETS_S[modality] + jitter) * NS_PER_S)
                    if modality == "depth":
                        msg = depth_image_msg(seq.depth_mm[f], stamp_ns)
                    elif modality == "lidar":
                        msg = ouster_cloud_msg(seq.lidar[f], stamp_ns)
                    else:
                        msg = csi_cloud_msg(seq.csi_amplitude[f], seq.csi_phase[f], stamp_ns)
                    items.append((stamp_ns, DEMO_TOPICS[modality], msg))
                # Log time = header stamp, written in time order, as a recorder on the sensor host would.
                for stamp_ns, topic, msg in sorted(items, key=lambda item: item[0]):
                    write(topic, max(stamp_ns, start_ns), msg)
                progress.update()
        progress.close()
    return DemoBagInfo(
        path=Path(path),
        subject=subject,
        actions=tuple(actions),
        num_frames=num_frames,
        start_ns=start_ns,
        duration_s=duration_s,
        schedule=schedule,
        message_counts=counts,
    )


class BagRecorder:
    """Thread-safe MCAP recorder for already-serialized CDR messages (e.g. rclpy's serialize_message)."""

    def __init__(self, path: Path | str, topics: dict[str, str]) -> None:
        self._writer = open_writer(path)
        self._writer.open()
        self._conns = {t: self._writer.add_connection(t, m, typestore=TYPESTORE) for t, m in topics.items()}
        self._lock = threading.Lock()
        self._closed = False
        self.counts = dict.fromkeys(topics, 0)

    def write(self, topic: str, timestamp_ns: int, rawdata: bytes) -> None:
        """Store one message; `timestamp_ns` is its log time."""
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._conns[topic], timestamp_ns, rawdata)
            self.counts[topic] += 1

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()


# -- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BagMessage:
    """One stored message: its topic, type name, log time and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    rawdata: bytes

    def deserialize(self) -> Any:
        """The message as a rosbags dataclass."""
        return TYPESTORE.deserialize_cdr(self.rawdata, self.msgtype)


def bag_topics(path: Path | str) -> dict[str, str]:
    """{topic: msgtype} of a bag."""
    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_messages(path: Path | str, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """The bag's messages (optionally of some topics only) in log-time order."""
    wanted = None if topics is None else set(topics)
    with Reader(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, timestamp, rawdata in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(rawdata))


def read_pose_arrays(path: Path | str, topic: str = GROUND_TRUTH_TOPIC) -> tuple[np.ndarray, np.ndarray]:
    """(header stamps ns (F,), joints (F, J, 3) float64) of a PoseArray topic, in log-time order."""
    stamps, poses = [], []
    for message in read_messages(path, [topic]):
        msg = message.deserialize()
        stamps.append(stamp_to_ns(msg.header.stamp))
        poses.append([[p.position.x, p.position.y, p.position.z] for p in msg.poses])
    if not stamps:
        return np.zeros(0, dtype=np.int64), np.zeros((0, NUM_JOINTS, 3))
    return np.asarray(stamps, dtype=np.int64), np.asarray(poses, dtype=np.float64)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the simulated demo bag (MCAP).")
    parser.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument("--subject", type=int, default=40)
    parser.add_argument("--actions", type=int, nargs="+", default=[14, 12, 27, 26])
    parser.add_argument("--frames-per-action", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = write_demo_bag(
        args.out,
        subject=args.subject,
        actions=args.actions,
        frames_per_action=args.frames_per_action,
        seed=args.seed,
    )
    print(f"wrote {info.path}: {info.duration_s:.1f} s, {info.message_counts}")


if __name__ == "__main__":
    main()
