"""The options of each task kind, with their defaults stated once: the network's heads take their defaults from
here, and training, evaluation and the runtime read a head's options through `resolve`, never restating them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T", bound="KindOptions")


@dataclass(frozen=True)
class KindOptions:
    @classmethod
    def resolve(cls: type[T], options: dict[str, Any]) -> T:
        """A head's options as written in its spec (other keys are other layers' business) with the defaults
        filled in."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


@dataclass(frozen=True)
class SegmentationOptions(KindOptions):
    output_stride: int = 1  # masks come out at input size / output_stride


@dataclass(frozen=True)
class DepthOptions(KindOptions):
    max_depth: float = 80.0  # canonical metres; the head's cap, published as +inf ("beyond range")
    min_depth: float = 0.1
    canonical_fx: float = 1000.0  # the focal length (pixels, at the network's input) the head predicts for
    output_stride: int = 1


@dataclass(frozen=True)
class DetectionOptions(KindOptions):
    stride: int = 4  # of the heatmap relative to the input
    max_detections: int = 100
    nms_iou: float = 0.5


OPTIONS: dict[str, type[KindOptions]] = {
    "segmentation": SegmentationOptions,
    "depth": DepthOptions,
    "detection": DetectionOptions,
}
