"""Middleware defaults, applied before rclpy.init() in every process of ours.

Two Fast DDS profiles (both in config/, each file says why it is as it is):

* fastdds_shm.xml, for our tools and tests: a 32 MB shared-memory segment, so camera-sized samples between our
  own processes go through shared memory.
* fastdds_node.xml, for hydranet_node: inputs over UDP into a large receive buffer (so that camera drivers in their
  stock configuration, whose own 0.5 MB segment is too small for a frame, reach the node), outputs through a 32 MB
  segment, and a reader history of a few frames (back-pressure in replay mode).

A profile the user chose (FASTRTPS_DEFAULT_PROFILES_FILE) or another RMW always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydranet_ros.ros.params import config_file

PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
# What fastdds_node.xml asks for as UDP receive buffer; the kernel grants at most net.core.rmem_max.
NODE_RECEIVE_BUFFER = 32 * 1024 * 1024


def _use(name: str) -> str | None:
    if os.environ.get(PROFILE_ENV):
        return os.environ[PROFILE_ENV]
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    os.environ[PROFILE_ENV] = str(config_file(name))
    return os.environ[PROFILE_ENV]


def use_shm_profile() -> str | None:
    """Use config/fastdds_shm.xml unless the user chose a profile or another RMW. Returns the profile in effect,
    if any. Must run before rclpy.init()."""
    return _use("fastdds_shm.xml")


def use_node_profile() -> str | None:
    """Use config/fastdds_node.xml (hydranet_node's) unless the user chose a profile or another RMW. Returns the
    profile in effect, if any. Must run before rclpy.init()."""
    return _use("fastdds_node.xml")


def is_node_profile(path: str | None) -> bool:
    return bool(path) and Path(path).name == "fastdds_node.xml"


def udp_receive_buffer_limit() -> int | None:
    """net.core.rmem_max in bytes (the most any UDP socket may ask for), or None where it cannot be read."""
    try:
        return int(RMEM_MAX.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
