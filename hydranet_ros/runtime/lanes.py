"""Lane lines as polylines on the ground, in base_frame (numpy only).

The lane-lines head marks painted pixels; with the camera's mounting each pixel's ray meets the road plane at a
point (x forward, y left). Lines are found there the way classic bird's-eye lane finders do: the lateral
positions where near points pile up start a line each, and a window walks forward along it in steps of `step_m`,
following the line's points (dashes are bridged: an empty step keeps the line's current direction, for up to
`max_gap_m`). Each line is
fitted with a quadratic y(x) (least squares, refitted without the points > 3 sigma off), sampled every metre over
its extent, with a confidence: the share of its extent that has points under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.mounting import Mounting


@dataclass(frozen=True)
class LaneOptions:
    near_m: float = 3.0
    far_m: float = 40.0
    start_m: float = 15.0  # lines start from the points nearer than this
    bin_m: float = 0.2  # of the lateral histogram that finds the lines' starts
    min_gap_m: float = 1.2  # two starts closer than this are one line
    window_m: float = 0.6  # half-width of the window that follows a line
    step_m: float = 2.0
    max_gap_m: float = 13.0  # dashed lines leave 9 m (US freeways) to 12 m gaps
    min_points: int = 25


@dataclass(frozen=True)
class LaneLine:
    coefficients: tuple[float, float, float]  # y = c0 + c1 x + c2 x^2, metres in base_frame
    x_min: float
    x_max: float
    confidence: float  # share of the extent's steps with points under the line
    points: int

    def y(self, x: np.ndarray) -> np.ndarray:
        c0, c1, c2 = self.coefficients
        return c0 + c1 * x + c2 * x * x

    def polyline(self, spacing_m: float = 1.0) -> np.ndarray:
        """[N, 2] (x, y) every `spacing_m` over the line's extent (both ends included)."""
        n = max(2, int(np.ceil((self.x_max - self.x_min) / spacing_m)) + 1)
        x = np.linspace(self.x_min, self.x_max, n)
        return np.stack([x, self.y(x)], axis=1)


def ground_points(mask: np.ndarray, k: Intrinsics, mounting: Mounting) -> np.ndarray:
    """[N, 2] (x, y) in base_frame of the mask's pixels whose rays meet the road."""
    v, u = np.nonzero(mask)
    return mounting.ground_points(k, u, v)


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    deg = 2 if np.ptp(x) > 8.0 else 1  # a short piece cannot tell a curve from noise
    c = np.polyfit(x, y, deg)
    resid = y - np.polyval(c, x)
    keep = np.abs(resid) <= max(3 * float(np.std(resid)), 0.1)
    if keep.sum() > deg + 1:
        c = np.polyfit(x[keep], y[keep], deg)
    return np.pad(c[::-1], (0, 3 - len(c)))  # c0, c1, c2


def find_lines(points: np.ndarray, opts: LaneOptions | None = None) -> list[LaneLine]:
    """Lane lines from ground points [N, 2] (x forward, y left), nearest first by lateral offset."""
    o = opts or LaneOptions()
    pts = points[(points[:, 0] >= o.near_m) & (points[:, 0] <= o.far_m)]
    if len(pts) < o.min_points:
        return []
    near = pts[pts[:, 0] <= o.start_m]
    if len(near) < o.min_points:
        return []
    edges = np.arange(near[:, 1].min(), near[:, 1].max() + 2 * o.bin_m, o.bin_m)
    hist, _ = np.histogram(near[:, 1], edges)
    hist = hist + np.r_[0, hist[:-1]] + np.r_[hist[1:], 0]  # a line's pixels straddle bins
    starts: list[float] = []
    for i in np.argsort(hist)[::-1]:
        if hist[i] < o.min_points / 2:
            break
        centre = (edges[i] + edges[i + 1]) / 2
        if all(abs(centre - s) >= o.min_gap_m for s in starts):
            starts.append(centre)
    lines = []
    taken = np.zeros(len(pts), bool)
    for y0 in starts:
        y, slope = y0, 0.0
        mine = np.zeros(len(pts), bool)
        hits, missed = 0, 0
        for x0 in np.arange(o.near_m, o.far_m, o.step_m):
            x_mid = x0 + o.step_m / 2
            guess = y + slope * (x_mid - (x0 - o.step_m / 2))
            inside = ((pts[:, 0] >= x0) & (pts[:, 0] < x0 + o.step_m) & (np.abs(pts[:, 1] - guess) <= o.window_m)
                      & ~taken)
            if inside.sum() >= 3:
                hits += 1
                new_y = float(np.median(pts[inside, 1]))
                slope = 0.5 * slope + 0.5 * (new_y - y) / o.step_m if hits > 1 else 0.0
                y = new_y
                mine |= inside
                missed = 0
            else:
                y = guess
                missed += 1
            if hits and missed * o.step_m > o.max_gap_m:  # lost: no paint for longer than a dashed line's gap
                break
        if mine.sum() < o.min_points:
            continue
        x, yy = pts[mine, 0], pts[mine, 1]
        x_min, x_max = float(x.min()), float(x.max())
        covered = np.unique(((x - x_min) // o.step_m).astype(int)).size
        total = max(1, int(np.ceil((x_max - x_min) / o.step_m)))
        lines.append(LaneLine(tuple(float(c) for c in _fit(x, yy)), x_min, x_max, min(1.0, covered / total),
                              int(mine.sum())))
        taken |= mine
    return sorted(lines, key=lambda line: abs(float(line.y(np.array(line.x_min)))))


def lane_lines(mask: np.ndarray, k: Intrinsics, mounting: Mounting, opts: LaneOptions | None = None
               ) -> list[LaneLine]:
    """The lane-lines head's mask (bool, at k's resolution) -> polylines on the ground in base_frame."""
    return find_lines(ground_points(mask, k, mounting), opts)
