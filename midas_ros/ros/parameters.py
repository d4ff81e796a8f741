"""The nodes' parameters as plain data: one home for their names, defaults and descriptions.

Each node declares its `ParameterSpec`s (``nodes.declare_specs``: rclpy, with the description that
``ros2 param describe`` shows); code that runs the nodes' logic without a node (the replay's fast mode)
reads a node's values with `resolve` from a plain {name: value} mapping (config/*.yaml and overrides),
with the same defaults and the same number coercion. config/*.yaml holds exactly the declared
parameters with these defaults (test_adapters.py, test_bringup.py check it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from midas_ros import MODALITIES

# The package's parameter files, in the order every node reads them, and the nodes' names.
CONFIG_FILES = ("adapters.yaml", "midas.yaml")
ADAPTER_NODES: dict[str, str] = {m: f"{m}_adapter" for m in MODALITIES}
FUSION_NODE = "fusion_node"


def as_number(name: str, default: float | list[float], value: Any) -> float | list[float]:
    """A float (or a list of floats, as `default` is) from a value that may be an integer too (YAML
    ``1.5`` or ``2``, ``-p camera_pose:="[0, 0, 1.5, 0, 0.3, 0]"``); ValueError naming the parameter."""
    try:
        if isinstance(default, list):
            if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                raise TypeError(value)
            return [float(v) for v in value]
        return float(value)
    except (TypeError, ValueError) as err:
        kind = "a list of numbers" if isinstance(default, list) else "a number"
        raise ValueError(f"parameter {name} must be {kind}, got {value!r}") from err


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter. `number`: a float (or list of floats) that takes integers too, declared
    with dynamic typing where a plain float parameter would refuse them."""

    name: str
    default: Any
    description: str
    number: bool = False

    def value(self, values: Mapping[str, Any]) -> Any:
        """This parameter's value in `values` (a node's parameters by name), else its default."""
        value = values.get(self.name, self.default)
        return as_number(self.name, self.default, value) if self.number else value


def resolve(specs: Iterable[ParameterSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """{name: value} of each spec: from `values` where given, else the declared default."""
    return {spec.name: spec.value(values) for spec in specs}
