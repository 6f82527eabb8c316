"""Augmentations that keep every label consistent with the pixels: one geometric transform per sample (scale,
crop or pad, optional horizontal flip, a small roll) for the image, its maps, boxes and intrinsics, plus colour
jitter. The photometric weather lives in `photometric`.

The base scale is the runtime's letterbox scale into the network input, so a training crop has the same pixels per
object as the node will feed the network; the random scale jitters around it. Without augmentation (validation)
the geometry is exactly the node's letterbox.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from hydranet_ros.train.photometric import Weather

MIN_BOX_PX = 2.0  # boxes narrower or lower than this after the transform are dropped (CenterNet skips < 1 cell)
MIN_VISIBLE = 0.4  # a box cut by the crop to less than this fraction of its area becomes a don't-care region


@dataclass(frozen=True)
class Focus:
    """Crops that keep a box of one of `classes` in view, with probability `p` per sample."""

    classes: tuple[str, ...]
    p: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes or not all(isinstance(c, str) and c for c in self.classes):
            raise ValueError(f"augment focus classes must be a non-empty list of class names, got {self.classes}")
        if not 0 < self.p <= 1:
            raise ValueError(f"augment focus p must be in (0, 1], got {self.p}")


@dataclass(frozen=True)
class Augment:
    """Random augmentations for training. scale: multiplier range around the letterbox scale (log-uniform);
    roll_deg: the camera rolled about its optical axis by up to this many degrees; weather: probabilities of the
    photometric conditions of `photometric.Weather` (night, fog, glare, rain, blur, noise); focus: rare classes that
    a random crop would often cut away ({classes: [...], p: P}): with probability P the crop is placed so that one
    box of those classes, drawn at random, lies inside it (frames without such a box crop at random)."""

    scale: tuple[float, float] = (0.75, 1.33)
    flip: bool = True
    colour: float = 0.3  # strength of brightness / contrast / saturation jitter (0 = off)
    hue_deg: float = 5.0
    roll_deg: float = 0.0
    weather: Weather = Weather()
    focus: Focus | None = None

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"augment scale must be 0 < min <= max, got {self.scale}")
        if not 0 <= self.colour < 1:
            raise ValueError(f"augment colour must be in [0, 1), got {self.colour}")
        if not 0 <= self.roll_deg <= 15:
            raise ValueError(f"augment roll_deg must be in [0, 15], got {self.roll_deg}")
        if isinstance(self.weather, dict):
            object.__setattr__(self, "weather", Weather(**self.weather))
        if isinstance(self.focus, dict):
            object.__setattr__(self, "focus", Focus(**self.focus))

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Augment:
        """From a recipe's `data.augment` (YAML lists become tuples); TypeError / ValueError say what is wrong."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})


