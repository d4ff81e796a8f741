"""Shared helpers for tests with real rclpy nodes (environment from conftest.py: Fast DDS profile, domain).

Usage::

    from ros_utils import Collector, make_cloud, ros_context, spin_until, wait_for_match

    def test_x():
        with ros_context() as ctx:
            node = Node("probe", context=ctx)
            executor = SingleThreadedExecutor(context=ctx)
            ...
            assert wait_for_match(executor, publisher)          # before publishing anything
            assert spin_until(executor, lambda: len(got) == 1)

or, as a fixture, ``context = pytest.fixture(ros_context_fixture)`` in a test module. With the executor
spinning in a thread, ``wait_until(condition)`` polls instead. ``make_cloud(xyz, "ouster" | "velodyne" |
"livox", header=..., big_endian=..., row_pad=..., is_dense=...)`` is
``midas_ros.demo.cloud_layouts.driver_cloud``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

from midas_ros.demo.cloud_layouts import driver_cloud


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


# Real drivers' PointCloud2 layouts, byte for byte (Ouster, Velodyne, Livox): one home, the demo's drivers.
make_cloud = driver_cloud
