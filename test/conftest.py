"""Test-wide settings: the project's Fast DDS profile and a private ROS domain per test run."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Set before rclpy is imported anywhere: UDPv4 on loopback with large buffers (see config/fastdds.xml),
# and a domain of our own so parallel runs on one machine do not cross-talk.
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test module: the tensors are tiny, and a second OpenMP thread only
    spin-waits, which is ruinous on a busy 2-core machine (measured up to 10x slower)."""
    import torch  # only the modules that use torch pay for importing it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