@dataclass(frozen=True)
class Geometry:
    """Source pixels -> output pixels: x' = scale * x + (dx, dy), rolled by `roll` radians about the output's centre,
    then mirrored in an output `width` wide if flip.

    A roll about any point is a camera rolled about its optical axis (square pixels): depth along the axis is
    unchanged, fx and fy scale, and the principal point moves with the pixels (`intrinsics`)."""

    scale: float
    dx: float
    dy: float
    width: int
    height: int
    flip: bool
    roll: float = 0.0

    def affine(self) -> np.ndarray:
        """The 2x3 matrix of the mapping before the mirror."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        rot = np.array([[c, -s], [s, c]])
        centre = np.array([self.width / 2, self.height / 2])
        t = rot @ (np.array([self.dx, self.dy]) - centre) + centre
        return np.concatenate([self.scale * rot, t[:, None]], axis=1)

    def points(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.affine()
        x2 = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        y2 = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        return (self.width - x2 if self.flip else x2), y2

    def points_x(self, x: np.ndarray) -> np.ndarray:
        """x' of points; only without a roll, where x' does not depend on y (else use `points`)."""
        if self.roll:
            raise ValueError("points_x of a rolled geometry: use points(x, y)")
        return self.points(x, np.zeros_like(x))[0]

    def points_y(self, y: np.ndarray) -> np.ndarray:
        if self.roll:
            raise ValueError("points_y of a rolled geometry: use points(x, y)")
        return self.points(np.zeros_like(y), y)[1]

    def intrinsics(self, k: Sequence[float]) -> tuple[float, float, float, float]:
        fx, fy, cx, cy = k
        m = self.affine()
        cx2 = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
        cy2 = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
        # Pixel centres: index i covers [i, i+1), so continuous x mirrors to W - x and the centre index i to W-1-i.
        if self.flip:
            cx2 = self.width - 1 - cx2
        return fx * self.scale, fy * self.scale, float(cx2), float(cy2)

    def warp(self, img: np.ndarray, nearest: bool, fill: float | tuple[int, ...]) -> np.ndarray:
        """Resample `img` into the output frame; outside the source takes `fill`."""
        m = self.affine()
        # Nearest for class ids and sparse depth (no blending); area when shrinking an image, else bilinear.
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        if interp == cv2.INTER_AREA:
            # warpAffine has no area mode: shrink with resize first, then place (same mapping up to rounding).
            size = (max(1, round(img.shape[1] * self.scale)), max(1, round(img.shape[0] * self.scale)))
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            sx = small.shape[1] / img.shape[1]
            sy = small.shape[0] / img.shape[0]
            m = np.concatenate([m[:, :2] @ np.diag([1 / sx, 1 / sy]), m[:, 2:]], axis=1)
            img, interp = small, cv2.INTER_LINEAR
        out = cv2.warpAffine(img, m, (self.width, self.height), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=fill)
        return out[:, ::-1].copy() if self.flip else out


def plan_geometry(src_w: int, src_h: int, net_w: int, net_h: int, out_w: int, out_h: int,
                  augment: Augment | None, rng: random.Random,
                  focus: tuple[float, float, float, float] | None = None) -> Geometry:
    """The letterbox scale into net_w x net_h (jittered when augmenting), then a crop/pad window out_w x out_h.

    focus: a box (source pixels) that a crop keeps inside the window where it fits (else the crop centres on it)."""
    base = min(net_w / src_w, net_h / src_h)
    if augment is None:
        scale = base
    else:
        lo, hi = augment.scale
        scale = base * math.exp(rng.uniform(math.log(lo), math.log(hi)))
    new_w, new_h = src_w * scale, src_h * scale

    def offset(content: float, window: int, keep: tuple[float, float] | None) -> float:
        if augment is None:
            return (window - content) / 2  # centred, like the runtime's letterbox
        if content >= window:
            lo, hi = 0.0, content - window
            if keep is not None:  # the window [u, u + window] must hold [a, b]
                a, b = keep[0] * scale, keep[1] * scale
                if max(lo, b - window) <= min(hi, a):
                    lo, hi = max(lo, b - window), min(hi, a)
                else:
                    lo = hi = min(max((a + b - window) / 2, lo), hi)
            return -rng.uniform(lo, hi)  # random crop
        return rng.uniform(0, window - content)  # random placement inside the padding

    if augment is None:
        # The runtime's letterbox (core.geometry.Letterbox.fit): integer content size and padding.
        new_w, new_h = min(max(round(src_w * scale), 1), out_w), min(max(round(src_h * scale), 1), out_h)
        return Geometry(scale, (out_w - new_w) // 2, (out_h - new_h) // 2, out_w, out_h, False)
    flip = augment.flip and rng.random() < 0.5
    roll = math.radians(rng.uniform(-augment.roll_deg, augment.roll_deg)) if augment.roll_deg else 0.0
    keep_x = None if focus is None else (focus[0], focus[2])
    keep_y = None if focus is None else (focus[1], focus[3])
    return Geometry(scale, offset(new_w, out_w, keep_x), offset(new_h, out_h, keep_y), out_w, out_h, flip, roll)


def colour_jitter(rgb: np.ndarray, augment: Augment, rng: random.Random) -> np.ndarray:
    """Brightness, contrast and saturation jitter plus a small hue shift; labels are unaffected."""
    s = augment.colour
    if s <= 0 and augment.hue_deg <= 0:
        return rgb
    img = rgb.astype(np.float32)
    img *= rng.uniform(1 - s, 1 + s)  # brightness
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - s, 1 + s) + mean  # contrast
    grey = img.mean(axis=2, keepdims=True)
    img = (img - grey) * rng.uniform(1 - s, 1 + s) + grey  # saturation
    img = np.clip(img, 0, 255).astype(np.uint8)
    if augment.hue_deg > 0:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        shift = round(rng.uniform(-augment.hue_deg, augment.hue_deg) / 2)  # OpenCV hue is degrees / 2, mod 180
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img


def transform_boxes(boxes: np.ndarray, ignore: np.ndarray, geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 5] and ignore regions [M, 4] into the output frame; boxes cut too much by the crop become ignore."""

    def move(b: np.ndarray) -> np.ndarray:
        # All four corners: under a roll the moved box is the one enclosing the rotated rectangle.
        xs, ys = geo.points(b[:, [0, 2, 2, 0]], b[:, [1, 1, 3, 3]])
        return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)

    moved = move(boxes[:, :4]) if len(boxes) else np.zeros((0, 4), np.float32)
    clipped = moved.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, geo.width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, geo.height)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    big = ((clipped[:, 2] - clipped[:, 0]) >= MIN_BOX_PX) & ((clipped[:, 3] - clipped[:, 1]) >= MIN_BOX_PX)
    keep = big & (visible >= MIN_VISIBLE * np.maximum(area, 1e-6))
    partly = (visible > 0) & ~keep
    out_boxes = np.concatenate([clipped[keep], boxes[keep, 4:5]], axis=1).astype(np.float32)
    ign = move(ignore) if len(ignore) else np.zeros((0, 4), np.float32)
    ign = np.concatenate([ign, clipped[partly]], axis=0).astype(np.float32)
    return out_boxes.reshape(-1, 5), ign.reshape(-1, 4)
