"""What every node of the package shares: described parameters and a main() that shuts down cleanly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def declare_param(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare a parameter with a description (shown by `ros2 param describe`); returns its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def run_node(
    make_node: Callable[[], Node],
    args: Sequence[str] | None = None,
    *,
    spin: Callable[[Node], None] = rclpy.spin,
) -> None:
    """Make one node and `spin` it until Ctrl-C or an external shutdown, then clean up (as in ros2/demos).

    Errors raised by `make_node` or `spin` propagate after the node is destroyed and rclpy shut down.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
