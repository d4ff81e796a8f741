"""MCAP bags with rosbags (pure Python): write already-serialized messages, read them back.

Nothing here knows a scenario: the demo's bag (midas_ros/demo/scenario.py), the replay's skeleton bags
(midas_ros/replay/skeleton_bag.py, live.py, fast.py) and the bag player all go through these few
functions.

Messages travel as CDR bytes. rclpy's ``serialize_message`` and rosbags' ``serialize_cdr`` write the same
bytes, so a message built with the runtime's rclpy builders is written here as it is published, and a
stored message can be published raw (the bag player) or deserialised by rosbags (``BagMessage``) for
duck-typed readers such as ``conversions.pointcloud2_to_csi`` or ``fusion_record.parse_fusion_record``.

Topic names in a bag are absolute: ``resolved_topic(SENSOR_TOPICS["depth"])`` is the name the relative
topic takes in the root namespace, which is what a bag recorded there holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from midas_ros.ros.conversions import stamp_to_ns

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def resolved_topic(name: str) -> str:
    """A topic name as it resolves in the root namespace (how a bag stores it): '/' + a relative name."""
    return name if name.startswith("/") else f"/{name}"


def msgtype_name(msg_class: type) -> str:
    """The 'package/msg/Name' type name of an rclpy message class, as bags and rosbags spell it."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


def open_writer(path: Path | str) -> Writer:
    """An MCAP rosbag2 writer (version 9), not opened yet; the path must not exist."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    return Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)


class BagRecorder:
    """Thread-safe MCAP writer of already-serialized CDR messages (e.g. rclpy's ``serialize_message``).

    ``topics`` maps each topic to its type name ('sensor_msgs/msg/Image', see ``msgtype_name``);
    ``custom_data`` (here or through ``set_custom_data`` before closing) lands in the bag's metadata.yaml
    (read it back with ``bag_custom_data``). Also a context manager.
    """

    def __init__(
        self, path: Path | str, topics: Mapping[str, str], custom_data: Mapping[str, str] | None = None
    ) -> None:
        self.path = Path(path)
        self._writer = open_writer(path)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._writer.open()
        self._conns = {t: self._writer.add_connection(t, m, typestore=TYPESTORE) for t, m in topics.items()}
        self._lock = threading.Lock()
        self._closed = False
        self.counts = dict.fromkeys(topics, 0)

    def write(self, topic: str, timestamp_ns: int, rawdata: bytes) -> None:
        """Store one message; ``timestamp_ns`` is its log time. Ignored once closed."""
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._conns[topic], timestamp_ns, rawdata)
            self.counts[topic] += 1

    def set_custom_data(self, key: str, value: str) -> None:
        """Add a key to the bag's custom_data (before ``close``)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"bag {self.path} is closed")
            self._writer.set_custom_data(key, value)

    def close(self) -> None:
        """Finish the bag (metadata.yaml); later writes are ignored."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class BagMessage:
    """One stored message: its topic, type name, log time and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    rawdata: bytes

    def deserialize(self) -> Any:
        """The message as a rosbags dataclass (same field names as the rclpy class)."""
        return TYPESTORE.deserialize_cdr(self.rawdata, self.msgtype)


@dataclass(frozen=True)
class BagSummary:
    """What a bag's index says: its topics, message counts and time span."""

    topics: dict[str, str]  # topic -> msgtype
    counts: dict[str, int]  # topic -> messages
    start_ns: int
    end_ns: int


def bag_summary(path: Path | str) -> BagSummary:
    """The topics, counts and time span of a bag (MCAP or sqlite3; rosbags' errors for anything else)."""
    with Reader(path) as reader:
        counts: dict[str, int] = {}
        for c in reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        topics = {c.topic: c.msgtype for c in reader.connections}
        return BagSummary(topics, counts, int(reader.start_time), int(reader.end_time))


def bag_topics(path: Path | str) -> dict[str, str]:
    """{topic: msgtype} of a bag."""
    return bag_summary(path).topics


def bag_custom_data(path: Path | str) -> dict[str, str]:
    """The custom_data of a bag directory's metadata.yaml ({} when it has none)."""
    metadata = yaml.safe_load((Path(path) / "metadata.yaml").read_text())
    return dict(metadata["rosbag2_bagfile_information"].get("custom_data") or {})


def read_messages(path: Path | str, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """The bag's messages (optionally of some topics only) in log-time order."""
    wanted = None if topics is None else set(topics)
    with Reader(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, timestamp, rawdata in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(rawdata))


def iter_pose_arrays(path: Path | str, topic: str) -> Iterator[tuple[int, str, np.ndarray]]:
    """(header stamp ns, frame_id, positions (J, 3) float64) of each PoseArray of a topic, in log-time
    order."""
    for message in read_messages(path, [topic]):
        msg = message.deserialize()
        positions = np.array(
            [[p.position.x, p.position.y, p.position.z] for p in msg.poses], dtype=np.float64
        )
        yield stamp_to_ns(msg.header.stamp), msg.header.frame_id, positions.reshape(-1, 3)


def read_pose_arrays(path: Path | str, topic: str) -> tuple[np.ndarray, np.ndarray]:
    """(header stamps ns (F,), positions (F, J, 3) float64) of a PoseArray topic, in log-time order."""
    arrays = list(iter_pose_arrays(path, topic))
    if not arrays:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0, 3))
    return np.array([a[0] for a in arrays], dtype=np.int64), np.stack([a[2] for a in arrays])
