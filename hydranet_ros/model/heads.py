"""Task heads on the shared decoder output, chosen by a `type` string.

Adding a head type means one `Head` subclass and one entry in `HEADS`. Every head has two halves:

* `forward(x)`: what training sees, at the decoder's stride (or the head's own, see `Head.stride`);
* `export_outputs(raw, input_hw)`: the publish-ready tensors that go into the fused ONNX graph, so the runtime does
  no post-processing beyond reading them (resizing, argmax and box decoding all happen in the graph).

Losses live elsewhere; the heads only fix what their raw outputs mean (documented per head).
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hydranet_ros.core.tasks import DepthOptions, DetectionOptions, SegmentationOptions
from hydranet_ros.model.decoder import LightWeightRefineNet

DECODER_STRIDE = LightWeightRefineNet.out_stride


def task_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    """The per-task layers of the multi-task paper: depthwise 1x1 conv (no bias), ReLU6, plain 3x3 conv."""
    return nn.Sequential(
        OrderedDict(
            pre=nn.Conv2d(in_channels, in_channels, kernel_size=1, groups=in_channels, bias=False),
            act=nn.ReLU6(),
            out=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        )
    )


def _scaled_size(input_hw: tuple[int, int], output_stride: int) -> tuple[int, int]:
    return input_hw[0] // output_stride, input_hw[1] // output_stride


class Head(nn.Module):
    """Base of all task heads. `name` keys the head's export outputs; `classes` are its label names (if any)."""

    # Shadows nn.Module.type(dst_type), a rarely used cast; the registry key reads better than any alternative.
    type: ClassVar[str]
    needs_classes: ClassVar[bool] = True  # a spec must give this head's type at least one class

    def __init__(self, in_channels: int, name: str, classes: Sequence[str]) -> None:
        super().__init__()
        if not name:
            raise ValueError("a head needs a non-empty name (it keys the head's outputs)")
        self.in_channels = in_channels
        self.name = name
        self.classes = list(classes)
        self.stride = DECODER_STRIDE  # of forward()'s output relative to the input image

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def export_outputs(self, raw: Tensor, input_hw: tuple[int, int]) -> dict[str, Tensor]:
        """Publish-ready tensors from `forward`'s output, for an input image of `input_hw` (height, width)."""
        raise NotImplementedError


