"""Line charts as PNG with OpenCV alone (no plotting dependency): one panel per group of series, shared step axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # matplotlib's tab10, as RGB
PANEL_W, PANEL_H = 640, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 170, 34, 36


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float, step: float = 0.0) -> str:
    """Enough digits to tell neighbouring ticks apart (a weight axis may span 0.996..1.004)."""
    if abs(v) >= 1e4:
        return f"{v:.2e}"
    digits = max(0, -math.floor(math.log10(step))) if 0 < step < 1 else 0
    return f"{v:.{min(digits, 6)}f}" if step else f"{v:.3g}"


def panel(title: str, series: dict[str, tuple[Sequence[float], Sequence[float]]], log_y: bool = False) -> np.ndarray:
    """One chart (RGB uint8): `series` maps a label to (steps, values); non-finite values are skipped."""
    img = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    cv2.putText(img, title, (MARGIN_L, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    pts = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items()}
    pts = {k: (x[np.isfinite(y) & ((y > 0) if log_y else True)], y[np.isfinite(y) & ((y > 0) if log_y else True)])
           for k, (x, y) in pts.items()}
    pts = {k: v for k, v in pts.items() if len(v[0])}
    x0, y0, x1, y1 = MARGIN_L, MARGIN_T, PANEL_W - MARGIN_R, PANEL_H - MARGIN_B
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    if not pts:
        cv2.putText(img, "no data yet", (x0 + 10, (y0 + y1) // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (90, 90, 90), 1)
        return img
    xs = np.concatenate([x for x, _ in pts.values()])
    ys = np.concatenate([y for _, y in pts.values()])
    ys_t = np.log10(ys) if log_y else ys
    xlo, xhi = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    ylo, yhi = float(ys_t.min()), float(ys_t.max())
    if yhi - ylo < 1e-9:
        ylo, yhi = ylo - 0.5, yhi + 0.5
    pad = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = x0 + (x - xlo) / (xhi - xlo) * (x1 - x0)
        py = y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)
        return np.stack([px, py], 1).round().astype(np.int32)

    yt = _ticks(ylo, yhi)
    for t in yt:
        (_, py), = to_px(np.array([xlo]), np.array([t]))
        cv2.line(img, (x0, py), (x1, py), (230, 230, 230), 1)
        label = f"{10**t:.3g}" if log_y else _fmt(t, yt[1] - yt[0] if len(yt) > 1 else 0.0)
        cv2.putText(img, label, (4, py + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for t in _ticks(xlo, xhi):
        (px, _), = to_px(np.array([t]), np.array([ylo]))
        label = f"{t:.0f}" if t == int(t) else _fmt(t)
        cv2.putText(img, label, (px - 10, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, "step", (x1 - 30, y1 + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for n, (label, (x, y)) in enumerate(pts.items()):
        colour = PALETTE[n % len(PALETTE)]
        p = to_px(x, np.log10(y) if log_y else y)
        if len(p) == 1:
            cv2.circle(img, tuple(int(v) for v in p[0]), 3, colour, -1, cv2.LINE_AA)
        else:
            cv2.polylines(img, [p], False, colour, 2, cv2.LINE_AA)
        ly = y0 + 14 + 18 * n
        cv2.line(img, (x1 + 10, ly - 4), (x1 + 30, ly - 4), colour, 2)
        cv2.putText(img, label[:22], (x1 + 35, ly), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the raw per-step loss of a small batch is too noisy to read)."""
    v = np.asarray(values, float)
    if window <= 1 or len(v) < 2:
        return v
    c = np.cumsum(np.insert(np.nan_to_num(v), 0, 0.0))
    idx = np.arange(len(v))
    lo = np.maximum(0, idx - window + 1)
    return (c[idx + 1] - c[lo]) / (idx + 1 - lo)


def save_figure(path: str | Path, panels: list[np.ndarray]) -> Path:
    """Stack panels vertically and write a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(panels, axis=0), cv2.COLOR_RGB2BGR))
    return path
