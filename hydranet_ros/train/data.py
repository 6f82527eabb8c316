"""Manifest samples -> typed training samples (`Item`) and batches (`Batch`).

One geometric transform per sample (augment.py: scale, crop or pad, optional horizontal flip) is applied to the
image and to every label: segmentation and depth maps with nearest-neighbour resampling (sparse LiDAR stays sparse,
class ids stay ids), boxes and ignore regions as coordinates, and the intrinsics (fx, fy scale; cx, cy shift and
mirror). Each head's kind reads its label (kinds.py): depth labels are converted to the depth head's canonical
camera (`depth * canonical_fx / fx`), as the head predicts (see `hydranet_ros.model.heads.DepthHead`).

Without augmentation (validation) a sample is exactly the letterboxed network input.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hydranet_ros.core.geometry import PAD_RGB, Letterbox
from hydranet_ros.model.spec import ModelSpec
from hydranet_ros.train.augment import Augment, Geometry, colour_jitter, plan_geometry
from hydranet_ros.train.kinds import TRAINING, Label, TaskBatch
from hydranet_ros.train.manifest import ManifestError, Sample
from hydranet_ros.train.photometric import render


@dataclass
class Item:
    """One training sample: the network input, every task's label (None where the image has none), the sample's
    index and the `Geometry` that took the source image to this one."""

    image: Tensor  # uint8 [H, W, 3] RGB (the model normalises it)
    labels: dict[str, Label | None]  # every task of the model
    index: int
    geometry: Geometry


@dataclass
class Batch:
    """Items stacked: images [B, H, W, 3], and per task a `TaskBatch` (which images are labelled, their targets)."""

    image: Tensor
    tasks: dict[str, TaskBatch]
    index: Tensor
    geometry: list[Geometry]

    def pin_memory(self) -> Batch:  # the DataLoader's pin_memory calls this for custom batch types
        return replace(self, image=self.image.pin_memory())


class MultiTaskDataset(Dataset):
    """Manifest samples for a model spec, as `Item`s: the image H x W is `crop` when augmenting with one, else the
    spec's input size; labels per task (kinds.Label): segmentation uint8 ids (255 = ignore), depth float32 canonical
    metres (0 = invalid), detection boxes [N, 5] and don't-care regions [M, 4] in output pixels.

    Each draw of an image gets fresh random augmentations from torch's generator (which the DataLoader seeds per
    worker from the main process's seed), so a sample drawn many times is seen under many transforms, and a run
    is reproducible from its seed.
    """

    def __init__(self, samples: Sequence[Sample], spec: ModelSpec, augment: Augment | None = None,
                 crop: tuple[int, int] | None = None, seed: int = 0) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.augment = augment
        self.net_size = (spec.input_width, spec.input_height)
        self.out_size = crop if (crop and augment is not None) else self.net_size
        self.heads = {h.name: h for h in spec.heads}
        self.seed = seed
        self._check()

    def _check(self) -> None:
        """Fail at start, not hours in: depth labels need intrinsics; tasks must exist in the spec."""
        unknown: dict[str, int] = {}
        for i, s in enumerate(self.samples):
            for task, label in s.labels.items():
                head = self.heads.get(task)
                if head is None:
                    unknown[task] = unknown.get(task, 0) + 1
                    continue
                kind = TRAINING[head.type]
                if kind.needs_intrinsics and s.intrinsics is None:
                    raise ManifestError(f"sample {i} ({s.image}) has a {head.type} label but no intrinsics: its "
                                        "metres need the focal length it was measured with")
                if kind.label_format not in label:
                    raise ManifestError(f"sample {i} ({s.image}): task {task!r} is a {head.type} head and needs "
                                        f"a '{kind.label_format}' label")
        self.unknown_tasks = unknown  # labels for tasks this model has not: ignored, reported by the trainer

    def __len__(self) -> int:
        return len(self.samples)

    def label_counts(self) -> dict[str, int]:
        return {t: sum(t in s.labels for s in self.samples) for t in self.heads}

    def __getitem__(self, index: int) -> Item:
        s = self.samples[index]
        rng = random.Random(int(torch.randint(0, 2**62, ()).item()) ^ self.seed if self.augment else 0)
        bgr = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ManifestError(f"cannot read image {s.image}")
        src_h, src_w = bgr.shape[:2]
        if s.size is not None and tuple(s.size) != (src_w, src_h):
            raise ManifestError(f"{s.image} is {src_w}x{src_h}, the manifest says {s.size[0]}x{s.size[1]}")
        geo = plan_geometry(src_w, src_h, *self.net_size, *self.out_size, self.augment, rng, self._focus_box(s, rng))
        if self.augment is None:
            # Exactly the node's network input (its resize rounds each axis; the labels follow `geo`, < 0.5 px off).
            rgb = Letterbox.fit(src_w, src_h, *self.net_size).apply(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        else:
            rgb = geo.warp(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), nearest=False, fill=PAD_RGB)
            rgb = colour_jitter(rgb, self.augment, rng)
            conditions = self.augment.weather.draw(rng)
            if conditions:  # the padding mask costs a warp: only for the crops that get weather
                rgb = render(rgb, conditions, rng, valid=geo.warp(np.ones((src_h, src_w), np.uint8), True, 0))
        labels = {name: None if name not in s.labels else
                  TRAINING[head.type].load(head, s.labels[name], s, geo, (src_w, src_h))
                  for name, head in self.heads.items()}
        return Item(torch.from_numpy(np.ascontiguousarray(rgb)), labels, index, geo)

    def _focus_box(self, s: Sample, rng: random.Random) -> tuple[float, float, float, float] | None:
        """A box of the augment's focus classes in `s`, drawn at random, with the focus probability; else None."""
        focus = self.augment.focus if self.augment is not None else None
        if focus is None or rng.random() >= focus.p:
            return None
        boxes = [b for name, head in self.heads.items()
                 if name in s.labels and TRAINING[head.type].label_format == "boxes"
                 for b in s.labels[name]["boxes"] if b[4] in focus.classes]
        if not boxes:
            return None
        x1, y1, x2, y2 = (float(v) for v in rng.choice(boxes)[:4])
        return x1, y1, x2, y2


def collate(items: list[Item]) -> Batch:
    """Stack items; unlabelled images get filler targets (every loss and metric skips them through `present`)."""
    images = torch.stack([it.image for it in items])
    hw = (int(images.shape[1]), int(images.shape[2]))
    tasks = {t: TaskBatch.collate([it.labels[t] for it in items], hw) for t in items[0].labels}
    return Batch(images, tasks, torch.tensor([it.index for it in items]), [it.geometry for it in items])


def source_weights(groups: Sequence[tuple[Sequence[Sample], float]]) -> list[float]:
    """Per-sample sampling weights so that each group (manifest) is drawn with its share, whatever its size."""
    total = sum(w for samples, w in groups if samples)
    weights: list[float] = []
    for samples, w in groups:
        if samples:
            weights += [w / total / len(samples)] * len(samples)
    return weights
