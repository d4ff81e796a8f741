"""Test-wide settings: the project's Fast DDS profile and a private ROS domain per test run."""

from __future__ import annotations

import os
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Set before rclpy is imported anywhere: UDPv4 on loopback with large buffers (see config/fastdds.xml),
# and a domain of our own so parallel runs on one machine do not cross-talk.
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
