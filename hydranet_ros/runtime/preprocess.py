"""RGB frames of any sizes -> one letterboxed network batch (core/images decodes them, core/geometry holds the
letterbox)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hydranet_ros.core.geometry import Letterbox


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
