"""The set-up script is idempotent: a second run on a complete environment is quick and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def _snapshot(root: Path) -> dict[str, float]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if "__pycache__" not in p:  # Python's own caches change as tests import modules
                out[p] = os.lstat(p).st_mtime_ns
    return out


def test_second_setup_run_is_quick_and_changes_nothing():
    if not (VENV / ".hydranet-setup").is_file():
        pytest.skip(f"tests are not running in a venv made by pip_env/setup.sh ({VENV})")
    before = _snapshot(VENV)
    start = time.monotonic()
    out = subprocess.run(["bash", str(REPO / "pip_env" / "setup.sh"), str(VENV)], capture_output=True, text=True,
                         timeout=300)
    took = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert "environment up to date" in out.stderr
    assert took < 30, f"a no-op set-up took {took:.1f} s"
    assert _snapshot(VENV) == before


def _setup_with(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(["bash", str(REPO / "pip_env" / "setup.sh"), str(VENV)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_a_sourced_ros_whose_rclpy_does_not_import_is_refused():
    out = _setup_with({"ROS_DISTRO": "humble", "PYTHON": sys.base_prefix + "/bin/python3"})
    assert out.returncode == 1
    assert "ROS_DISTRO=humble is sourced, but its rclpy does not import" in out.stderr


def test_an_environment_is_never_switched_to_a_second_ros_distro():
    if not (VENV / ".hydranet-ros-mode").is_file():
        pytest.skip(f"tests are not running in a venv made by pip_env/setup.sh ({VENV})")
    before = _snapshot(VENV)
    # This venv's python imports rclpy (the Jazzy wheels): with ROS_DISTRO set it looks like a sourced
    # install, which must not be mixed into a wheels environment.
    out = _setup_with({"ROS_DISTRO": "humble", "PYTHON": sys.executable})
    assert out.returncode == 1
    assert "was made for ROS 'wheels-jazzy', but this shell has 'system-humble'" in out.stderr
    assert _snapshot(VENV) == before
