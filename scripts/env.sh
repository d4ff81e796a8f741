# Sourced by the set-up, demo and test scripts: the project's venv and DDS settings.
# Fast DDS over UDPv4 on loopback with 4 MiB buffers (config/fastdds.xml); shared memory lost large messages.
MIDAS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MIDAS_ROOT
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$MIDAS_ROOT/config/fastdds.xml}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
export AMENT_PREFIX_PATH="$MIDAS_ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PYTHONUNBUFFERED=1
