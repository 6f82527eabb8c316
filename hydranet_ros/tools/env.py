"""hydranet env: what this environment provides, for bug reports and set-up checks."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - report any import failure as such
        return f"MISSING ({type(exc).__name__}: {exc})"
    return str(getattr(m, "__version__", "present"))


def run(args: argparse.Namespace) -> int:  # noqa: ARG001
    import hydranet_ros

    rows = [
        ("hydranet_ros", hydranet_ros.__version__),
        ("python", platform.python_version()),
        ("ROS_DISTRO", os.environ.get("ROS_DISTRO") or "(not sourced: ROS 2 Jazzy from PyPI wheels)"),
        ("rclpy", _version("rclpy")),
        ("vision_msgs", _version("vision_msgs.msg")),
        ("torch", _version("torch")),
        ("onnxruntime", _version("onnxruntime")),
        ("opencv", _version("cv2")),
        ("numpy", _version("numpy")),
        ("rosbags", _version("rosbags")),
        ("nvidia-smi", shutil.which("nvidia-smi") or "not found"),
    ]
    try:
        import onnxruntime

        rows.append(("ORT providers", ", ".join(onnxruntime.get_available_providers())))
    except ImportError:
        pass
    try:
        import torch

        rows.append(("torch CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"))
    except ImportError:
        pass
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
