"""What every node of the package shares: described parameters and a main() that shuts down cleanly.

How `run_ros` (the body of every main()) can be stopped, and what the main thread sees:

- Ctrl-C (SIGINT) once rclpy is up: rclpy's signal handler shuts the context down from a thread of its
  own. Python would also raise KeyboardInterrupt wherever the main thread is: inside rclpy's constructors,
  our clean-up, or an import, where an interrupt inside exec() of a string (dataclasses, namedtuple)
  makes CPython 3.11 exit with status 130 even though the interrupt was caught. So a Ctrl-C only shuts
  the context down, and later ones are ignored, as `ros2 launch` ignores repeated ones (under launch a
  node gets each Ctrl-C twice: from the terminal and from launch). Ctrl-\\ (SIGQUIT) still kills.
- Ctrl-C before rclpy.init: KeyboardInterrupt. (During a module's own imports, before main() runs, it is
  out of reach: keep slow imports inside functions, as bringup does.)
- SIGTERM, or rclpy.shutdown() from another thread: the context is shut down.

Once the context is down, whatever still uses it ends or fails: spin loops end, executors raise
ExternalShutdownException, wait sets, timers, guard conditions, publishers and subscriptions raise RCLError
"the given context is not valid". That is the requested stop, so `run_ros` ends quietly; an exception
raised while the context is up is a real error and propagates with its traceback.

rclpy.try_shutdown() destroys every node the context still tracks, even one whose constructor failed
half-way: a node's destroy_node must cope with a partly built node.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node

from midas_ros.ros.parameters import ParameterSpec, as_number

# rclpy 9.1 bug: Executor.__del__ reads self._sigint_gc, which __init__ sets only after making its guard
# conditions, so an executor made on a context that was just shut down (rclpy.spin makes one right after
# the node is up) printed "Exception ignored in: Executor.__del__ ... AttributeError" with a traceback.
Executor._sigint_gc = None


def declare_param(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare a parameter with a description (shown by `ros2 param describe`); returns its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def declare_spec(node: Node, spec: ParameterSpec) -> Any:
    """Declare a ParameterSpec (numbers with dynamic typing: they take integers too); returns its value
    (override, YAML, or default) as `ParameterSpec.value` reads it from a mapping."""
    if not spec.number:
        return declare_param(node, spec.name, spec.default, spec.description)
    descriptor = ParameterDescriptor(description=spec.description, dynamic_typing=True)
    return as_number(
        spec.name, spec.default, node.declare_parameter(spec.name, spec.default, descriptor).value
    )


def declare_specs(node: Node, specs: Iterable[ParameterSpec]) -> dict[str, Any]:
    """Declare every spec; {name: value}."""
    return {spec.name: declare_spec(node, spec) for spec in specs}


@contextlib.contextmanager
def quiet_on_shutdown(context: Context) -> Iterator[None]:
    """Swallow what fails in the block because `context` was shut down; re-raise errors while it is up."""
    try:
        yield
    except Exception:
        if context.ok():
            raise  # a real error: the context was still up


def run_ros(main: Callable[[], None], args: Sequence[str] | None = None) -> None:
    """rclpy.init(args), main(), rclpy shut down; a Ctrl-C or a shutdown at any point ends it quietly.

    An exception raised while the context is up propagates (with its traceback, after the shutdown).
    Call it from the main thread, as the body of main(): from rclpy.init on, SIGINT only shuts the context
    down, also after it returns (see the module docstring).
    """
    started = False

    def on_sigint(signum: int, frame: object) -> None:
        # Once rclpy.init has installed its handler, that one runs first and shuts the context down.
        if not started:
            raise KeyboardInterrupt

    # Before rclpy.init: rclpy's handler calls the handler it replaces, i.e. this one.
    signal.signal(signal.SIGINT, on_sigint)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before rclpy.init was done
        context = rclpy.get_default_context()
        try:
            rclpy.init(args=None if args is None else list(args), context=context)
            started = True
            with quiet_on_shutdown(context):
                main()
        finally:
            rclpy.try_shutdown()


def run_node(
    make_node: Callable[[], Node],
    args: Sequence[str] | None = None,
    *,
    spin: Callable[[Node], None] = rclpy.spin,
) -> None:
    """Make one node and `spin` it until Ctrl-C or an external shutdown, then clean up (as in ros2/demos).

    How it ends: see `run_ros`. An error from `make_node` or `spin` propagates after the clean-up.
    """

    def main() -> None:
        node = make_node()
        try:
            spin(node)
        finally:
            node.destroy_node()

    run_ros(main, args)
