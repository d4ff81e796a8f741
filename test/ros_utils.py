"""Shared helpers for tests with real rclpy nodes (environment from conftest.py: Fast DDS profile, domain).

Usage::

    from ros_utils import Collector, ros_context, spin_until, wait_for_match

    def test_x():
        with ros_context() as ctx:
            node = Node("probe", context=ctx)
            executor = SingleThreadedExecutor(context=ctx)
            ...
            assert wait_for_match(executor, publisher)          # before publishing anything
            assert spin_until(executor, lambda: len(got) == 1)

or, as a fixture, ``context = pytest.fixture(ros_context_fixture)`` in a test module. With the executor
spinning in a thread, ``wait_until(condition)`` polls instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header


@contextlib.contextmanager
def ros_context() -> Iterator[Context]:
    """A private, initialised rclpy Context, shut down on exit (so tests do not share global state)."""
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def ros_context_fixture() -> Iterator[Context]:
    """The body of a pytest fixture yielding a private context (wrap it with pytest.fixture)."""
    with ros_context() as context:
        yield context


def spin_until(executor: Executor, condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Spin until ``condition()`` holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.02)
    return True


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``condition()`` (an executor spins in another thread) until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_match(
    executor: Executor, endpoint: Publisher | Subscription, count: int = 1, timeout_s: float = 5.0
) -> bool:
    """Wait until a publisher has ``count`` subscribers (or a subscription ``count`` publishers)."""
    if isinstance(endpoint, Publisher):
        return spin_until(executor, lambda: endpoint.get_subscription_count() >= count, timeout_s)
    return spin_until(executor, lambda: endpoint.get_publisher_count() >= count, timeout_s)


class Collector:
    """A subscription that keeps every message it receives in ``messages``."""

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> None:
        self.messages: list[Any] = []
        self.subscription = node.create_subscription(msg_type, topic, self.messages.append, qos)


# Real drivers' PointCloud2 layouts: (name, numpy type, offset, PointField datatype), point_step.
_F32, _F64, _U8 = PointField.FLOAT32, PointField.FLOAT64, PointField.UINT8
_U16, _U32 = PointField.UINT16, PointField.UINT32
_XYZ = [("x", "f4", 0, _F32), ("y", "f4", 4, _F32), ("z", "f4", 8, _F32)]
CLOUD_LAYOUTS: dict[str, tuple[list[tuple[str, str, int, int]], int]] = {
    # ouster-ros "original": padded, point_step 48, organised (rings x columns), zeros for no return.
    "ouster": (
        [
            *_XYZ,
            ("intensity", "f4", 16, _F32),
            ("t", "u4", 20, _U32),
            ("reflectivity", "u2", 24, _U16),
            ("ring", "u2", 26, _U16),
            ("ambient", "u2", 28, _U16),
            ("range", "u4", 32, _U32),
        ],
        48,
    ),
    # velodyne_pointcloud XYZIRT: x, y, z, intensity f32, ring u16, time f32, packed.
    "velodyne": (
        [*_XYZ, ("intensity", "f4", 12, _F32), ("ring", "u2", 16, _U16), ("time", "f4", 18, _F32)],
        22,
    ),
    # livox_ros_driver2: packed and unaligned (timestamp f64 at offset 18).
    "livox": (
        [
            *_XYZ,
            ("intensity", "f4", 12, _F32),
            ("tag", "u1", 16, _U8),
            ("line", "u1", 17, _U8),
            ("timestamp", "f8", 18, _F64),
        ],
        26,
    ),
}


def make_cloud(
    xyz: np.ndarray,
    layout: str,
    *,
    big_endian: bool = False,
    row_pad: int = 0,
    is_dense: bool = False,
    header: Header | None = None,
) -> PointCloud2:
    """A PointCloud2 laid out byte for byte like a real driver's; xyz (N, 3) or organised (H, W, 3).

    ``row_pad`` adds that many junk bytes at the end of every row (row_step > width x point_step).
    """
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    height, width = xyz.shape[:2]
    fields, point_step = CLOUD_LAYOUTS[layout]
    order = ">" if big_endian else "<"
    dtype = np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [order + f[1] if f[1] not in ("u1",) else f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": point_step,
        }
    )
    points = np.zeros((height, width), dtype)
    for i, axis in enumerate("xyz"):
        points[axis] = xyz[..., i]
    points["intensity"] = 100.0
    ring = "ring" if "ring" in dtype.names else "line"
    points[ring] = (np.arange(height)[:, None] % 200).astype(np.uint8)
    rows = points.view(np.uint8).reshape(height, width * point_step)
    if row_pad:
        rows = np.concatenate([rows, np.full((height, row_pad), 0xAB, np.uint8)], axis=1)
    msg = PointCloud2(height=height, width=width, is_bigendian=big_endian, is_dense=is_dense)
    if header is not None:
        msg.header = header
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, _, o, d in fields]
    msg.point_step = point_step
    msg.row_step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg
