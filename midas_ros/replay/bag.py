"""What a bag holds, and which of its topics feed the replay: checked up front, with clear errors.

A topic the user named that is not in the bag, or has another type, is an error that lists the bag's
topics and types. A sensor left at its default topic name (the interfaces' names in the root namespace,
what a bag recorded next to the default drivers holds) that the bag lacks is simply not replayed.
CSI and LiDAR topics are checked on their first message (a CSI topic must be in the CSI layout, a LiDAR
cloud must have x, y, z), so a swapped topic is named before anything runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from midas_ros import MODALITIES
from midas_ros.interfaces import (
    DEPTH_CAMERA_INFO_TOPIC,
    GROUND_TRUTH_TOPIC,
    SENSOR_TOPICS,
    TF_STATIC_TOPIC,
)
from midas_ros.ros.bag_io import bag_summary, read_messages, resolved_topic

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
POSE_ARRAY_TYPE = "geometry_msgs/msg/PoseArray"
SENSOR_TYPES: dict[str, str] = {"depth": IMAGE_TYPE, "lidar": CLOUD_TYPE, "csi": CLOUD_TYPE}
# The topics a bag recorded in the root namespace next to the default drivers holds.
DEFAULT_SENSOR_TOPICS: dict[str, str] = {m: resolved_topic(SENSOR_TOPICS[m]) for m in MODALITIES}
DEFAULT_CAMERA_INFO_TOPIC = resolved_topic(DEPTH_CAMERA_INFO_TOPIC)
DEFAULT_GROUND_TRUTH_TOPIC = resolved_topic(GROUND_TRUTH_TOPIC)
OFF = ("", "none")  # a topic option set to one of these: not used


class ReplayError(ValueError):
    """Input the replay cannot use (a wrong topic, a ground truth of the wrong shape, ...)."""


@dataclass(frozen=True)
class TopicRequest:
    """The topics asked for; None = the default name, used only when the bag has it."""

    depth: str | None = None
    camera_info: str | None = None
    lidar: str | None = None
    csi: str | None = None
    ground_truth: str | None = None

    def sensor(self, modality: str) -> str | None:
        return getattr(self, modality)


@dataclass(frozen=True)
class BagInputs:
    """The topics of one bag the replay uses, and what the bag says about them."""

    path: Path
    topics: dict[str, str]  # every topic of the bag -> type
    counts: dict[str, int]  # messages per topic
    sensor_topics: dict[str, str]  # modality -> topic, the sensors replayed
    camera_info_topic: str | None
    ground_truth_topic: str | None
    frame_ids: dict[str, str]  # modality -> frame_id of its first message
    start_ns: int
    end_ns: int
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    @property
    def has_tf_static(self) -> bool:
        return TF_STATIC_TOPIC in self.topics

    @property
    def replayed_topics(self) -> list[str]:
        """Sensor topics and the camera info, the topics a replay reads or plays."""
        topics = list(self.sensor_topics.values())
        return [*topics, self.camera_info_topic] if self.camera_info_topic else topics

    def modality_of(self, topic: str) -> str | None:
        return next((m for m, t in self.sensor_topics.items() if t == topic), None)


def describe_topics(topics: dict[str, str], counts: dict[str, int]) -> str:
    """The bag's topics, one a line: name, type, message count."""
    if not topics:
        return "  (no topics)"
    width = max(len(t) for t in topics)
    return "\n".join(f"  {t:<{width}}  {topics[t]}  ({counts.get(t, 0)} messages)" for t in sorted(topics))


def _pick(
    role: str, requested: str | None, default: str, expected: str, topics: dict[str, str], listing: str
) -> tuple[str | None, str | None]:
    """(topic or None, a note when a default was absent); raises ReplayError for a wrong named topic."""
    if requested is not None and requested.strip().lower() in OFF:
        return None, None
    name = resolved_topic(requested) if requested else default
    if name not in topics:
        if requested:
            raise ReplayError(f"{role} topic {name!r} is not in the bag. The bag has:\n{listing}")
        return None, f"no {role} ({default} is not in the bag)"
    if topics[name] != expected:
        raise ReplayError(
            f"{role} topic {name!r} is a {topics[name]}, expected a {expected}. The bag has:\n{listing}"
        )
    return name, None


