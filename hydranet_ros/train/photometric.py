"""Photometric augmentation for the conditions a car meets and the training frames rarely show: night, fog, low sun,
rain, motion blur, sensor noise. Each changes pixel values only, never where things are, so every label (masks,
depth, boxes, intrinsics) stays valid as it is.

The effects are crude physical models, chosen to cover what the real frames of ../shared/assets/real_misc show:
- night: the exposure falls to 5-35 % with a gamma that crushes the shadows, the white balance shifts to sodium or
  LED light, read noise rises, and bright light sources (head- and tail-lights, street lights) bloom;
- fog: Koschmieder's law, I = J t + A (1 - t), with a transmission t that falls towards the top of the frame (far
  things are high up in a road image) and a grey-white airlight A;
- glare: a low sun in the upper part of the frame, a veiling glow that lifts the blacks, and lens streaks;
- rain: slanted streaks, water drops on the windscreen (blurred discs), a darker, flatter image;
- blur: motion blur along a random direction or defocus; noise: Gaussian sensor noise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

import cv2
import numpy as np

CONDITIONS = ("night", "fog", "glare", "rain", "blur", "noise")


@dataclass(frozen=True)
class Weather:
    """Probability of each condition per training crop (independent draws; 0 = off)."""

    night: float = 0.0
    fog: float = 0.0
    glare: float = 0.0
    rain: float = 0.0
    blur: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            p = getattr(self, f.name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ValueError(f"augment weather {f.name}: a probability in [0, 1], got {p!r}")

    def draw(self, rng: random.Random) -> list[str]:
        """The conditions of one training crop (most crops get none: nothing to compute for them)."""
        return [c for c in CONDITIONS if getattr(self, c) > 0 and rng.random() < getattr(self, c)]


def render(rgb: np.ndarray, conditions: list[str], rng: random.Random, valid: np.ndarray | None = None) -> np.ndarray:
    """rgb uint8 [H, W, 3] under `conditions`, in order; pixels where `valid` is 0 (letterbox padding, which the
    node fills with a constant) are left as they are."""
    if not conditions:
        return rgb
    img = rgb.astype(np.float32) / 255.0
    for condition in conditions:
        img = EFFECTS[condition](img, rng)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if valid is not None and not valid.all():
        out = np.where(valid[..., None] > 0, out, rgb)
    return out


def _seed(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(32))


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur, computed at a quarter of the resolution (halos need no detail)."""
    h, w = mask.shape[:2]
    small = cv2.resize(mask, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), max(0.5, sigma / 4)), (w, h), interpolation=cv2.INTER_LINEAR)


def night(img: np.ndarray, rng: random.Random) -> np.ndarray:
    h, w = img.shape[:2]
    # Bright sources keep their brightness while everything else falls: find them before darkening.
    lights = np.clip((img.max(axis=2) - 0.85) / 0.15, 0, 1)
    exposure = rng.uniform(0.12, 0.5)
    gamma = rng.uniform(1.2, 1.9)
    tint = np.array([1.0, rng.uniform(0.75, 0.95), rng.uniform(0.45, 0.8)], np.float32)  # sodium / warm LED
    if rng.random() < 0.4:
        tint = np.array([rng.uniform(0.75, 0.9), rng.uniform(0.85, 1.0), 1.0], np.float32)  # cold LED / moonlight
    # The own headlights light the road ahead: brighter towards the bottom centre.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    beam = 1.0 + rng.uniform(0.5, 2.5) * np.exp(-(((xx - w / 2) / (0.35 * w)) ** 2 + ((yy - h) / (0.45 * h)) ** 2))
    out = np.power(img, gamma) * exposure * tint * beam[..., None]
    # A few extra lamps and lights (points in the upper two thirds; tail-lights red, head-lights white).
    n = rng.randint(0, 6)
    if n:
        glow = np.zeros((h, w), np.float32)
        colours = []
        for _ in range(n):
            x, y = rng.uniform(0, w), rng.uniform(0.15 * h, 0.7 * h)
            r = rng.uniform(1.5, 6.0) * max(h, w) / 400
            cv2.circle(glow, (int(x), int(y)), max(1, int(r)), 1.0, -1)
            colours.append(rng.choice([(1.0, 0.2, 0.1), (1.0, 0.9, 0.7), (1.0, 0.7, 0.3)]))
        colour = np.array(np.mean(colours, axis=0), np.float32)
        out = out + (glow * 0.9 + _soft(glow, max(h, w) / 120) * 0.6)[..., None] * colour
    out = out + (lights * 0.8 + _soft(lights, max(h, w) / 200) * 0.5)[..., None] * img
    noise = _seed(rng).normal(0.0, rng.uniform(0.005, 0.03), out.shape).astype(np.float32)
    return out + noise