class SegmentationHead(Head):
    """Per-pixel classes. forward: logits [B, N, h, w]. export: uint8 class ids [B, H', W'].

    H', W' = input size // `output_stride` (default 1: the input resolution). The logits, not the ids, are
    upsampled (bilinear) so that class boundaries fall between the stride-4 samples instead of on a blocky grid.
    """

    type = "segmentation"

    def __init__(self, in_channels: int, name: str, classes: Sequence[str], *,
                 output_stride: int = SegmentationOptions.output_stride) -> None:
        super().__init__(in_channels, name, classes)
        if not 2 <= len(self.classes) <= 256:
            raise ValueError(f"segmentation head {name!r} needs 2..256 classes (uint8 ids), got {self.classes}")
        SegmentationOptions(output_stride)  # checks it
        self.output_stride = output_stride
        self.branch = task_branch(in_channels, len(self.classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x)

    def export_outputs(self, raw: Tensor, input_hw: tuple[int, int]) -> dict[str, Tensor]:
        size = _scaled_size(input_hw, self.output_stride)
        logits = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
        return {self.name: logits.argmax(dim=1).to(torch.uint8)}


class DepthHead(Head):
    """Metric depth for a camera with focal length `canonical_fx`. forward: [B, 1, h, w] metres; export: [B, H', W'].

    depth = min_depth + (max_depth - min_depth) * sigmoid(x). A sigmoid rather than a clamped softplus: it is
    bounded on both sides with a gradient everywhere (a clamp has none past the cap, so a pixel stuck there could
    not learn its way back), starts mid-range, and min_depth > 0 keeps log-depth losses finite.

    The network sees pixels, not metres, so the same object looks twice as large under a twice longer focal length.
    The head therefore predicts the depth a camera with fx = `canonical_fx` would see, and the runtime converts:

        depth_real = depth_canonical * fx_real / canonical_fx      (core.geometry.metric_scale)

    where fx_real is the focal length in pixels of the image as fed to the network (i.e. after any resize). The
    `max_depth` cap applies to canonical depth. Training targets are converted the other way round.
    """

    type = "depth"
    needs_classes: ClassVar[bool] = False  # metric depth has no labels

    def __init__(
        self,
        in_channels: int,
        name: str,
        classes: Sequence[str] = (),
        *,
        max_depth: float = DepthOptions.max_depth,
        min_depth: float = DepthOptions.min_depth,
        canonical_fx: float = DepthOptions.canonical_fx,
        output_stride: int = DepthOptions.output_stride,
    ) -> None:
        super().__init__(in_channels, name, classes)  # classes are not used: depth has no labels
        DepthOptions(max_depth, min_depth, canonical_fx, output_stride)  # checks them
        self.max_depth = max_depth
        self.min_depth = min_depth
        self.canonical_fx = canonical_fx
        self.output_stride = output_stride
        self.branch = task_branch(in_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(self.branch(x))

    def export_outputs(self, raw: Tensor, input_hw: tuple[int, int]) -> dict[str, Tensor]:
        # Bilinear weights are convex, so the resized depth stays within [min_depth, max_depth].
        size = _scaled_size(input_hw, self.output_stride)
        depth = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
        return {self.name: depth[:, 0].float()}

class DetectionHead(Head):
    """Anchor-free boxes, CenterNet style (Zhou et al. 2019, "Objects as Points"), decoded inside the graph.

    forward: [B, C + 4, h, w] at `stride` (4, or 8 through an extra stride-2 conv); `split` names the channels:
        heat   [B, C, h, w]  class heatmap logits (sigmoid -> centre probability; focal loss)
        log_wh [B, 2, h, w]  log of box (width, height) in stride units
        offset [B, 2, h, w]  centre minus its cell's top-left corner, in stride units (target in [0, 1))
    Sizes are predicted in log space and decoded with exp: always positive, a gradient everywhere (ReLU would die
    on negatives), and an L1 loss on log-sizes weighs a 10 % error the same on a 20 px and a 400 px box.

    export: float32 [B, K, 6] rows (x1, y1, x2, y2, score, class) in input pixels, clipped to the image, best score
    first; K = max_detections. Peaks are cells equal to the max of their 3x3 neighbourhood (CenterNet's NMS
    substitute); rows beyond the peaks have score 0, so the runtime filters by a score threshold.

    Peaks a few cells apart on one large object survive the 3x3 test (a close car gave 8 stacked boxes), so the
    graph also suppresses, per class, every box that overlaps a better one by more than `nms_iou` ("Fast NMS",
    Bolya et al., YOLACT 2019: one K x K IoU matrix, static shapes, no loop; 1.0 turns it off). Suppressed rows get
    score 0 and sink below the kept ones.
    """

    type = "detection"
    HEAT_PRIOR = 0.1  # initial foreground probability: bias log(p / (1 - p)) = -2.19, as CenterNet / RetinaNet
    MAX_LOG_SIZE = 8.0  # exp(8) = 2981 stride units: bounds untrained sizes so zero-score rows stay finite

    def __init__(
        self,
        in_channels: int,
        name: str,
        classes: Sequence[str],
        *,
        stride: int = DetectionOptions.stride,
        max_detections: int = DetectionOptions.max_detections,
        nms_iou: float = DetectionOptions.nms_iou,
    ) -> None:
        super().__init__(in_channels, name, classes)
        if not self.classes:
            raise ValueError(f"detection head {name!r} needs at least one class")
        DetectionOptions(stride, max_detections, nms_iou)  # checks them
        self.stride = stride
        self.max_detections = max_detections
        self.nms_iou = float(nms_iou)
        self.down: nn.Module = nn.Identity()
        if stride != DECODER_STRIDE:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=1, bias=False), nn.ReLU6()
            )
        self.heat = task_branch(in_channels, len(self.classes))
        self.wh = task_branch(in_channels, 2)
        self.offset = task_branch(in_channels, 2)
        nn.init.constant_(self.heat.out.bias, math.log(self.HEAT_PRIOR / (1.0 - self.HEAT_PRIOR)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        return torch.cat([self.heat(x), self.wh(x), self.offset(x)], dim=1)

    def split(self, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(heat logits, log_wh, offset) views of `forward`'s output."""
        c = len(self.classes)
        return raw[:, :c], raw[:, c : c + 2], raw[:, c + 2 :]

    def export_outputs(self, raw: Tensor, input_hw: tuple[int, int]) -> dict[str, Tensor]:
        return {self.name: self.decode(raw, input_hw)}

    def decode(self, raw: Tensor, input_hw: tuple[int, int]) -> Tensor:
        """Peak picking and top-K with static shapes only (ONNX: MaxPool, Equal, TopK, GatherElements)."""
        heat_logits, log_wh, offset = self.split(raw.float())
        heat = torch.sigmoid(heat_logits)
        # Max pooling returns one of its inputs, so the equality is exact; plateaus keep every tied cell.
        heat = heat * (F.max_pool2d(heat, kernel_size=3, stride=1, padding=1) == heat).to(heat.dtype)
        _, c, h, w = heat.shape
        k = min(self.max_detections, c * h * w)  # only tiny maps have fewer cells than K
        scores, index = heat.flatten(1).topk(k, dim=1)  # over classes x positions, sorted
        cls = torch.div(index, h * w, rounding_mode="floor")
        cell = index - cls * (h * w)
        cell2 = cell.unsqueeze(1).expand(-1, 2, -1)  # [B, 2, K], to gather (w, h) and (dx, dy) together
        size = torch.exp(log_wh.flatten(2).gather(2, cell2).clamp(max=self.MAX_LOG_SIZE)) * self.stride
        shift = offset.flatten(2).gather(2, cell2)
        row = torch.div(cell, w, rounding_mode="floor")
        col = cell - row * w
        cx = (col.to(heat.dtype) + shift[:, 0]) * self.stride
        cy = (row.to(heat.dtype) + shift[:, 1]) * self.stride
        height, width = input_hw
        x1 = (cx - size[:, 0] / 2).clamp(0, width)
        y1 = (cy - size[:, 1] / 2).clamp(0, height)
        x2 = (cx + size[:, 0] / 2).clamp(0, width)
        y2 = (cy + size[:, 1] / 2).clamp(0, height)
        rows = torch.stack([x1, y1, x2, y2, scores, cls.to(heat.dtype)], dim=-1)
        return self.suppress(rows) if self.nms_iou < 1.0 else rows

    def suppress(self, rows: Tensor) -> Tensor:
        """Fast NMS on rows sorted by score: zero the score of each row that a better row of its class overlaps by
        more than nms_iou, then sort again (TopK + GatherElements)."""
        x1, y1, x2, y2, scores, cls = rows.unbind(-1)
        area = (x2 - x1) * (y2 - y1)
        iw = (torch.minimum(x2[:, :, None], x2[:, None, :]) - torch.maximum(x1[:, :, None], x1[:, None, :])).clamp(0)
        ih = (torch.minimum(y2[:, :, None], y2[:, None, :]) - torch.maximum(y1[:, :, None], y1[:, None, :])).clamp(0)
        inter = iw * ih
        iou = inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-6)
        k = rows.shape[1]
        better = torch.ones(k, k, dtype=torch.bool, device=rows.device).triu(1)  # [i, j]: row i ranks above j
        over = (iou > self.nms_iou) & (cls[:, :, None] == cls[:, None, :]) & better & (scores[:, :, None] > 0)
        kept = scores * (~over.any(dim=1)).to(scores.dtype)
        kept, order = kept.topk(k, dim=1)
        rows = rows.gather(1, order.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))
        return torch.cat([rows[..., :4], kept.unsqueeze(-1), rows[..., 5:]], dim=-1)


HEADS: dict[str, type[Head]] = {
    SegmentationHead.type: SegmentationHead,
    DepthHead.type: DepthHead,
    DetectionHead.type: DetectionHead,
}


def build_head(type: str, in_channels: int, name: str, classes: Sequence[str], **options: object) -> Head:
    """The head registered as `type`; options are its keyword-only arguments. Bad type or option -> ValueError."""
    cls = HEADS.get(type)
    if cls is None:
        raise ValueError(f"unknown head type {type!r}; valid types: {', '.join(sorted(HEADS))}")
    params = inspect.signature(cls.__init__).parameters.values()
    valid = sorted(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {type!r} head {name!r}; valid options: {valid}")
    return cls(in_channels, name, classes, **options)  # type: ignore[arg-type]
