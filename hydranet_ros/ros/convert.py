"""Pure conversions between ROS messages and numpy arrays (no node, no graph: tested on their own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.images import from_array, to_array


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An HxW or HxWxC array -> sensor_msgs/Image (tightly packed rows, little-endian); ImageError if the array
    does not fit the encoding (core/images.py's table)."""
    data, step, height, width = from_array(array, encoding)
    return Image(header=header or Header(), encoding=encoding, is_bigendian=0, height=height, width=width, step=step,
                 data=data)


def image_to_numpy(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> HxWxC (or HxW for one channel) array of the encoding's values, honouring `step` and
    endianness; a zero-copy view when the rows are packed and the byte order is native. ImageError if malformed."""
    return to_array(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)


def camera_info_from_json(path: Path, width: int, height: int, header: Header | None = None) -> CameraInfo:
    """CameraInfo from an intrinsics JSON ({"image_size_wh", "K", "dist_k1k2p1p2k3"}), scaled to width x height."""
    spec = json.loads(Path(path).read_text())
    k0 = np.array(spec["K"], dtype=float).reshape(3, 3)
    k = Intrinsics(k0[0, 0], k0[1, 1], k0[0, 2], k0[1, 2]).resized(tuple(spec["image_size_wh"]), (width, height))
    info = CameraInfo(header=header or Header(), width=width, height=height)
    info.distortion_model = "plumb_bob"
    info.d = [float(v) for v in spec.get("dist_k1k2p1p2k3", [0.0] * 5)]
    info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info
