#!/usr/bin/env bash
# Build the cosmos_ros_interfaces package (rosidl, ament_cmake) into a Python venv that holds the
# ROS 2 Kilted wheels, on a machine without an apt ROS install.
#
#   scripts/build_interfaces.sh VENV
#
# The wheels' exported CMake files name the wheel builder's Python include paths; they are
# rewritten to this venv's own before CMake runs (ENVIRONMENT notes in the README). The package
# is installed into the venv prefix, so its Python module lands in site-packages and its
# libraries in VENV/lib, where the wheels' own libraries (and the bootstrapper's
# LD_LIBRARY_PATH) already are. Re-running rebuilds only when the interface files changed.
set -euo pipefail

venv=$(cd "${1:?usage: build_interfaces.sh VENV}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/interfaces/cosmos_ros_interfaces"
build="$venv/build/cosmos_ros_interfaces"  # per venv: a CMake cache remembers its Python
py="$venv/bin/python"
stamp="$venv/share/cosmos_ros_interfaces/.cosmos_ros_build_stamp"

digest=$(cd "$src" && cat CMakeLists.txt package.xml msg/* srv/* action/* | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] \
  && "$py" -c "import cosmos_ros_interfaces.action" 2>/dev/null; then
  echo "cosmos_ros_interfaces: up to date"
  exit 0
fi

py_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$py" -c 'import numpy; print(numpy.get_include())')
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# Point the wheels' exported CMake files at this venv's Python headers and numpy.
{ grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$venv/share" --include='*.cmake' 2>/dev/null || true; } \
  | while read -r f; do
      sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_include}#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_include}#g" "$f"
    done

export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$build"
echo "cosmos_ros_interfaces: building into $venv"
cmake -S "$src" -B "$build" -Wno-dev \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" \
  -DPython3_FIND_STRATEGY=LOCATION \
  -DBUILD_TESTING=OFF >"$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >>"$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
cmake --install "$build" >>"$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
"$py" -c "from cosmos_ros_interfaces.action import PredictVideo; from cosmos_ros_interfaces.srv import ListAdapters" \
  || { echo "cosmos_ros_interfaces built but does not import; log: $build.log"; exit 1; }
echo "$digest" >"$stamp"
echo "cosmos_ros_interfaces: built and installed"
