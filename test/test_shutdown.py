"""Every entry point exits 0, without a traceback, when Ctrl-C or an external shutdown comes at any point.

Each case runs one entry point's main() in a child process, and the signal lands exactly at the state
under test: the child raises SIGINT (or SIGTERM) itself from a wrapped function (before rclpy.init, when
a checkpoint is about to load, right after construction) and waits until rclpy's handler has shut the
context down; or the parent sends SIGINT once the child has printed SPINNING from a node callback
(callbacks run only while an executor spins the node). An external shutdown is rclpy.shutdown() from a
thread that such a callback starts. No sleep decides an outcome; timeouts are only safety nets.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros
TIMEOUT_S = 60.0  # safety net only: a healthy case takes a few seconds

# Helpers for the child's script; a case adds its hooks and then calls the real main().
PRELUDE = """
import signal, sys, threading
import rclpy
from rclpy.clock import Clock, ClockType


def shut_down():
    # rclpy's handler shuts the context down from a thread of its own: the state under test is after that.
    context = rclpy.get_default_context()
    while context.ok():
        pass


def sigint(*_):
    signal.raise_signal(signal.SIGINT)  # before rclpy.init, KeyboardInterrupt comes out of here
    shut_down()


def sigterm(*_):
    signal.raise_signal(signal.SIGTERM)
    shut_down()


def before(owner, name, action):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        action()
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def after(owner, name, action):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        action(result)
        return result

    setattr(owner, name, wrapper)


def after_init(cls, action):
    real = cls.__init__

    def wrapper(self, *args, **kwargs):
        real(self, *args, **kwargs)
        action(self)

    cls.__init__ = wrapper


def once_spinning(node, action):
    # A node's callbacks run only while an executor spins it. Steady clock: also under use_sim_time.
    def fire():
        timer.cancel()
        action()

    timer = node.create_timer(0.01, fire, clock=Clock(clock_type=ClockType.STEADY_TIME))


def say_spinning():
    print("SPINNING", flush=True)


def shutdown_from_thread():
    threading.Thread(target=rclpy.shutdown, name="external_shutdown").start()
"""

# Hooks on the node (bringup: its first node), run right after construction.
NODE_HOOKS = {
    "sigint_after_construction": "lambda node: sigint()",
    "sigterm_after_construction": "lambda node: sigterm()",
    "sigint_while_spinning": "lambda node: once_spinning(node, say_spinning)",  # the parent sends it
    "shutdown_while_spinning": "lambda node: once_spinning(node, shutdown_from_thread)",
}


class Child:
    """One entry point in a child process; its output (stdout and stderr) is read line by line."""

    def __init__(self, script: str, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(script), *argv],
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def text(self) -> str:
        return "".join(self.output)

    def wait_for(self, marker: str) -> None:
        """Block until the child prints a line containing `marker`."""
        while True:
            try:
                line = self._lines.get(timeout=TIMEOUT_S)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no {marker!r} within {TIMEOUT_S} s:\n{self.text()}")
            if line is None:
                pytest.fail(f"exited ({self.proc.wait()}) before printing {marker!r}:\n{self.text()}")
            if marker in line:
                return

    def finish(self) -> tuple[int, str]:
        """(exit code, output) once the child has ended."""
        try:
            code = self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running {TIMEOUT_S} s later:\n{self.text()}")
        self._reader.join(timeout=TIMEOUT_S)
        return code, self.text()


def run_case(script: str, argv: list[str], *, sigint_after: Sequence[str] = ()) -> tuple[int, str]:
    """Run the child; send it SIGINT each time it prints the next of `sigint_after`; (exit code, output)."""
    child = Child(script, argv)
    for marker in sigint_after:
        child.wait_for(marker)
        child.proc.send_signal(signal.SIGINT)
    return child.finish()


def parent_sigints(case: str) -> tuple[str, ...]:
    return ("SPINNING",) if case == "sigint_while_spinning" else ()


def assert_clean(code: int, output: str) -> None:
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    from midas_ros.model import MIDAS, save_checkpoint, tiny_config

    return str(save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny"))


def write_string_bag(path: Path, count: int = 3) -> Path:
    """A tiny MCAP bag: `count` std_msgs/String messages on /chatter, 0.1 s apart."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    string = typestore.types["std_msgs/msg/String"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=typestore)
        for k in range(count):
            rawdata = typestore.serialize_cdr(string(data=f"hello {k}"), "std_msgs/msg/String")
            writer.write(connection, 1_700_000_000_000_000_000 + k * 100_000_000, bytes(rawdata))
    return path


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_string_bag(tmp_path_factory.mktemp("bag") / "chatter"))


# -- run_node, with one adapter ----------------------------------------------------------------------------

CSI_ADAPTER = """
from midas_ros.ros import csi_adapter
{hook}
csi_adapter.main()
"""


def test_run_node_sigint_before_rclpy_init() -> None:
    assert_clean(*run_case(CSI_ADAPTER.format(hook="before(rclpy, 'init', sigint)"), []))


