"""The options of each task kind, with their defaults stated once: the network's heads take their defaults from
here, and training, evaluation and the runtime read a head's options through `resolve`, never restating them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="KindOptions")


DECODER_STRIDE = 4  # of the shared decoder's output relative to the input: every head starts from it


@dataclass(frozen=True)
class KindOptions:
    """A head kind's options. Constructing one checks the values (ValueError saying which and why); the heads
    construct theirs from their arguments, and the model spec from what a spec file says. `docs`: what each
    option means (the README's table of head options is generated from the fields, their defaults and these)."""

    docs: ClassVar[dict[str, str]] = {}

    @classmethod
    def resolve(cls: type[T], options: dict[str, Any]) -> T:
        """A head's options as written in its spec (other keys are other layers' business) with the defaults
        filled in."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})

    @classmethod
    def parse(cls: type[T], options: dict[str, Any]) -> T:
        """Exactly these options, checked: an unknown name or a value of the wrong type is a ValueError that lists
        the valid options (a spec entry, so a typo cannot leave an option at its default unnoticed)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid options: {sorted(fields)}")
        for name, value in options.items():
            kind = type(fields[name].default)
            ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
            if isinstance(value, bool) or not ok:
                raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}")
        return cls(**{k: float(v) if type(fields[k].default) is float else v for k, v in options.items()})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SegmentationOptions(KindOptions):
    output_stride: int = 1
    docs: ClassVar[dict[str, str]] = {"output_stride": "masks come out at input size / output_stride"}

    def __post_init__(self) -> None:
        if self.output_stride < 1:
            raise ValueError(f"output_stride must be >= 1, got {self.output_stride}")


@dataclass(frozen=True)
class DepthOptions(KindOptions):
    max_depth: float = 80.0
    min_depth: float = 0.1
    canonical_fx: float = 1000.0
    output_stride: int = 1
    docs: ClassVar[dict[str, str]] = {
        "max_depth": "the head's cap in canonical metres; published as +inf (beyond range)",
        "min_depth": "the smallest depth it predicts, canonical metres",
        "canonical_fx": "the focal length (pixels, at the network input) it predicts depth for; the node rescales "
                        "by each camera's fx",
        "output_stride": "depth comes out at input size / output_stride",
    }

    def __post_init__(self) -> None:
        if not 0.0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth} and {self.max_depth}")
        if self.canonical_fx <= 0.0 or self.output_stride < 1:
            raise ValueError(f"need canonical_fx > 0 and output_stride >= 1, got {self.canonical_fx}, "
                             f"{self.output_stride}")


@dataclass(frozen=True)
class DetectionOptions(KindOptions):
    stride: int = 4
    max_detections: int = 100
    nms_iou: float = 0.5
    docs: ClassVar[dict[str, str]] = {
        "stride": f"of the centre heatmap relative to the input: {DECODER_STRIDE} or {2 * DECODER_STRIDE}",
        "max_detections": "boxes kept per image (top-K before the in-graph NMS)",
        "nms_iou": "boxes of one class overlapping more than this are merged (in-graph NMS)",
    }

    def __post_init__(self) -> None:
        if self.stride not in (DECODER_STRIDE, 2 * DECODER_STRIDE):
            raise ValueError(f"detection stride must be {DECODER_STRIDE} or {2 * DECODER_STRIDE}, got {self.stride}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {self.max_detections}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")


# The task kinds: each has its options here and one registered implementation per layer (model.heads.HEADS,
# train.kinds.TRAINING, runtime.postprocess.POSTPROCESS, ros.publishers.PUBLISHERS; test_layers checks they agree).
OPTIONS: dict[str, type[KindOptions]] = {
    "segmentation": SegmentationOptions,
    "depth": DepthOptions,
    "detection": DetectionOptions,
}
KINDS: tuple[str, ...] = tuple(OPTIONS)