def fog(img: np.ndarray, rng: random.Random) -> np.ndarray:
    h = img.shape[0]
    density = rng.uniform(0.6, 2.5)
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None, None]  # 1 at the top (far), 0 at the bottom (near)
    t = np.exp(-density * (0.25 + rows))  # transmission
    airlight = rng.uniform(0.65, 0.95) * np.array([1.0, 1.0, rng.uniform(0.95, 1.05)], np.float32)
    out = img * t + airlight * (1 - t)
    if rng.random() < 0.5:  # fog scatters: the image softens too
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return out


def glare(img: np.ndarray, rng: random.Random) -> np.ndarray:
    h, w = img.shape[:2]
    x, y = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.0, 0.45 * h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx - x, yy - y) / max(h, w)
    strength = rng.uniform(0.5, 1.2)
    sun = strength * (np.exp(-(d / 0.03) ** 2) + 0.5 * np.exp(-d / rng.uniform(0.15, 0.4)))
    streaks = np.zeros((h, w), np.float32)
    for _ in range(rng.randint(2, 6)):
        a = rng.uniform(0, math.pi)
        length = max(h, w) * rng.uniform(0.3, 0.8)
        p1 = (int(x - length * math.cos(a)), int(y - length * math.sin(a)))
        p2 = (int(x + length * math.cos(a)), int(y + length * math.sin(a)))
        cv2.line(streaks, p1, p2, rng.uniform(0.2, 0.5), max(1, int(max(h, w) / 300)))
    streaks = cv2.GaussianBlur(streaks, (0, 0), 1.5)
    warm = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.7, 0.95)], np.float32)
    veil = rng.uniform(0.05, 0.2)  # scattered light lifts the blacks over the whole frame
    return img * (1 - veil) + veil + (sun + streaks)[..., None] * warm


def rain(img: np.ndarray, rng: random.Random) -> np.ndarray:
    h, w = img.shape[:2]
    out = img * rng.uniform(0.6, 0.9)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.7, 0.95) + mean
    layer = np.zeros((h, w), np.float32)
    angle = rng.uniform(-0.4, 0.4)
    for _ in range(int(h * w / rng.uniform(300, 1200))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        length = rng.uniform(4, 14) * h / 224
        x2, y2 = x + length * math.sin(angle), y + length * math.cos(angle)
        cv2.line(layer, (int(x), int(y)), (int(x2), int(y2)), rng.uniform(0.1, 0.35), 1)
    out = out + cv2.GaussianBlur(layer, (3, 3), 0)[..., None]
    if rng.random() < 0.6:  # drops on the windscreen: out-of-focus discs that show a blurred view
        blurred = cv2.GaussianBlur(out, (0, 0), rng.uniform(3, 8))
        mask = np.zeros((h, w), np.float32)
        for _ in range(rng.randint(5, 40)):
            cv2.circle(mask, (rng.randrange(w), rng.randrange(h)), rng.randint(2, max(3, h // 20)), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
        out = out * (1 - mask) + (blurred * 1.1 + 0.03) * mask
    return out


def blur(img: np.ndarray, rng: random.Random) -> np.ndarray:
    if rng.random() < 0.5:
        k = rng.choice([3, 5, 7, 9])
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        centre = (k / 2 - 0.5, k / 2 - 0.5)
        kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, rng.uniform(0, 180), 1.0), (k, k))
        return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.8))


def noise(img: np.ndarray, rng: random.Random) -> np.ndarray:
    return img + _seed(rng).normal(0.0, rng.uniform(0.01, 0.05), img.shape).astype(np.float32)


EFFECTS = {"night": night, "fog": fog, "glare": glare, "rain": rain, "blur": blur, "noise": noise}
