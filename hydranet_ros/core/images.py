"""Image bytes <-> arrays: the one table of sensor_msgs/Image encodings, used by the node, the report, the bag
tools and the importers alike, so that a camera whose frames the node reads can also be recorded and imported.

Plain numpy + OpenCV over message *fields* (never a message class): rclpy messages and rosbags' decoded messages
both work, and every malformed frame becomes an `ImageError` with a short `reason` the node can count, never an
obscure crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

MAX_PIXELS: int = 50_000_000  # about 8k x 6k; refuse larger before allocating anything
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")


class ImageError(ValueError):
    """A frame that cannot be decoded. `reason` is a short category for counters: 'encoding' (unknown/unsupported
    encoding or compressed format), 'size' (zero/too large/step or length mismatch), 'data' (empty or truncated
    data), 'decode' (corrupt compressed data)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


AS_IS = -1  # `to_rgb` of an encoding that is RGB already


@dataclass(frozen=True)
class Encoding:
    """One sensor_msgs/Image encoding: `channels` samples of `dtype` per pixel (YUV 4:2:2: 2 bytes per pixel),
    and the OpenCV conversion of its 8-bit form to RGB (AS_IS; None: not a colour image, e.g. 32FC1 depth)."""

    channels: int
    dtype: type
    to_rgb: int | None

    @property
    def sample_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize


