"""Camera bytes -> RGB uint8 -> letterboxed network batch, and network-space results -> source pixels.

Plain numpy + OpenCV, never rclpy: the node hands over message fields, so this layer is testable without ROS and
every malformed frame becomes an `ImageError` with a short `reason` the node can count, never an obscure crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MAX_PIXELS: int = 50_000_000  # about 8k x 6k; refuse larger before allocating anything
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
PAD_RGB: tuple[int, int, int] = (124, 116, 104)  # ImageNet mean: normalises to ~0, so padding looks like "nothing"


class ImageError(ValueError):
    """A frame that cannot be decoded. `reason` is a short category for counters: 'encoding' (unknown/unsupported
    encoding or compressed format), 'size' (zero/too large/step or length mismatch), 'data' (empty or truncated
    data), 'decode' (corrupt compressed data)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# encoding -> (channels per pixel, bytes per channel, cv2 conversion to RGB or None when already RGB).
# 16-bit data is read as a zero-copy view of each sample's high byte, which is exactly `>> 8`.
# OpenCV names Bayer patterns by the second row's 2nd/3rd pixels, so ROS `rggb` (R G / G B) is OpenCV `BayerBG`.
_RAW: dict[str, tuple[int, int, int | None]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "8UC3": (3, 1, cv2.COLOR_BGR2RGB),  # untyped 3 channels: OpenCV's BGR convention, as cv_bridge assumes
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, 1, cv2.COLOR_GRAY2RGB),
    "rgb16": (3, 2, None),
    "bgr16": (3, 2, cv2.COLOR_BGR2RGB),
    "rgba16": (4, 2, cv2.COLOR_RGBA2RGB),
    "bgra16": (4, 2, cv2.COLOR_BGRA2RGB),
    "mono16": (1, 2, cv2.COLOR_GRAY2RGB),
    "16UC1": (1, 2, cv2.COLOR_GRAY2RGB),
    "yuv422": (2, 1, cv2.COLOR_YUV2RGB_UYVY),  # ROS defines yuv422 as U Y0 V Y1 byte order
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUY2),  # Y0 U Y1 V
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "bayer_rggb8": (1, 1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (1, 1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (1, 1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (1, 1, cv2.COLOR_BayerGB2RGB),
    "bayer_rggb16": (1, 2, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr16": (1, 2, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg16": (1, 2, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg16": (1, 2, cv2.COLOR_BayerGB2RGB),
}
RAW_ENCODINGS: tuple[str, ...] = tuple(_RAW)


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
        raise ImageError("size", f"image size must be positive, got {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError("size", f"image {width}x{height} has more than MAX_PIXELS={MAX_PIXELS} pixels")


def decode_raw(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int, data) -> np.ndarray:
    """sensor_msgs/Image fields -> contiguous HxWx3 uint8 RGB that never aliases `data` (callers may reuse it).

    `data` may be bytes, bytearray, memoryview, array.array('B') or a uint8 numpy array; rows are read through a
    strided view (no copy), and the one copy is the colour conversion itself."""
    if encoding not in _RAW:
        raise ImageError("encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)}")
    channels, depth, code = _RAW[encoding]
    width, height, step = int(width), int(height), int(step)
    _check_dims(width, height)
    if channels == 2 and width % 2:  # only the YUV 4:2:2 encodings have 2 bytes per pixel
        raise ImageError("size", f"{encoding} packs pixel pairs, so width must be even, got {width}")
    row = width * channels * depth
    if step < row:
        raise ImageError("size", f"step {step} < width * bytes per pixel = {width}*{channels * depth} for {encoding}")
    buf = _as_bytes(data)
    if buf.size == 0:
        raise ImageError("data", "image data is empty")
    needed = step * (height - 1) + row  # the last row needs no padding after it
    if buf.size < needed:
        raise ImageError("data", f"{encoding} {width}x{height} step {step} needs >= {needed} bytes, got {buf.size}")
    # For 16 bit, view only each sample's high byte: offset 0 in big-endian, 1 in little-endian.
    offset = 0 if depth == 1 or is_bigendian else 1
    shape = (height, width, channels) if channels > 1 else (height, width)
    view = np.ndarray(shape, np.uint8, buffer=buf, offset=offset, strides=(step, channels * depth, depth)[: len(shape)])
    if code is None:
        return np.array(view, order="C", copy=True)
    return cv2.cvtColor(view, code)  # a new contiguous array


def _jpeg_size(buf: bytes) -> tuple[int, int] | None:
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
    if head.startswith(b"\xff\xd8"):
        size, complete = _jpeg_size(head), tail.endswith(b"\xff\xd9")
    elif head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
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


def _round_half_up(x: float) -> int:
    return int(x + 0.5)  # x >= 0 here; round() would round 1.5 and 2.5 both to 2


@dataclass(frozen=True)
class Letterbox:
    """Uniform scale + centred padding from a source image (src_w x src_h) into the network input (dst_w x dst_h).

    Uniform scale keeps pixels square, so one focal length fx*scale describes the network image (depth needs it)."""

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale: float  # dst pixels per source pixel = min(dst_w/src_w, dst_h/src_h)
    new_w: int  # size of the resized content = round(src * scale), each clamped to [1, dst]
    new_h: int
    pad_x: int  # left / top padding = (dst - new) // 2
    pad_y: int

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
        if min(src_w, src_h, dst_w, dst_h) <= 0:
            raise ValueError(f"letterbox sizes must be positive, got {src_w}x{src_h} -> {dst_w}x{dst_h}")
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w = min(max(round(src_w * scale), 1), dst_w)
        new_h = min(max(round(src_h * scale), 1), dst_h)
        return cls(src_w, src_h, dst_w, dst_h, scale, new_w, new_h, (dst_w - new_w) // 2, (dst_h - new_h) // 2)

    def apply(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """HxWx3 uint8 (src size) -> dst_h x dst_w x 3 uint8, written into `out` when given (a batch slot).

        INTER_AREA when shrinking (see `_resize`), INTER_LINEAR when enlarging, a plain copy at scale 1; the padding
        is PAD_RGB."""
        if rgb.shape != (self.src_h, self.src_w, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected {self.src_h}x{self.src_w}x3 uint8, got {rgb.shape} {rgb.dtype}")
        if out is None:
            out = np.empty((self.dst_h, self.dst_w, 3), np.uint8)
        elif out.shape != (self.dst_h, self.dst_w, 3) or out.dtype != np.uint8:
            raise ValueError(f"out must be {self.dst_h}x{self.dst_w}x3 uint8, got {out.shape} {out.dtype}")
        content = self._resize(rgb)
        out[...] = PAD_RGB
        out[self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w] = content
        return out

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        """Source -> content size. While it is >= 2x too large (and even), halve it first with INTER_AREA's exact
        2x2 mean: the 2x nearest upscale of an image then halves back to the image itself and follows the same
        path, so both give identical network input whatever the final factor (one-step INTER_AREA rounds
        differently at 2x and 4x). The halving also makes large shrinks (4k -> 640) cheaper."""
        h, w = rgb.shape[:2]
        while h % 2 == 0 and w % 2 == 0 and 2 * self.new_h <= h and 2 * self.new_w <= w:
            h, w = h // 2, w // 2
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        if (h, w) == (self.new_h, self.new_w):
            return rgb
        shrink = self.new_w < w or self.new_h < h
        return cv2.resize(rgb, (self.new_w, self.new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def content(self, dense: np.ndarray) -> np.ndarray:
        """A network-space map (dst_h x dst_w [x C], any dtype: class ids, depth) -> its content region, a view.

        A map at a coarser resolution (a head with output_stride k: dst/k) gets the proportionally scaled box, its
        edges rounded half up, so the crop keeps the content's aspect ratio within one cell."""
        if dense.ndim < 2:
            raise ValueError(f"expected a 2-D map (H x W [x C]), got shape {dense.shape}")
        h, w = dense.shape[:2]
        if (h, w) == (self.dst_h, self.dst_w):
            return dense[self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w]
        fx, fy = w / self.dst_w, h / self.dst_h
        x0, y0 = _round_half_up(self.pad_x * fx), _round_half_up(self.pad_y * fy)
        x1 = min(max(_round_half_up((self.pad_x + self.new_w) * fx), x0 + 1), w)
        y1 = min(max(_round_half_up((self.pad_y + self.new_h) * fy), y0 + 1), h)
        return dense[y0:y1, x0:x1]

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Nx4 (x1, y1, x2, y2) in dst pixels -> float32 source pixels, clipped to the source image; a new array.

        Uses the exact per-axis factors new/src (what the resize did); they differ from `scale` by < 1 px."""
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            return np.zeros((0, 4), np.float32)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"expected an Nx4 array of boxes, got shape {b.shape}")
        sx, sy = self.new_w / self.src_w, self.new_h / self.src_h
        out = np.empty(b.shape, np.float32)
        out[:, 0::2] = np.clip((b[:, 0::2] - self.pad_x) / sx, 0, self.src_w)
        out[:, 1::2] = np.clip((b[:, 1::2] - self.pad_y) / sy, 0, self.src_h)
        return out

    def intrinsics_to_content(self, fx: float, fy: float, cx: float, cy: float) -> tuple[float, float, float, float]:
        """Pinhole intrinsics of the source image -> those of the content region (new_w x new_h) image, pixel-centre
        convention, with the exact per-axis factors new/src (rounding makes them differ from `scale` by < 1 px)."""
        sx, sy = self.new_w / self.src_w, self.new_h / self.src_h
        return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def make_batch(images: Sequence[np.ndarray], width: int, height: int) -> tuple[np.ndarray, list[Letterbox]]:
    """RGB images of any sizes -> one contiguous uint8 batch [B, height, width, 3] (the network's input) and each
    image's Letterbox. Frames from several cameras of different sizes go into one pass this way."""
    batch = np.empty((len(images), height, width, 3), np.uint8)
    boxes = []
    for i, rgb in enumerate(images):
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image {i}: expected HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
        lb = Letterbox.fit(rgb.shape[1], rgb.shape[0], width, height)
        lb.apply(rgb, out=batch[i])
        boxes.append(lb)
    return batch, boxes