def first_message(path: Path, topic: str) -> object:
    """The first message of a topic, deserialised (rosbags)."""
    with contextlib.closing(read_messages(path, [topic])) as messages:
        for message in messages:
            return message.deserialize()
    raise ReplayError(f"topic {topic} of {path} holds no message")


def _check_layout(path: Path, modality: str, topic: str) -> str:
    """Check a cloud topic's first message for its modality's fields; returns its frame_id."""
    msg = first_message(path, topic)
    fields = [f.name for f in getattr(msg, "fields", [])]
    needed = ("amplitude", "phase") if modality == "csi" else ("x", "y", "z")
    if modality in ("lidar", "csi") and not set(needed) <= set(fields):
        what = "the CSI layout (fields amplitude, phase)" if modality == "csi" else "fields x, y, z"
        raise ReplayError(
            f"{modality} topic {topic!r} does not hold {what}: its first message has fields {fields}"
        )
    return str(msg.header.frame_id)


def inspect_bag(path: Path | str, request: TopicRequest, *, camera_info_fallback: bool = False) -> BagInputs:
    """Open a bag (MCAP or sqlite3) and resolve the topics of `request` in it (module docstring).

    camera_info_fallback: the depth adapter has intrinsics as parameters (camera_info_k), so a depth
    topic without a CameraInfo topic is fine.
    """
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"bag {path} does not exist")
    try:
        summary = bag_summary(path)
    except Exception as err:  # rosbags raises its own errors for a folder that is no bag
        raise ReplayError(f"{path} is not a readable rosbag2 bag (MCAP or sqlite3): {err}") from err
    topics, counts = summary.topics, summary.counts
    listing = describe_topics(topics, counts)
    notes: list[str] = []
    sensors: dict[str, str] = {}
    for m in MODALITIES:
        topic, note = _pick(m, request.sensor(m), DEFAULT_SENSOR_TOPICS[m], SENSOR_TYPES[m], topics, listing)
        if topic is not None:
            sensors[m] = topic
        if note:
            notes.append(note)
    if not sensors:
        raise ReplayError(
            f"none of the sensor topics is in {path} (depth {DEFAULT_SENSOR_TOPICS['depth']}, LiDAR "
            f"{DEFAULT_SENSOR_TOPICS['lidar']}, CSI {DEFAULT_SENSOR_TOPICS['csi']} by default; name yours "
            f"with --depth-topic, --lidar-topic, --csi-topic). The bag has:\n{listing}"
        )
    camera_info = None
    if "depth" in sensors:
        camera_info, note = _pick(
            "camera info", request.camera_info, DEFAULT_CAMERA_INFO_TOPIC, CAMERA_INFO_TYPE, topics, listing
        )
        if camera_info is None and not camera_info_fallback:
            raise ReplayError(
                f"the depth images on {sensors['depth']} need their CameraInfo: "
                f"{note or 'no camera info topic'}; name it with --camera-info-topic, or give the "
                "intrinsics with --set depth_adapter.camera_info_k=[fx,0,cx,0,fy,cy,0,0,1] "
                f"--set depth_adapter.camera_info_width=W --set depth_adapter.camera_info_height=H. "
                f"The bag has:\n{listing}"
            )
    ground_truth, note = _pick(
        "ground truth", request.ground_truth, DEFAULT_GROUND_TRUTH_TOPIC, POSE_ARRAY_TYPE, topics, listing
    )
    if note:
        notes.append(note)
    frame_ids = {m: _check_layout(path, m, t) for m, t in sensors.items()}
    return BagInputs(
        path=path,
        topics=topics,
        counts=counts,
        sensor_topics=sensors,
        camera_info_topic=camera_info,
        ground_truth_topic=ground_truth,
        frame_ids=frame_ids,
        start_ns=summary.start_ns,
        end_ns=summary.end_ns,
        notes=notes,
    )