# OpenCV names Bayer patterns by the second row's 2nd/3rd pixels, so ROS `rggb` (R G / G B) is OpenCV `BayerBG`.
ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3, np.uint8, AS_IS),
    "bgr8": Encoding(3, np.uint8, cv2.COLOR_BGR2RGB),
    "8UC3": Encoding(3, np.uint8, cv2.COLOR_BGR2RGB),  # untyped 3 channels: OpenCV's BGR, as cv_bridge assumes
    "rgba8": Encoding(4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": Encoding(4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": Encoding(1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC1": Encoding(1, np.uint8, cv2.COLOR_GRAY2RGB),
    "rgb16": Encoding(3, np.uint16, AS_IS),
    "bgr16": Encoding(3, np.uint16, cv2.COLOR_BGR2RGB),
    "rgba16": Encoding(4, np.uint16, cv2.COLOR_RGBA2RGB),
    "bgra16": Encoding(4, np.uint16, cv2.COLOR_BGRA2RGB),
    "mono16": Encoding(1, np.uint16, cv2.COLOR_GRAY2RGB),
    "16UC1": Encoding(1, np.uint16, cv2.COLOR_GRAY2RGB),  # also REP 118 depth in millimetres
    "yuv422": Encoding(2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),  # ROS defines yuv422 as U Y0 V Y1 byte order
    "uyvy": Encoding(2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": Encoding(2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),  # Y0 U Y1 V
    "yuyv": Encoding(2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
    "bayer_rggb8": Encoding(1, np.uint8, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": Encoding(1, np.uint8, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": Encoding(1, np.uint8, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": Encoding(1, np.uint8, cv2.COLOR_BayerGB2RGB),
    "bayer_rggb16": Encoding(1, np.uint16, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr16": Encoding(1, np.uint16, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg16": Encoding(1, np.uint16, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg16": Encoding(1, np.uint16, cv2.COLOR_BayerGB2RGB),
    "32FC1": Encoding(1, np.float32, None),  # metric depth (REP 118)
}
RAW_ENCODINGS: tuple[str, ...] = tuple(k for k, e in ENCODINGS.items() if e.to_rgb is not None)  # camera frames
# What a mask or depth image may be, read as values rather than colours.
DENSE_ENCODINGS: tuple[str, ...] = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
# Depth images by REP 118: a topic of these is a depth camera's, never frames to train on.
DEPTH_ENCODINGS: tuple[str, ...] = ("16UC1", "32FC1")


def _as_bytes(data: object) -> np.ndarray:
    """Any bytes-like message buffer -> flat uint8 array, without copying where the buffer allows."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageError("data", f"image data must be uint8, got a numpy array of {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError, BufferError) as e:
        raise ImageError("data", f"image data must be a bytes-like buffer, got {type(data).__name__}") from e


def _check_dims(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError("size", f"empty image: size must be positive, got {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError("size", f"image {width}x{height} has more than MAX_PIXELS={MAX_PIXELS} pixels")


def _encoding(name: str, supported: tuple[str, ...]) -> Encoding:
    if name not in supported:
        raise ImageError("encoding", f"unsupported encoding {name!r}; supported: {', '.join(supported)}")
    return ENCODINGS[name]


def _rows(enc: Encoding, name: str, width: int, height: int, step: int, data: object) -> tuple[np.ndarray, int]:
    """The message buffer as flat bytes, checked to hold `height` rows of `step` bytes (the last may be unpadded);
    and the bytes of one unpadded row."""
    width, height, step = int(width), int(height), int(step)
    _check_dims(width, height)
    if enc.channels == 2 and width % 2:  # only the YUV 4:2:2 encodings have 2 bytes per pixel
        raise ImageError("size", f"{name} packs pixel pairs, so width must be even, got {width}")
    row = width * enc.channels * enc.sample_bytes
    if step < row:
        raise ImageError("size", f"step {step} is shorter than a row ({row} bytes for {width} px {name})")
    buf = _as_bytes(data)
    if buf.size == 0:
        raise ImageError("data", "image data is empty")
    needed = step * (height - 1) + row
    if buf.size < needed:
        raise ImageError("data", f"data has {buf.size} bytes, {width}x{height} {name} with step {step} needs "
                                 f"{needed}")
    return buf, row


def decode_raw(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int, data) -> np.ndarray:
    """sensor_msgs/Image fields of a camera frame -> contiguous HxWx3 uint8 RGB that never aliases `data` (callers
    may reuse it). 16-bit samples are read as a zero-copy view of their high byte, which is exactly `>> 8`.

    `data` may be bytes, bytearray, memoryview, array.array('B') or a uint8 numpy array; rows are read through a
    strided view (no copy), and the one copy is the colour conversion itself."""
    enc = _encoding(encoding, RAW_ENCODINGS)
    buf, _ = _rows(enc, encoding, width, height, step, data)
    width, height, step = int(width), int(height), int(step)
    depth = enc.sample_bytes
    offset = 0 if depth == 1 or is_bigendian else 1  # the high byte: first in big-endian, second in little
    shape = (height, width, enc.channels) if enc.channels > 1 else (height, width)
    strides = (step, enc.channels * depth, depth)[: len(shape)]
    view = np.ndarray(shape, np.uint8, buffer=buf, offset=offset, strides=strides)
    if enc.to_rgb == AS_IS:
        return np.array(view, order="C", copy=True)
    return cv2.cvtColor(view, enc.to_rgb)  # a new contiguous array


def to_array(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int, data,
             supported: tuple[str, ...] = tuple(ENCODINGS)) -> np.ndarray:
    """sensor_msgs/Image fields -> the samples as values: HxWxC (HxW for one channel) of the encoding's dtype in
    native byte order, honouring `step`. A zero-copy view when the rows are packed and the byte order is native."""
    enc = _encoding(encoding, supported)
    buf, row = _rows(enc, encoding, width, height, step, data)
    width, height, step = int(width), int(height), int(step)
    dt = np.dtype(enc.dtype).newbyteorder(">" if is_bigendian else "<")
    if step == row:
        packed = buf[: row * height]  # a view: no copy
    else:  # padded rows: drop the padding (the last row may be unpadded, so no plain reshape)
        packed = np.lib.stride_tricks.as_strided(buf, shape=(height, row), strides=(step, 1)).copy()
    arr = packed.view(dt).reshape(height, width, enc.channels)  # YUV 4:2:2: its two bytes per pixel
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return arr[:, :, 0] if enc.channels == 1 else arr


def from_array(array: np.ndarray, encoding: str) -> tuple[bytes, int, int, int]:
    """An HxW or HxWxC array -> (data, step, height, width) of a sensor_msgs/Image in `encoding`: tightly packed
    rows, little-endian (is_bigendian 0)."""
    enc = _encoding(encoding, tuple(ENCODINGS))
    arr = np.ascontiguousarray(array, dtype=enc.dtype)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != enc.channels:
        raise ImageError("size", f"{encoding} needs {enc.channels} channel(s), got array of shape {array.shape}")
    h, w = arr.shape[:2]
    # bytes: assigning them to a message is ~200x faster than assigning an ndarray to a uint8[] field (measured).
    data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return data, w * enc.channels * arr.dtype.itemsize, h, w


def jpeg_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, or None when the segments cannot be walked (cv2 then decides)."""
    i = 2
    while i + 9 <= len(buf) and buf[i] == 0xFF:
        marker = buf[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill byte / markers without a length
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(buf[i + 7 : i + 9], "big"), int.from_bytes(buf[i + 5 : i + 7], "big")
        i += 2 + int.from_bytes(buf[i + 2 : i + 4], "big")
    return None


def compressed_kind(data: bytes) -> str | None:
    """'jpeg' or 'png' from a payload's magic bytes; None for anything else."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


def _compressed_format(fmt: str) -> str:
    """'jpeg', 'JPG', 'rgb8; jpeg compressed bgr8', 'bgr8; png compressed bgr8' -> 'jpeg' or 'png'."""
    words = str(fmt).lower().split(";")[-1].split()
    name = {"jpg": "jpeg"}.get(words[0], words[0]) if words else ""
    if name not in COMPRESSED_FORMATS or words[1:2] not in ([], ["compressed"]):
        raise ImageError("encoding", f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    return name


def decode_compressed(fmt: str, data) -> np.ndarray:
    """sensor_msgs/CompressedImage `format` + data -> HxWx3 uint8 RGB (16-bit scaled to 8, grey to 3 channels).

    The header size is checked against MAX_PIXELS before decoding, so a small file claiming a huge image costs
    nothing. A file must end with its end marker (JPEG EOI, PNG IEND): a truncated JPEG can otherwise decode
    "successfully" with its missing part filled in grey. The actual format is taken from the data's magic bytes."""
    name = _compressed_format(fmt)
    buf = _as_bytes(data)
    if buf.size == 0:
        raise ImageError("data", "compressed image data is empty")
    head, tail = bytes(buf[:65536]), bytes(buf[-4096:]).rstrip(b"\0")  # some encoders pad the buffer with zeros
    kind = compressed_kind(head)
    if kind == "jpeg":
        size, complete = jpeg_size(head), tail.endswith(b"\xff\xd9")
    elif kind == "png" and head[12:16] == b"IHDR":
        size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        complete = tail.endswith(b"IEND\xaeB`\x82")
    else:
        raise ImageError("decode", f"data declared {name} is neither a JPEG nor a PNG (starts {head[:8].hex()})")
    if size is not None:
        _check_dims(*size)
    if not complete:
        raise ImageError("decode", f"compressed image is truncated: no end marker ({buf.size} bytes)")
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # pixels as the sensor saw them
    except cv2.error as e:
        raise ImageError("decode", f"corrupt compressed image: {e}") from e
    if bgr is None:
        raise ImageError("decode", f"corrupt compressed image ({buf.size} bytes)")
    _check_dims(bgr.shape[1], bgr.shape[0])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_image_msg(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (rclpy's or rosbags' message: only the fields are read) -> HxWx3
    uint8 RGB; ImageError when it cannot be decoded."""
    if hasattr(msg, "encoding"):
        return decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)
    return decode_compressed(msg.format, msg.data)
