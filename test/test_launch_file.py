"""Static checks of launch/fusion.launch.py (launch and launch_ros are not installable here).

Parsed with ast: every midas_ros executable it runs is a console script in setup.py, every file it
loads exists and is installed, every launch argument is used (and every one used is declared), the
options it passes to `bringup` are ones bringup accepts, and its default topics are the adapters'.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

LAUNCH_FILE = REPO_ROOT / "launch" / "fusion.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literal_str(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "string" assignments (e.g. PACKAGE)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def console_scripts() -> set[str]:
    setup = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in ast.walk(setup):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(item).split("=")[0].strip() for item in value.elts}
    raise AssertionError("setup.py declares no console_scripts")


def test_defines_generate_launch_description(tree: ast.Module) -> None:
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_every_executable_is_a_console_script(tree: ast.Module, constants: dict[str, str]) -> None:
    scripts = console_scripts()
    executables = []
    for call in _calls(tree, "Node"):
        package = _literal_str(_keyword(call, "package"), constants)
        executable = _keyword(call, "executable")
        if package != "midas_ros":
            continue
        if isinstance(executable, ast.Name):  # Node(...) for executable in (...)
            comprehension = next(
                g
                for g in ast.walk(tree)
                if isinstance(g, ast.comprehension) and getattr(g.target, "id", None) == executable.id
            )
            executables += [ast.literal_eval(e) for e in comprehension.iter.elts]
        else:
            executables.append(_literal_str(executable, constants))
    assert set(executables) >= {"depth_adapter", "lidar_adapter", "csi_adapter", "fusion_node", "bringup"}
    assert set(executables) <= scripts, set(executables) - scripts


def test_every_loaded_file_exists_and_is_installed(tree: ast.Module) -> None:
    setup_text = (REPO_ROOT / "setup.py").read_text()
    loaded = []
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = [ast.literal_eval(p) for p in call.args[0].elts if isinstance(p, ast.Constant)]
        loaded.append(Path(*parts))
    assert {p.name for p in loaded} >= {"adapters.yaml", "midas.yaml", "midas.rviz"}
    for relative in loaded:
        assert (REPO_ROOT / relative).is_file(), f"the launch file loads {relative}, which does not exist"
        assert f'glob("{relative.parent}/*{relative.suffix}")' in setup_text, (
            f"setup.py does not install {relative}"
        )


def _argument_names(tree: ast.Module, name: str) -> set[str]:
    """First arguments of the `name(...)` calls; a variable stands for TOPIC_ARGUMENTS' values."""
    topic_arguments = _module_dict(tree, "TOPIC_ARGUMENTS")
    names: set[str] = set()
    for call in _calls(tree, name):
        first = call.args[0]
        names |= set(topic_arguments.values()) if isinstance(first, ast.Name) else {ast.literal_eval(first)}
    return names


def _module_dict(tree: ast.Module, name: str) -> dict:
    assignment = next(
        n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name
    )
    return ast.literal_eval(assignment.value)


def test_launch_arguments_are_declared_and_used(tree: ast.Module) -> None:
    declared = _argument_names(tree, "DeclareLaunchArgument")
    used = _argument_names(tree, "LaunchConfiguration")
    assert declared >= {
        "use_sim_time",
        "device",
        "composed",
        "depth_topic",
        "lidar_topic",
        "csi_topic",
        "depth_camera_info_topic",
    }
    assert declared - used == set(), "declared but never used"
    assert used - declared == set(), "used but never declared"


def test_bringup_accepts_the_options_passed_to_it(tree: ast.Module, constants: dict[str, str]) -> None:
    from midas_ros.ros.bringup import build_arg_parser

    call = next(
        c for c in _calls(tree, "Node") if _literal_str(_keyword(c, "executable"), constants) == "bringup"
    )
    assert _keyword(call, "name") is None  # a name would rename every node in the composed process
    arguments = _keyword(call, "arguments").elts
    options = [a.value for a in arguments if isinstance(a, ast.Constant) and a.value.startswith("--")]
    accepted = {s for action in build_arg_parser()._actions for s in action.option_strings}
    assert options and set(options) <= accepted


def test_topic_names_come_from_the_interfaces_module(tree: ast.Module) -> None:
    """One home for topic names: the launch file remaps the nodes' names from midas_ros.interfaces."""
    from midas_ros import MODALITIES

    imports = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "midas_ros.interfaces"
        for alias in node.names
    }
    assert {"SENSOR_TOPICS", "DEPTH_CAMERA_INFO_TOPIC"} <= imports
    assert set(_module_dict(tree, "TOPIC_ARGUMENTS")) == set(MODALITIES)
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    topic_like = [
        v
        for v in literals
        if (v != "/" and v.startswith("/")) or v.endswith(("/points", "/csi", "/camera_info", "_raw"))
    ]
    assert topic_like == [], f"topic names written in the launch file: {topic_like}"
