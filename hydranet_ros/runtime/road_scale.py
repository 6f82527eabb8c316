"""Depth anchored to the road: the scale recovery from camera height that monocular odometry uses.

A monocular network's metric scale drifts with the camera's mounting and the scene. The mounting fixes the depth of
every road pixel in the near range, where a flat road holds (core/mounting.py `ground_depth`); the drivable-area
head says which pixels are road. Per frame, the scale is the robust median of ground depth / predicted depth over
those pixels (outliers beyond 3 MADs of the log ratio dropped), bounded, and smoothed over time in log space. With
too few road pixels, or an estimate out of bounds or far from the recent ones, the frame keeps the network's scale
(or the last good one while it is fresh) and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.mounting import Mounting
from hydranet_ros.runtime.postprocess import FrameResult

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class RoadScaleOptions:
    near_m: float = 4.0  # road closer than this is often under the bonnet or cut by the image's edge
    far_m: float = 30.0  # beyond this a road's grade and the pitch's error grow too large for a flat plane
    min_pixels: int = 150  # fewer road pixels in range: no estimate
    min_scale: float = 0.25  # an estimate outside [min, max] is a wrong mask or a wrong mounting, not a scale
    max_scale: float = 4.0
    smoothing: float = 0.3  # weight of a new frame's log scale in the running estimate (1: no smoothing)
    max_jump: float = 0.35  # |log(new / running)| above this is an outlier frame (about x1.4)
    hold_frames: int = 15  # the last good scale is kept this many frames without an estimate, then 1

    def __post_init__(self) -> None:
        if not 0 < self.near_m < self.far_m:
            raise ValueError(f"need 0 < near_m < far_m, got {self.near_m}, {self.far_m}")
        if not 0 < self.min_scale < 1 < self.max_scale:
            raise ValueError(f"need 0 < min_scale < 1 < max_scale, got {self.min_scale}, {self.max_scale}")
        if not 0 < self.smoothing <= 1 or self.min_pixels < 1 or self.max_jump <= 0 or self.hold_frames < 0:
            raise ValueError("need 0 < smoothing <= 1, min_pixels >= 1, max_jump > 0, hold_frames >= 0")


@dataclass(frozen=True)
class ScaleEstimate:
    scale: float  # what the frame's depth is multiplied by
    source: str  # "road" (this frame's road), "held" (a recent frame's), "network" (1: no road estimate)
    raw: float | None  # this frame's own estimate, before smoothing (None: none)
    pixels: int  # road pixels used
    reason: str = ""  # why not "road"


def frame_scale(depth: np.ndarray, road: np.ndarray, ground: np.ndarray, opts: RoadScaleOptions
                ) -> tuple[float | None, int, str]:
    """One frame's scale (ground / predicted over road pixels in range), the pixels used, and why there is none."""
    # The mask's rim holds the road's edge, kerbs and the bottoms of cars: only its interior is trusted.
    inner = cv2.erode(road.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    sel = inner & np.isfinite(depth) & (depth > 0) & (ground >= opts.near_m) & (ground <= opts.far_m)
    n = int(sel.sum())
    if n < opts.min_pixels:
        return None, n, f"{n} road pixels between {opts.near_m:g} and {opts.far_m:g} m (need {opts.min_pixels})"
    log_ratio = np.log(ground[sel].astype(np.float64)) - np.log(depth[sel].astype(np.float64))
    med = float(np.median(log_ratio))
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(log_ratio - med))), 0.02)
    kept = log_ratio[np.abs(log_ratio - med) <= 3 * spread]
    scale = math.exp(float(np.median(kept)))
    if not opts.min_scale <= scale <= opts.max_scale:
        return None, len(kept), f"road scale {scale:.2f} outside [{opts.min_scale:g}, {opts.max_scale:g}]"
    return scale, len(kept), ""


class RoadScale:
    """The running road scale of one camera."""

    def __init__(self, opts: RoadScaleOptions | None = None) -> None:
        self.opts = opts or RoadScaleOptions()
        self._log: float | None = None  # running log scale
        self._missed = 0  # frames since the last accepted estimate

    def update(self, depth: np.ndarray, road: np.ndarray, ground: np.ndarray) -> ScaleEstimate:
        raw, n, reason = frame_scale(depth, road, ground, self.opts)
        if raw is not None and self._log is not None and abs(math.log(raw) - self._log) > self.opts.max_jump:
            reason = f"road scale {raw:.2f} jumps from {math.exp(self._log):.2f}: an outlier frame"
            # A jump that persists is a change, not an outlier: after hold_frames misses the running value resets.
        elif raw is not None:
            a = self.opts.smoothing
            self._log = math.log(raw) if self._log is None else (1 - a) * self._log + a * math.log(raw)
            self._missed = 0
            return ScaleEstimate(math.exp(self._log), "road", raw, n)
        self._missed += 1
        if self._log is not None and self._missed <= self.opts.hold_frames:
            return ScaleEstimate(math.exp(self._log), "held", raw, n, reason)
        self._log = None
        return ScaleEstimate(1.0, "network", raw, n, reason)


class DepthAnchor:
    """One camera's depth anchoring: its running road scale, and the road's depth under each pixel for its current
    intrinsics and mounting (computed once per change)."""

    def __init__(self, opts: RoadScaleOptions | None = None) -> None:
        self.state = RoadScale(opts)
        self._key: tuple | None = None
        self._ground: np.ndarray | None = None

    def ground(self, k: Intrinsics, size: tuple[int, int], mounting: Mounting) -> np.ndarray:
        key = (k.as_tuple(), size, mounting.rotation.tobytes(), mounting.translation.tobytes())
        if key != self._key:
            self._key, self._ground = key, mounting.ground_depth(k, size)
        assert self._ground is not None
        return self._ground

    def apply(self, r: FrameResult, mounting: Mounting, road_head: str) -> ScaleEstimate:
        """Scale every depth head of `r` (and its boxes' distances) by the road's scale; the estimate says which
        scale was used and why."""
        mask = r.masks.get(road_head)
        if r.depth is None or mask is None:
            missing = "no depth head" if r.depth is None else f"no segmentation head {road_head!r} (road_head)"
            return ScaleEstimate(1.0, "network", None, 0, f"the model has {missing}")
        est = self.state.update(r.depth, mask > 0, self.ground(r.dense_intrinsics, r.dense_size, mounting))
        if est.scale != 1.0:
            for name in r.depths:
                r.depths[name] = r.depths[name] * np.float32(est.scale)
            for boxes in r.detections.values():
                boxes[:] = [d if d.distance is None else replace(d, distance=d.distance * est.scale) for d in boxes]
        return est
