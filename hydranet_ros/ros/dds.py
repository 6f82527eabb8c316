"""Middleware defaults, applied before rclpy.init() in every process of ours."""

from __future__ import annotations

import os

from hydranet_ros.ros.params import config_file

PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"


def use_shm_profile() -> str | None:
    """Use config/fastdds_shm.xml (32 MB shared memory, for camera-sized samples) unless the user chose a
    profile or another RMW. Returns the profile in effect, if any. Must run before rclpy.init()."""
    if os.environ.get(PROFILE_ENV):
        return os.environ[PROFILE_ENV]
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    os.environ[PROFILE_ENV] = str(config_file("fastdds_shm.xml"))
    return os.environ[PROFILE_ENV]
