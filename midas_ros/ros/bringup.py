"""All midas_ros nodes in one process, an executor thread each (adapters + fusion, optionally a bag).

Parameters come from the same YAML files as the launch file (config/adapters.yaml, config/midas.yaml),
given to every node as node-specific `--params-file` arguments: rcl applies each file's `node_name:` and
`/**` sections, as for `ros2 run`. Your own `--ros-args` (`-p name:=value`, `--params-file mine.yaml`,
`-r from:=to`) come after them, so they win; the options below win over both (parameter_overrides).

    bringup                                   # live sensors
    bringup --bag out/demo/demo_bag --use-sim-time true --device cpu
    bringup --ros-args -r ouster/points:=/os1/points    # remaps apply to every node in the process
    bringup --ros-args -p max_latency_s:=0.6            # a parameter of whichever node declares it

Ctrl-C (or an external shutdown) at any point stops playback, destroys the nodes and shuts rclpy down
cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args

from midas_ros.interfaces import GROUND_TRUTH_TOPIC, TF_STATIC_TOPIC
from midas_ros.ros.nodes import quiet_on_shutdown, run_ros
from midas_ros.ros.parameters import ADAPTER_NODES, CONFIG_FILES, FUSION_NODE

# The node modules (open3d, torch, ...: a second or more) are imported where they are used, so that
# `bringup` imports them after rclpy.init, where a Ctrl-C during an import ends the program cleanly.
if TYPE_CHECKING:
    from midas_ros.ros.bag_player import BagPlayer

ADAPTER_NAMES = tuple(ADAPTER_NODES.values())


def config_dir() -> Path:
    """share/midas_ros/config when installed, else this source tree's config/."""
    from midas_ros.ros.fusion_node import package_file

    return package_file("config")


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
    ros_args: Sequence[str] = (),
) -> list[Node]:
    """Adapters, fusion node and (with `bag`) a player that has not started yet, configured from YAML.

    Every node reads the parameter files in `config` (default: config_dir()). `use_sim_time` defaults to
    True with a bag and False without. `ros_args` (the user's `--ros-args` content) come after the files
    and win over them; the other options and `overrides` ({node name: {parameter: value}}) win over
    both. rclpy must be initialised.
    """
    from midas_ros.ros.bag_player import BagPlayer
    from midas_ros.ros.csi_adapter import CsiAdapter
    from midas_ros.ros.depth_adapter import DepthAdapter
    from midas_ros.ros.fusion_node import FusionNode
    from midas_ros.ros.lidar_adapter import LidarAdapter

    folder = config or config_dir()
    # Node-specific arguments, as `ros2 run ... --ros-args --params-file FILE` gives them: rcl applies the
    # file's section for the node's name and its `/**` section.
    cli_args = ["--ros-args"]
    for name in CONFIG_FILES:
        if (folder / name).exists():
            cli_args += ["--params-file", str(folder / name)]
    cli_args += list(ros_args)  # the user's own, after the package's files: they win
    if use_sim_time is None:
        use_sim_time = bool(bag)

    def make(cls: type[Node], name: str, **options: Any) -> Node:
        values = {k: v for k, v in options.items() if v not in (None, "")}
        values.update((overrides or {}).get(name, {}))
        return cls(
            name,
            cli_args=cli_args,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        )

    nodes: list[Node] = []
    try:
        for cls, name in zip((DepthAdapter, LidarAdapter, CsiAdapter), ADAPTER_NAMES, strict=True):
            nodes.append(make(cls, name, use_sim_time=use_sim_time))
        nodes.append(
            make(FusionNode, FUSION_NODE, use_sim_time=use_sim_time, device=device, checkpoint=checkpoint)
        )
        if bag:
            # The player is the clock source: it never runs on sim time itself.
            nodes.append(
                make(BagPlayer, "bag_player", bag=str(bag), rate=rate, loop=loop or None, autostart=False)
            )
    except Exception:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def sensors_matched(player: BagPlayer) -> bool:
    """Whether every sensor topic the player publishes (all but /tf_static and the ground truth, which
    nobody in this process listens to) has a subscriber."""
    others = (TF_STATIC_TOPIC, "/" + GROUND_TRUTH_TOPIC)
    counts = player.subscriber_counts()
    return all(n > 0 for t, n in counts.items() if t not in others)


