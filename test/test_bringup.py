"""bringup's parameters: every node reads the YAML files (rcl's --params-file); its options win over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from conftest import REPO_ROOT  # noqa: E402
from rclpy.node import Node  # noqa: E402
from test_shutdown import write_string_bag  # noqa: E402

from midas_ros.replay.settings import node_parameters  # noqa: E402
from midas_ros.ros.bringup import build_nodes  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    from midas_ros.model import MIDAS, save_checkpoint, tiny_config

    return str(save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny"))


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_string_bag(tmp_path_factory.mktemp("bag") / "chatter"))


@pytest.fixture
def built() -> Iterator[Any]:
    """build_nodes(**options) -> {node name: node}; everything is destroyed and shut down afterwards."""
    rclpy.init()
    nodes: list[Node] = []

    def build(**options: Any) -> dict[str, Node]:
        nodes.extend(build_nodes(**options))
        return {node.get_name(): node for node in nodes}

    try:
        yield build
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def test_every_node_gets_the_values_of_the_config_files(built: Any, checkpoint: str, bag: str) -> None:
    nodes = built(checkpoint=checkpoint, device="cpu", bag=bag)
    assert set(nodes) == {"depth_adapter", "lidar_adapter", "csi_adapter", "fusion_node", "bag_player"}
    options = {"fusion_node": {"checkpoint", "device"}, "bag_player": {"bag"}}  # given above: they win
    for name, node in nodes.items():
        expected = node_parameters(REPO_ROOT / "config")[name]  # what fast replay reads
        compared = set(expected) - options.get(name, set())
        assert compared, (name, expected)
        assert {key: node.get_parameter(key).value for key in compared} == {
            key: expected[key] for key in compared
        }
    assert nodes["fusion_node"].get_parameter("device").value == "cpu"
    assert nodes["bag_player"].get_parameter("bag").value == bag


def test_options_and_overrides_win_over_the_files(
    built: Any, checkpoint: str, bag: str, tmp_path: Path
) -> None:
    # Values that are nobody's defaults, a `/**` section and nested names, in a config folder of our own.
    (tmp_path / "adapters.yaml").write_text(
        "/**:\n  ros__parameters:\n    log_throttle_s: 7.0\n"
        "depth_adapter:\n  ros__parameters:\n    max_range_m: 6.5\n"
        "lidar_adapter:\n  ros__parameters:\n    min_points: 33\n    max_points: 1000\n"
        "csi_adapter:\n  ros__parameters:\n    qos_depth: 3\n"
    )
    (tmp_path / "midas.yaml").write_text(
        "fusion_node:\n  ros__parameters:\n    device: cuda\n    max_latency_s: 0.08\n"
        "    depth:\n      timeout_s: 0.7\n"
        "bag_player:\n  ros__parameters:\n    rate: 0.5\n    clock_frequency: 25.0\n"
    )
    nodes = built(
        config=tmp_path,
        checkpoint=checkpoint,
        device="cpu",
        bag=bag,
        rate=2.0,
        overrides={"lidar_adapter": {"min_points": 5}},
    )

    def value(node: str, name: str) -> Any:
        return nodes[node].get_parameter(name).value

    assert [value(n, "log_throttle_s") for n in ("depth_adapter", "lidar_adapter", "csi_adapter")] == [
        7.0
    ] * 3
    assert value("depth_adapter", "max_range_m") == 6.5
    assert (value("lidar_adapter", "min_points"), value("lidar_adapter", "max_points")) == (5, 1000)
    assert value("csi_adapter", "qos_depth") == 3
    assert (value("fusion_node", "device"), value("fusion_node", "checkpoint")) == ("cpu", checkpoint)
    assert (value("fusion_node", "max_latency_s"), value("fusion_node", "depth.timeout_s")) == (0.08, 0.7)
    assert (value("bag_player", "rate"), value("bag_player", "clock_frequency")) == (2.0, 25.0)
    # With a bag, the graph runs on the bag's time; the player, the clock source, does not.
    assert all(value(n, "use_sim_time") for n in nodes if n != "bag_player")
    assert value("bag_player", "use_sim_time") is False


def test_the_users_ros_args_win_over_the_package_files(built: Any, checkpoint: str, tmp_path: Path) -> None:
    """`bringup --ros-args -p ... --params-file mine.yaml`: the user's values, not the package's."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("lidar_adapter:\n  ros__parameters:\n    max_points: 1234\n")
    ros_args = ["-p", "max_latency_s:=0.6", "--params-file", str(mine)]
    nodes = built(checkpoint=checkpoint, device="cpu", ros_args=ros_args)
    assert nodes["fusion_node"].get_parameter("max_latency_s").value == 0.6
    assert nodes["lidar_adapter"].get_parameter("max_points").value == 1234
    assert nodes["depth_adapter"].get_parameter("qos_depth").value == 1  # the package file's, untouched