@pytest.mark.parametrize("case", list(NODE_HOOKS))
def test_run_node(case: str) -> None:
    hook = f"after_init(csi_adapter.CsiAdapter, {NODE_HOOKS[case]})"
    code, output = run_case(CSI_ADAPTER.format(hook=hook), [], sigint_after=parent_sigints(case))
    assert_clean(code, output)


def test_run_node_sigint_during_clean_up() -> None:
    # Under `ros2 launch` a node gets each Ctrl-C twice (from the terminal and from launch).
    hook = (
        f"after_init(csi_adapter.CsiAdapter, {NODE_HOOKS['sigint_while_spinning']})\n"
        "before(csi_adapter.CsiAdapter, 'destroy_node', sigint)"
    )
    assert_clean(*run_case(CSI_ADAPTER.format(hook=hook), [], sigint_after=("SPINNING",)))


# -- fusion node ---------------------------------------------------------------------------------------


FUSION_NODE = """
from midas_ros.model import PosePredictor
from midas_ros.ros import fusion_node
{hook}
fusion_node.main()
"""


@pytest.mark.parametrize("case", ["sigint_while_loading", "sigint_while_spinning"])
def test_fusion_node(case: str, checkpoint: str) -> None:
    hooks = {
        "sigint_while_loading": "before(PosePredictor, 'from_checkpoint', sigint)",
        "sigint_while_spinning": f"after_init(fusion_node.FusionNode, {NODE_HOOKS['sigint_while_spinning']})",
    }
    argv = ["--ros-args", "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu"]
    code, output = run_case(FUSION_NODE.format(hook=hooks[case]), argv, sigint_after=parent_sigints(case))
    assert_clean(code, output)


# -- bringup: all nodes in one process -----------------------------------------------------------------

BRINGUP = """
from midas_ros.ros import bringup
after(bringup, "build_nodes", lambda nodes: ({hook})(nodes[0]))
bringup.main()
"""


@pytest.mark.parametrize("case", list(NODE_HOOKS))
def test_bringup(case: str, checkpoint: str) -> None:
    argv = ["--checkpoint", checkpoint, "--device", "cpu"]
    code, output = run_case(BRINGUP.format(hook=NODE_HOOKS[case]), argv, sigint_after=parent_sigints(case))
    assert_clean(code, output)


# -- bag player ----------------------------------------------------------------------------------------

BAG_PLAYER = """
from midas_ros.ros import bag_player
{hook}
bag_player.main()
"""


@pytest.mark.parametrize("case", ["sigint_while_spinning", "shutdown_while_spinning"])
def test_bag_player(case: str, bag: str) -> None:
    hook = f"after_init(bag_player.BagPlayer, {NODE_HOOKS[case]})"
    argv = ["--ros-args", "-p", f"bag:={bag}", "-p", "loop:=true"]  # plays until stopped
    code, output = run_case(BAG_PLAYER.format(hook=hook), argv, sigint_after=parent_sigints(case))
    assert_clean(code, output)


def test_real_error_in_construction_still_fails(tmp_path: Path) -> None:
    code, output = run_case(BAG_PLAYER.format(hook=""), ["--ros-args", "-p", f"bag:={tmp_path / 'none'}"])
    assert code != 0, output
    assert "Traceback" in output and "FileNotFoundError" in output, output


# -- while a worker thread is busy -----------------------------------------------------------------------

# The worker's handler prints BUSY, then takes 2 s (a long inference or a huge cloud); the parent sends
# SIGINT on BUSY. The node hands the worker one item as soon as it is built.
BUSY_WORKER = """
import time
from midas_ros.ros import {module}

def slow(handle):
    def run(item):
        print("BUSY", flush=True)
        time.sleep(2.0)
        return handle(item)
    return run

def feed(node):
    {feed}

after_init({module}.{cls}, feed)
{module}.main()
"""
FEEDS = {
    "fusion_node": (
        "FusionNode",
        "import numpy as np\n"
        "    from midas_ros.sync import SampleSet\n"
        "    node.predictor.predict = slow(node.predictor.predict)\n"
        "    csi = np.zeros((6, 114, 10), np.float32)\n"
        "    node._worker.put(SampleSet(1, {'csi': csi}, {'csi': 1}, {}, 0, 0))",
    ),
    "csi_adapter": (
        "CsiAdapter",
        "import numpy as np\n"
        "    from midas_ros.ros.conversions import csi_to_pointcloud2\n"
        "    node._worker._handle = slow(node._worker._handle)\n"
        "    node._worker.put(csi_to_pointcloud2(np.ones((3, 114, 10)), np.zeros((3, 114, 10))))",
    ),
}


@pytest.mark.parametrize("module", list(FEEDS))
def test_sigint_while_the_worker_is_busy(module: str, checkpoint: str) -> None:
    cls, feed = FEEDS[module]
    argv = (
        ["--ros-args", "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu"]
        if module == "fusion_node"
        else []
    )
    script = BUSY_WORKER.format(module=module, cls=cls, feed=feed)
    assert_clean(*run_case(script, argv, sigint_after=("BUSY",)))
