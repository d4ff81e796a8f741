"""All midas_ros nodes in one process on one MultiThreadedExecutor (adapters + fusion, optionally a bag).

Parameters come from the same YAML files as the launch file (config/adapters.yaml, config/midas.yaml):
each file's `node_name: ros__parameters:` section becomes that node's parameter_overrides (nested keys
become dotted names, `/**` applies to every node). Command-line options override a few of them.

    bringup                                   # live sensors
    bringup --bag out/demo/demo_bag --use-sim-time true --device cpu
    bringup --ros-args -r /ouster/points:=/os1/points   # remaps apply to every node in the process

Ctrl-C (or an external shutdown) stops playback, destroys the nodes and shuts rclpy down cleanly.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args

from midas_ros.ros.bag_player import BagPlayer
from midas_ros.ros.csi_adapter import CsiAdapter
from midas_ros.ros.depth_adapter import DepthAdapter
from midas_ros.ros.fusion_node import FusionNode, package_file
from midas_ros.ros.lidar_adapter import LidarAdapter

CONFIG_FILES = ("adapters.yaml", "midas.yaml")
ADAPTER_NAMES = ("depth_adapter", "lidar_adapter", "csi_adapter")


def config_dir() -> Path:
    """share/midas_ros/config when installed, else this source tree's config/."""
    return package_file("config")


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_parameters(yaml_paths: Sequence[Path | str], node_name: str) -> dict[str, Any]:
    """{parameter name: value} for `node_name` from ROS 2 parameter files (later files win)."""
    values: dict[str, Any] = {}
    for path in yaml_paths:
        document = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(document, Mapping):
            raise ValueError(f"{path}: a parameter file must map node names to sections")
        for key in ("/**", node_name, f"/{node_name}"):
            section = document.get(key)
            if section is None:
                continue
            if not isinstance(section, Mapping) or "ros__parameters" not in section:
                raise ValueError(f"{path}: section {key!r} has no 'ros__parameters'")
            values.update(_flatten(section["ros__parameters"] or {}))
    return values


def parameter_overrides(values: Mapping[str, Any]) -> list[Parameter]:
    """rclpy Parameters from a flat {name: value} dict."""
    return [Parameter(name, value=value) for name, value in values.items()]


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run all midas_ros nodes in one process.")
    parser.add_argument("--config-dir", type=Path, default=None, help="folder with adapters.yaml, midas.yaml")
    parser.add_argument("--use-sim-time", type=_bool, default=None, help="true: follow /clock (bag replay)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default=None)
    parser.add_argument(
        "--checkpoint", default="", help="MIDAS checkpoint (empty: the fusion node's default)"
    )
    parser.add_argument("--bag", default="", help="MCAP bag to play with /clock (empty: live sensors)")
    parser.add_argument("--rate", type=float, default=None, help="bag playback speed factor")
    parser.add_argument("--loop", action="store_true", help="loop the bag")
    parser.add_argument("--exit-when-done", action="store_true", help="stop when the bag has played")
    parser.add_argument("--threads", type=int, default=None, help="executor threads (default: nodes + 1)")
    return parser


def build_nodes(
    *,
    config: Path | None = None,
    use_sim_time: bool | None = None,
    device: str | None = None,
    checkpoint: str = "",
    bag: str = "",
    rate: float | None = None,
    loop: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Node]:
    """Adapters, fusion node and (with `bag`) a player that has not started yet, configured from YAML.

    `use_sim_time` defaults to True with a bag and False without. `overrides` maps node names to extra
    parameter values (they win over the YAML files). rclpy must be initialised.
    """
    folder = config or config_dir()
    files = [folder / name for name in CONFIG_FILES if (folder / name).exists()]
    if use_sim_time is None:
        use_sim_time = bool(bag)
    extra = {name: dict(values) for name, values in (overrides or {}).items()}

    def params(node_name: str, **cli: Any) -> list[Parameter]:
        values = load_parameters(files, node_name)
        values.update({k: v for k, v in cli.items() if v not in (None, "")})
        values.update(extra.get(node_name, {}))
        return parameter_overrides(values)

    nodes: list[Node] = []
    try:
        for cls, name in zip((DepthAdapter, LidarAdapter, CsiAdapter), ADAPTER_NAMES, strict=True):
            nodes.append(cls(name, parameter_overrides=params(name, use_sim_time=use_sim_time)))
        fusion_params = params("fusion_node", use_sim_time=use_sim_time, device=device, checkpoint=checkpoint)
        nodes.append(FusionNode("fusion_node", parameter_overrides=fusion_params))
        if bag:
            # The player is the clock source: it never runs on sim time itself.
            player_params = params("bag_player", bag=str(bag), rate=rate, loop=loop or None, autostart=False)
            nodes.append(BagPlayer("bag_player", parameter_overrides=player_params))
    except Exception:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def wait_for_subscribers(player: BagPlayer, timeout_s: float = 10.0) -> bool:
    """Wait until every sensor topic the player publishes has a subscriber (or `timeout_s` passes)."""
    sensors = [t for t in player.topics if t not in ("/tf_static", "/midas/ground_truth")]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = player.subscriber_counts()
        if all(counts[t] > 0 for t in sensors):
            return True
        time.sleep(0.05)
    return False


def start_when_matched(player: BagPlayer, timeout_s: float = 10.0) -> None:
    """Start playback once the sensor topics are matched, so the first seconds are not lost."""
    if not wait_for_subscribers(player, timeout_s):
        player.get_logger().warning(f"not every sensor topic matched within {timeout_s} s; playing anyway")
    player.start()


def spin(nodes: Sequence[Node], *, threads: int | None = None, until: threading.Event | None = None) -> None:
    """Spin `nodes` on one MultiThreadedExecutor until rclpy shuts down or `until` is set."""
    # At least one thread per node (plus the fusion node's watchdog): rclpy's default is the core count,
    # and on a 2-core machine three busy adapters would starve the fusion node's timers.
    executor = MultiThreadedExecutor(num_threads=threads or max(len(nodes) + 1, os.cpu_count() or 1))
    for node in nodes:
        executor.add_node(node)
    try:
        while rclpy.ok() and (until is None or not until.is_set()):
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown(timeout_sec=2.0)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of `bringup` (see the module docstring)."""
    import sys

    argv = list(sys.argv if args is None else args)
    options = build_arg_parser().parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    nodes: list[Node] = []
    try:
        nodes = build_nodes(
            config=options.config_dir,
            use_sim_time=options.use_sim_time,
            device=options.device,
            checkpoint=options.checkpoint,
            bag=options.bag,
            rate=options.rate,
            loop=options.loop,
        )
        player = next((n for n in nodes if isinstance(n, BagPlayer)), None)
        done = None
        if player is not None:
            threading.Thread(
                target=start_when_matched, args=(player,), name="start_player", daemon=True
            ).start()
            done = player.done if options.exit_when_done else None
        spin(nodes, threads=options.threads, until=done)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
