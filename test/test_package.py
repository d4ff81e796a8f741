"""The package as a ROS user installs it: package.xml, entry points, installed share files, ament index."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("setup.py declares no console_scripts")


def test_package_xml_is_format_3_ament_python() -> None:
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "midas_ros"
    assert root.find("export/build_type").text == "ament_python"
    assert (REPO_ROOT / "resource" / "midas_ros").exists()


def test_every_ros_message_package_used_is_declared() -> None:
    declared = {e.text for e in ET.parse(REPO_ROOT / "package.xml").getroot().iter("exec_depend")}
    used = set()
    for path in (REPO_ROOT / "midas_ros").rglob("*.py"):
        for match in re.finditer(
            r"^\s*(?:from|import) (\w+_msgs|rclpy|rcl_interfaces|ament_index_python)\b",
            path.read_text(),
            re.M,
        ):
            used.add(match.group(1))
    assert used, "midas_ros imports no ROS package at all"
    assert used <= declared, f"imported but not in package.xml: {sorted(used - declared)}"


@pytest.mark.parametrize("name", sorted(_console_scripts()))
def test_console_script_targets_exist(name: str) -> None:
    module_name, func = _console_scripts()[name].split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, func)), f"{module_name}.{func} is not callable"


def test_ament_index_finds_the_installed_package() -> None:
    """scripts/setup.sh pip-installs midas_ros into the venv; AMENT_PREFIX_PATH=venv finds its share dir."""
    prefix = Path(sys.prefix)
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "midas_ros"
    if not marker.exists():
        pytest.skip(f"midas_ros is not installed into {prefix} (run scripts/setup.sh)")
    code = "from ament_index_python.packages import get_package_share_directory as g;print(g('midas_ros'))"
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    share = Path(out.stdout.strip())
    assert (share / "package.xml").exists()
    assert (share / "config" / "fastdds.xml").exists()
    assert list((share / "launch").glob("*.launch.py")), "no launch file installed"


def test_rviz_config_shows_the_packages_own_topics() -> None:
    """config/midas.rviz cannot import midas_ros.interfaces: its topics must still be the same names."""
    import yaml

    from midas_ros import interfaces

    config = yaml.safe_load((REPO_ROOT / "config" / "midas.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    shown = {d["Topic"]["Value"] for d in displays if isinstance(d.get("Topic"), dict)}
    known = {
        "/" + name
        for name in (
            *interfaces.SENSOR_TOPICS.values(),
            *interfaces.SAMPLE_TOPICS.values(),
            interfaces.MARKERS_TOPIC,
            interfaces.POSES_TOPIC,
            interfaces.GROUND_TRUTH_TOPIC,
        )
    }
    assert shown and shown <= known, shown - known
