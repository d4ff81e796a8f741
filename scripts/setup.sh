#!/usr/bin/env bash
# Set up a fresh machine without a ROS 2 distro: Debian's libusb for open3d, a venv with the pinned
# requirements (ROS 2 kilted wheels, the CPU torch 2.13.0), and midas_ros installed into it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MIDAS_ROOT"

if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "[setup] installing Debian's libusb-1.0-0 (open3d needs it)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements (first time: a few minutes)"
  # pip warns once per package about this machine's empty local index folders: keep the log readable.
  .venv/bin/pip install -q -r requirements.txt 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import torch, rclpy, open3d, rosbags" # fail here, not later, if the install broke
  echo "$want" > "$stamp"
fi
echo "[setup] installing midas_ros into .venv"
.venv/bin/pip install -q --no-deps --no-build-isolation . 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
rm -rf build midas_ros.egg-info