def wait_for_subscribers(player: BagPlayer, timeout_s: float = 10.0) -> bool:
    """Wait until every sensor topic the player publishes has a subscriber (or `timeout_s` passes).

    Gives up (False) when rclpy shuts down meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and player.context.ok():
        if sensors_matched(player):
            return True
        time.sleep(0.05)
    return False


def start_when_matched(player: BagPlayer, timeout_s: float = 10.0) -> None:
    """Start playback once the sensor topics are matched, so the first seconds are not lost."""
    if not wait_for_subscribers(player, timeout_s):
        if not player.context.ok():
            return  # shut down meanwhile: nothing to play to
        player.get_logger().warning(f"not every sensor topic matched within {timeout_s} s; playing anyway")
    player.start()


def spin(nodes: Sequence[Node], *, until: threading.Event | None = None) -> None:
    """Spin each node on an executor of its own, in a thread of its own, until their context shuts down
    or `until` is set.

    One executor for all nodes rebuilt the wait set of every node's entities (subscriptions, timers,
    QoS events, parameter services) in Python at each wake-up, whichever node woke it: with 3 MB scans at
    10 Hz that loop held the GIL more than every worker together (py-spy, docs/bench_runtime.md). Each
    node's callbacks only enqueue or convert, so one thread a node is enough.

    A shutdown (Ctrl-C, rclpy.shutdown() elsewhere) at any point ends it quietly; KeyboardInterrupt and
    errors raised while the context is up propagate.
    """
    context = nodes[0].context if nodes else rclpy.get_default_context()
    stop = until or threading.Event()
    errors: list[BaseException] = []

    def spin_one(node: Node) -> None:
        # The context can go down at any point of the loop, e.g. between the check and spin_once, which
        # then fails to build its wait set ("the given context is not valid"): that is the shutdown.
        try:
            with quiet_on_shutdown(context), SingleThreadedExecutor(context=context) as executor:
                executor.add_node(node)
                while context.ok() and not stop.is_set():
                    executor.spin_once(timeout_sec=0.1)
        except BaseException as exc:  # reported by the calling thread
            errors.append(exc)
            stop.set()

    spinners = [threading.Thread(target=spin_one, args=(n,), name=f"spin_{n.get_name()}") for n in nodes]
    for thread in spinners:
        thread.start()
    try:
        while context.ok() and not stop.is_set():
            stop.wait(0.1)
    finally:
        stop.set()
        for thread in spinners:
            thread.join(timeout=5.0)
    if errors:
        raise errors[0]


def user_ros_args(argv: Sequence[str]) -> list[str]:
    """The arguments inside `--ros-args ... [--]` of a command line."""
    out, inside = [], False
    for arg in argv[1:]:
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside:
            out.append(arg)
    return out


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of `bringup` (see the module docstring); a Ctrl-C or shutdown at any point exits 0."""
    argv = list(sys.argv if args is None else args)
    options = build_arg_parser().parse_args(remove_ros_args(argv)[1:])

    def run() -> None:
        from midas_ros.ros.bag_player import BagPlayer

        nodes = build_nodes(
            config=options.config_dir,
            use_sim_time=options.use_sim_time,
            device=options.device,
            checkpoint=options.checkpoint,
            bag=options.bag,
            rate=options.rate,
            loop=options.loop,
            ros_args=user_ros_args(argv),
        )
        try:
            player = next((n for n in nodes if isinstance(n, BagPlayer)), None)
            done = None
            if player is not None:
                threading.Thread(
                    target=start_when_matched, args=(player,), name="start_player", daemon=True
                ).start()
                done = player.done if options.exit_when_done else None
            spin(nodes, until=done)
        finally:
            for node in reversed(nodes):
                node.destroy_node()

    run_ros(run, argv)


if __name__ == "__main__":
    main()
