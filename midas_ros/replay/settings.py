"""The nodes' parameters as the live graph gets them: the package's config/*.yaml, then overrides.

`node_parameters` reads the same files `bringup` gives every node (ros/parameters.py's CONFIG_FILES:
config/adapters.yaml, config/midas.yaml; each node's section over the ``/**`` one, nested keys
flattened with dots as rcl does, ``depth: {timeout_s: 0.5}`` -> ``depth.timeout_s``), then applies
``--set NODE.PARAM=VALUE`` overrides. Fast mode reads its settings from them with the nodes' own
declarations (ros/samples.py's DEPTH_PARAMETERS / LIDAR_PARAMETERS, ros/fusion.py's FUSION_PARAMETERS
and FusionSettings: a key missing from the YAML has the declared default); live mode hands the same
overrides to the nodes, so both modes run with the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from midas_ros.ros.parameters import ADAPTER_NODES, CONFIG_FILES, FUSION_NODE

NodeParameters = dict[str, dict[str, Any]]


def default_config_dir() -> Path:
    """share/midas_ros/config when installed, else this source tree's config/ (as bringup uses)."""
    from midas_ros.ros.bringup import config_dir

    return config_dir()


def _flatten(section: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def parse_override(text: str) -> tuple[str, str, Any]:
    """'NODE.PARAM=VALUE' (VALUE as YAML: 0.6, true, [0, 0, 1.4, 0, 0.2, 0]) -> (node, param, value)."""
    name, sep, value = text.partition("=")
    node, dot, param = name.strip().partition(".")
    if not sep or not dot or not node or not param:
        raise ValueError(
            f"--set takes NODE.PARAM=VALUE (e.g. fusion_node.max_latency_s=0.2 or "
            f"depth_adapter.camera_pose=[0,0,1.4,0,0.2,0]), got {text!r}"
        )
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({err})") from err
    return node, param, parsed


def overrides_from(texts: Iterable[str]) -> NodeParameters:
    """{node: {param: value}} of several --set arguments (later ones win)."""
    out: NodeParameters = {}
    for text in texts:
        node, param, value = parse_override(text)
        out.setdefault(node, {})[param] = value
    return out


def node_parameters(
    config_dir: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> NodeParameters:
    """{node name: {parameter: value}} of every node named in the config files or the overrides."""
    folder = Path(config_dir) if config_dir is not None else default_config_dir()
    wildcard: dict[str, Any] = {}
    specific: NodeParameters = {}
    for name in CONFIG_FILES:
        path = folder / name
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        for node, section in data.items():
            values = _flatten((section or {}).get("ros__parameters") or {})
            if node == "/**":
                wildcard.update(values)
            else:
                specific.setdefault(node.lstrip("/"), {}).update(values)
    nodes = set(specific) | set(overrides or {}) | {*ADAPTER_NODES.values(), FUSION_NODE}
    return {
        node: {**wildcard, **specific.get(node, {}), **dict((overrides or {}).get(node, {}))}
        for node in nodes
    }
