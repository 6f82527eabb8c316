"""Image <-> numpy conversions, as pure functions (no graph)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from conftest import SAMPLES
from hydranet_ros.core.images import ImageError
from hydranet_ros.ros.convert import camera_info_from_json, image_to_numpy, numpy_to_image


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / "project_video_0750.jpg")), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8"])
def test_round_trip(frame, encoding):
    arr = {"mono8": frame[:, :, 0], "rgba8": np.dstack([frame, frame[:, :, :1]])}.get(encoding, frame)
    msg = numpy_to_image(arr, encoding)
    assert (msg.width, msg.height, msg.encoding) == (1280, 720, encoding)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_padded_rows_are_read_by_step(frame):
    """Rows padded to a multiple of 64 bytes (as some drivers do) must not shear the image."""
    small = frame[:50, :101]
    row = 101 * 3
    step = (row + 63) // 64 * 64
    padded = np.zeros((50, step), np.uint8)
    padded[:, :row] = small.reshape(50, row)
    msg = Image(height=50, width=101, encoding="rgb8", step=step, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), small)


def test_big_endian_mono16():
    values = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    msg = Image(height=3, width=4, encoding="mono16", is_bigendian=1, step=8, data=values.astype(">u2").tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), values)


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (Image(height=2, width=2, encoding="yuv444", step=6, data=bytes(12)), "unsupported encoding 'yuv444'"),
        (Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(12)), "step 5 is shorter than a row"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(7)), "data has 7 bytes"),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty image"),
    ],
)
def test_malformed_images_raise_a_clear_error(msg, message):
    with pytest.raises(ImageError, match=message):
        image_to_numpy(msg)


def test_camera_info_is_scaled_to_the_image_size():
    full = camera_info_from_json(SAMPLES / "udacity_camera_intrinsics.json", 1280, 720)
    half = camera_info_from_json(SAMPLES / "udacity_camera_intrinsics.json", 640, 360)
    assert full.k[0] == pytest.approx(1158.77, abs=0.01)
    # Pixel centres scale, so the principal point maps as (c + 0.5) * s - 0.5, as everywhere (core/geometry.py).
    assert half.k[0] == pytest.approx(full.k[0] / 2) and half.k[5] == pytest.approx((full.k[5] + 0.5) / 2 - 0.5)
    assert half.p[0] == pytest.approx(half.k[0]) and (half.width, half.height) == (640, 360)
