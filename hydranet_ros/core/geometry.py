"""Camera geometry shared by the runtime and training: the letterbox into the network input, pinhole intrinsics
with one principal-point convention, and the depth head's canonical <-> metric conversion.

Conventions: pixel indices address pixel centres (as sensor_msgs/CameraInfo K and OpenCV's resize), so resizing
an image by (sx, sy) maps a principal point c to (c + 0.5) * s - 0.5; a box edge x (continuous, pixel i covering
[i, i+1)) maps to x * s.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hydranet_ros.core.tasks import DepthOptions

PAD_RGB: tuple[int, int, int] = (124, 116, 104)  # ImageNet mean: normalises to ~0, so padding looks like "nothing"
# Canonical depth within this fraction of the head's cap counts as "at the cap": the sigmoid never quite reaches it.
CAP_FRACTION = 0.995


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, pixel-centre convention (as sensor_msgs/CameraInfo K)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def scaled(self, sx: float, sy: float) -> Intrinsics:
        """The same camera seen at a resolution scaled by (sx, sy)."""
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5)

    def resized(self, size: tuple[int, int], to: tuple[int, int], max_aspect_change: float = 0.01) -> Intrinsics:
        """Calibrated at `size` (width, height), the camera's image resized to `to`. ValueError when the aspect
        ratio differs by more than `max_aspect_change`: that is a crop or another camera, and a scaled K would be
        silently wrong."""
        (w0, h0), (w, h) = size, to
        sx, sy = w / w0, h / h0
        if abs(sx / sy - 1.0) > max_aspect_change:
            raise ValueError(f"intrinsics are for {w0}x{h0} images but this image is {w}x{h}, another aspect "
                             "ratio (a crop, or another camera?)")
        return self.scaled(sx, sy)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.fx, self.fy, self.cx, self.cy)

    @classmethod
    def guess(cls, width: int, height: int, fx: float) -> Intrinsics:
        """No calibration: focal length `fx` (square pixels), principal point at the centre."""
        return cls(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


@dataclass(frozen=True)
class Calibration:
    """What is known of one camera's intrinsics: K calibrated at `size` (width, height; a camera_info), else a
    focal length to assume (`fallback_fx` > 0, principal point at the centre), else nothing."""

    k: Intrinsics | None = None
    size: tuple[int, int] | None = None  # None: k holds at any image size
    fallback_fx: float = 0.0

    def at(self, width: int, height: int, canonical_fx: float | None) -> tuple[Intrinsics, str]:
        """The intrinsics of a `width` x `height` frame and where they came from: "camera_info", "fallback_fx", or
        without either, the model's canonical focal length `canonical_fx` (at this frame's resolution): "canonical"
        (metric depth is then off by the ratio of the real focal length to it), or "not needed" (no depth head)."""
        if self.k is not None:
            if self.size is None or 0 in self.size:
                return self.k, "camera_info"
            return self.k.scaled(width / self.size[0], height / self.size[1]), "camera_info"
        if self.fallback_fx > 0:
            return Intrinsics.guess(width, height, self.fallback_fx), "fallback_fx"
        fx = canonical_fx or DepthOptions.canonical_fx
        return Intrinsics.guess(width, height, fx), "canonical" if canonical_fx else "not needed"


def metric_scale(fx: float, canonical_fx: float) -> float:
    """Metres per canonical depth unit for a camera of focal length `fx` (pixels, in the image the network saw).

    The depth head predicts the depth a camera of focal length `canonical_fx` would see; an object of a given size
    looks larger under a longer focal length, so real depth = canonical * fx / canonical_fx."""
    if not canonical_fx or canonical_fx <= 0:
        raise ValueError("the model's depth head has no canonical focal length")
    return fx / canonical_fx


def canonical_to_metric(canonical: np.ndarray, fx: float, canonical_fx: float, max_depth: float) -> np.ndarray:
    """Canonical depth -> float32 metres for this camera; +inf ("beyond range", REP 118) where the head is at its
    cap `max_depth`, not a made-up distance."""
    depth = canonical.astype(np.float32) * np.float32(metric_scale(fx, canonical_fx))
    depth[canonical >= CAP_FRACTION * max_depth] = np.inf
    return depth


def metric_to_canonical(depth: np.ndarray, fx: float, canonical_fx: float, max_depth: float) -> np.ndarray:
    """A depth label in metres (0 = no reading) -> the canonical depth the head must predict, capped at
    `max_depth`; 0 stays 0."""
    scale = metric_scale(fx, canonical_fx)
    return np.where(depth > 0, np.minimum(depth / scale, max_depth), 0.0).astype(np.float32)


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
